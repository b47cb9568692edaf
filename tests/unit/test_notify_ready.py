"""What notify's planner stored claimed: its send pass takes it in batches, and leaves alone a claim near its end."""

from datetime import UTC, datetime, timedelta

from services.notify.service import Ready

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def records(n: int, status: str = "pending") -> list[dict]:
    return [{"_id": f"r{i}", "status": status} for i in range(n)]


def test_records_due_now_are_claimed_and_taken_in_batches_of_the_pass():
    ready = Ready(timedelta(seconds=60))
    held = ready.claim(records(3) + records(1, "held"), NOW)
    assert [d["_id"] for d in held.docs] == ["r0", "r1", "r2"], "a record held for quiet hours waits its turn"
    assert all(d["claim"] == held.token and d["claim_until"] == NOW + timedelta(seconds=60) for d in held.docs)
    ready.batches.append(held)
    first = ready.take(NOW, limit=2)
    second = ready.take(NOW, limit=2)
    assert first and second and first.token == second.token == held.token
    assert [d["_id"] for d in first.docs + second.docs] == ["r0", "r1", "r2"]
    assert ready.take(NOW, limit=2) is None


def test_a_claim_near_its_end_is_left_to_expire_rather_than_sent_while_another_pass_may_take_it():
    ready = Ready(timedelta(seconds=60))
    ready.batches.append(ready.claim(records(2), NOW))
    assert ready.take(NOW + timedelta(seconds=31), limit=10) is None
    assert ready.batches == []
