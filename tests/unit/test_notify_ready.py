"""What notify's planner stored claimed: its send pass takes it in batches, and leaves alone a claim near its end."""

from datetime import UTC, datetime, timedelta

from services.notify.notices import Ready

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def notices(prefix: str, n: int, status: str = "sending") -> list[dict]:
    return [{"_id": f"{prefix}{i}", "status": status} for i in range(n)]


def test_notices_due_now_are_claimed_and_taken_in_batches_of_the_pass():
    ready = Ready(timedelta(seconds=60))
    claimed = ready.claim(notices("a", 2) + notices("held", 1, "held"), NOW)
    assert [d["_id"] for d in claimed] == ["a0", "a1"], "a notice held for quiet hours waits its turn"
    assert all(d["claim"] == ready.token and d["claim_until"] == NOW + timedelta(seconds=60) for d in claimed)
    ready.docs += claimed
    ready.docs += ready.claim(notices("b", 1), NOW + timedelta(seconds=1))
    first = ready.take(NOW, limit=2)
    second = ready.take(NOW, limit=2)
    assert first and second and first.token == second.token == ready.token
    assert [d["_id"] for d in first.docs] == ["a0", "a1"] and [d["_id"] for d in second.docs] == ["b0"]
    assert ready.take(NOW, limit=2) is None


def test_a_claim_near_its_end_is_left_to_expire_rather_than_sent_while_another_pass_may_take_it():
    ready = Ready(timedelta(seconds=60))
    ready.docs += ready.claim(notices("a", 1), NOW)
    ready.docs += ready.claim(notices("b", 1), NOW + timedelta(seconds=10))
    taken = ready.take(NOW + timedelta(seconds=31), limit=10)
    assert taken and [d["_id"] for d in taken.docs] == ["b0"]
    assert ready.docs == []
