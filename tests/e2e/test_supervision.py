"""The coordinating office governs the work, on the running stack (docs/domain.md, "Supervision").

One stack for the module, every service, with targets of tens of seconds (the
`supervision_test` profile below) so a department can ask for more time before its
resolution clock runs out and the office can answer before the request lapses.
"""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import appeal_body, eventually, fresh_stack, key, read_topic

pytestmark = pytest.mark.timeout(600)

PROFILE = {
    "description": "Tests of supervision: room to ask and answer before the resolution clock is due.",
    "scope": "20s",
    "response": "40s",
    "response_with_cohandlers": "40s",
    "resolution": "90s",
}


# The urging ladder's levels 2 and 3 this long after a breach, and a co-handler's time to contribute.
URGE_AFTER = {2: 4, 3: 8}
CONTRIBUTION_SECONDS = 15


def supervision_config(config: Path) -> None:
    """Every appeal on the supervision_test profile; the ladder and the co-handlers' time in seconds."""
    path = config / "sla_profiles.yaml"
    profiles = yaml.safe_load(path.read_text())
    profiles["profiles"]["supervision_test"] = PROFILE
    profiles["selection"] = [{"profile": "supervision_test"}]
    path.write_text(yaml.safe_dump(profiles))
    path = config / "supervision.yaml"
    supervision = yaml.safe_load(path.read_text())
    for level in supervision["urging"]["levels"]:
        level["after_breach"] = f"{URGE_AFTER[level['level']]}s"
    supervision["cohandling"]["contribution"] = f"{CONTRIBUTION_SECONDS}s"
    path.write_text(yaml.safe_dump(supervision, allow_unicode=True))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "supervision-stack", configure=supervision_config)
    yield s
    s.stop()


def submit(stack, **overrides: Any) -> str:
    body = appeal_body(**overrides)
    r = httpx.post(stack.url("intake") + "/v1/appeals", json=body, headers=key(stack, "channel:web"), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["appeal_id"]


def at_router(stack, appeal_id: str, scope: str = "operator") -> dict | None:
    r = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers=key(stack, scope), timeout=30)
    return r.json() if r.status_code == 200 else None


def act(stack, appeal_id: str, scope: str, **body: Any) -> httpx.Response:
    return httpx.post(
        stack.url("router") + f"/v1/appeals/{appeal_id}/actions", json=body, headers=key(stack, scope), timeout=30
    )


def resolution_due(stack, appeal_id: str) -> datetime:
    """The resolution clock's due time, once router has heard of it from sla."""

    def due() -> datetime | None:
        doc = at_router(stack, appeal_id)
        found = [d for d in (doc or {}).get("deadlines", []) if d["clock"] == "resolution" and d["due_at"]]
        return datetime.fromisoformat(found[0]["due_at"]) if found else None

    return eventually(due, f"the resolution clock of {appeal_id} at router")


def sla_clocks(stack, appeal_id: str) -> list[dict]:
    """The appeal's clocks at sla; none before sla has read the appeal's routing (404)."""
    r = httpx.get(stack.url("sla") + f"/v1/appeals/{appeal_id}/sla", headers=key(stack, "operator"), timeout=30)
    return r.json()["clocks"] if r.status_code == 200 else []


def sla_clock(stack, appeal_id: str, kind: str) -> dict:
    clock = eventually(
        lambda: next((c for c in sla_clocks(stack, appeal_id) if c["clock"] == kind), None), f"the {kind} clock"
    )
    return clock


def queue(stack, scope: str = "department:coord", **params: Any) -> httpx.Response:
    return httpx.get(stack.url("router") + "/v1/appeals", params=params, headers=key(stack, scope), timeout=30)


def test_an_extension_is_asked_approved_and_moves_the_due_time_the_company_hears_it_and_it_is_counted(stack):
    appeal_id = submit(stack)
    lead = eventually(lambda: (at_router(stack, appeal_id) or {}).get("lead"), "routing")
    due = resolution_due(stack, appeal_id)
    until = (due + timedelta(minutes=10)).replace(microsecond=0)

    # Only the lead asks; nobody but the office (or an operator) answers.
    assert (
        act(
            stack, appeal_id, "department:justice", action="request_extension", until=until.isoformat(), reason="r"
        ).status_code
        == 403
    )
    r = act(
        stack,
        appeal_id,
        f"department:{lead}",
        action="request_extension",
        until=until.isoformat(),
        reason="The bank's credit committee meets next week.",
        clerk="Wang Fang",
    )
    assert r.status_code == 200, r.text
    again = act(stack, appeal_id, f"department:{lead}", action="request_extension", until=until.isoformat(), reason="x")
    assert again.status_code == 409 and "already pending" in again.json()["detail"]
    assert act(stack, appeal_id, f"department:{lead}", action="approve_extension").status_code == 403

    pending = queue(stack, state="extension_pending").json()
    assert appeal_id in {row["appeal_id"] for row in pending}
    assert "contact" not in pending[0]
    assert queue(stack, scope=f"department:{lead}", state="extension_pending").status_code == 403

    r = act(stack, appeal_id, "department:coord", action="approve_extension", note="Agreed once.", clerk="Chen Wei")
    assert r.status_code == 200, r.text
    timeline = r.json()["timeline"]
    assert [e["type"] for e in timeline[-2:]] == ["appeal.extension_requested.v1", "appeal.extension_approved.v1"]
    assert (timeline[-1]["actor"], timeline[-1]["clerk"]) == ("coord", "Chen Wei")
    assert appeal_id not in {row["appeal_id"] for row in queue(stack, state="extension_pending").json()}

    # sla moved the clock to the very instant granted, and says what it was before.
    def extended() -> dict | None:
        clock = sla_clock(stack, appeal_id, "resolution")
        return clock if clock.get("original_due_at") else None

    clock = eventually(extended, "sla extending the resolution clock")
    assert datetime.fromisoformat(clock["due_at"]) == until
    assert datetime.fromisoformat(clock["original_due_at"]) == due
    # Router, and the company's page behind intake, show the new due time.
    assert resolution_due(stack, appeal_id) == until or eventually(
        lambda: resolution_due(stack, appeal_id) == until, "router hearing of the new due time"
    )

    # The company's view behind intake (its page, Open311's expected_datetime) has the new due time too.
    def at_intake() -> bool:
        r = httpx.get(stack.url("intake") + f"/v1/appeals/{appeal_id}", headers=key(stack, "channel:web"), timeout=30)
        dues = [d for d in r.json().get("deadlines", []) if d["clock"] == "resolution" and d.get("due_at")]
        return bool(dues) and datetime.fromisoformat(dues[0]["due_at"]) == until

    eventually(at_intake, "intake showing the new due time")
    # A second extension of the same clock is refused.
    third = act(
        stack,
        appeal_id,
        f"department:{lead}",
        action="request_extension",
        until=(until + timedelta(hours=1)).isoformat(),
        reason="x",
    )
    assert third.status_code == 409 and "extended already" in third.json()["detail"]

    # The company is told the new date and the reason, once.
    def told() -> list[dict]:
        r = httpx.get(
            stack.url("notify") + "/v1/notifications",
            params={"appeal_id": appeal_id},
            headers=key(stack, "operator"),
            timeout=30,
        )
        return [
            n
            for n in r.json()
            if n["event_type"] == "appeal.extension_approved.v1" and n["recipient"].startswith("company")
        ]

    eventually(told, "the company told of the extension")
    time.sleep(2)
    assert len({(n["recipient"], n["channel"]) for n in told()}) == len(told())

    # Stats counts the request and the approval against the lead.
    # Periods are whole hours.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {"from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(hours=2)).isoformat()}

    def counted() -> dict | None:
        r = httpx.get(stack.url("stats") + "/v1/stats/departments", params=window, headers=key(stack, "operator"))
        rows = [d for d in r.json()["departments"] if d["department"] == lead] if r.status_code == 200 else []
        return rows[0] if rows and rows[0].get("extensions_approved") == 1 else None

    row = eventually(counted, "stats counting the extension")
    assert (row["extensions_requested"], row["extensions_approved"], row["extensions_rejected"]) == (1, 1, 0)


def test_an_operator_decides_where_the_office_leads_and_a_rejection_needs_its_reason(stack):
    appeal_id = submit(stack)
    lead = eventually(lambda: (at_router(stack, appeal_id) or {}).get("lead"), "routing")
    due = resolution_due(stack, appeal_id)
    r = act(
        stack,
        appeal_id,
        f"department:{lead}",
        action="request_extension",
        until=(due + timedelta(hours=2)).isoformat(),
        reason="Waiting for the land survey.",
    )
    assert r.status_code == 200, r.text
    no_reason = act(stack, appeal_id, "operator", action="reject_extension")
    assert no_reason.status_code == 422 and "note" in no_reason.json()["detail"]
    r = act(stack, appeal_id, "operator", action="reject_extension", note="Answer the company first.")
    assert r.status_code == 200, r.text
    assert r.json()["extensions"][-1]["state"] == "rejected"
    assert r.json()["timeline"][-1]["actor"] == "coord"
    # An operator takes the office's actions, not a department's.
    assert act(stack, appeal_id, "operator", action="accept").status_code == 403
    # The due time stands.
    time.sleep(1)
    assert sla_clock(stack, appeal_id, "resolution").get("original_due_at") is None


def test_a_late_decline_is_refused_and_the_office_grants_the_transfer_the_lead_asks_for(stack):
    appeal_id = submit(stack)
    lead = eventually(lambda: (at_router(stack, appeal_id) or {}).get("lead"), "routing")
    assigned = datetime.fromisoformat(at_router(stack, appeal_id)["assigned_at"])
    # The window is the scope clock: 20 s on this stack's profile.
    time.sleep(max(0.0, (assigned + timedelta(seconds=20) - datetime.now(UTC)).total_seconds()) + 0.5)
    late = act(stack, appeal_id, f"department:{lead}", action="decline", guidance="Not ours.")
    assert late.status_code == 409 and "send-back window" in late.json()["detail"]
    assert (
        act(stack, appeal_id, f"department:{lead}", action="transfer", target_department="customs").status_code == 409
    )
    r = act(
        stack,
        appeal_id,
        f"department:{lead}",
        action="request_transfer",
        target_department="customs",
        reason="A customs valuation question.",
    )
    assert r.status_code == 200, r.text
    assert appeal_id in {row["appeal_id"] for row in queue(stack, state="transfer_requested").json()}
    r = act(stack, appeal_id, "department:coord", action="grant_transfer", clerk="Chen Wei")
    assert r.status_code == 200, r.text
    assert r.json()["lead"] == "customs" and r.json()["transfer_request"] is None
    # sla moves the clocks as for any transfer: the new lead's scope clock runs.
    eventually(
        lambda: any(
            c["clock"] == "scope" and c["department"] == "customs" and c["state"] == "running"
            for c in sla_clocks(stack, appeal_id)
        ),
        "the new lead's scope clock",
    )


def test_the_office_overrules_a_send_back_and_the_declining_department_handles_it_again(stack):
    appeal_id = submit(stack)
    lead = eventually(lambda: (at_router(stack, appeal_id) or {}).get("lead"), "routing")
    r = act(
        stack, appeal_id, f"department:{lead}", action="decline", guidance="Ask customs.", target_department="customs"
    )
    assert r.status_code == 200, r.text
    assert appeal_id in {row["appeal_id"] for row in queue(stack, state="sent_back").json()}
    r = act(stack, appeal_id, "department:coord", action="overrule_decline", note="Yours.", clerk="Chen Wei")
    assert r.status_code == 200, r.text
    assert (r.json()["lead"], r.json()["send_back"]["state"]) == (lead, "overruled")
    assert appeal_id not in {row["appeal_id"] for row in queue(stack, state="sent_back").json()}
    again = act(stack, appeal_id, f"department:{lead}", action="decline", guidance="Still not ours.")
    assert again.status_code == 409 and "overruled" in again.json()["detail"]

    # sla: customs' clocks are cancelled, never counted against it; the lead's response clock runs again from
    # its first assignment, and its scope clock stays met.
    def clocks_after() -> list[dict] | None:
        found = sla_clocks(stack, appeal_id)
        customs = [c for c in found if c["department"] == "customs" and c["clock"] in ("scope", "response")]
        running = [c for c in found if c["department"] == lead and c["clock"] == "response" and c["state"] == "running"]
        return found if customs and all(c["state"] == "cancelled" for c in customs) and running else None

    found = eventually(clocks_after, "sla returning the clocks to the declining department")
    scopes = [c for c in found if c["department"] == lead and c["clock"] == "scope"]
    assert [c["state"] for c in scopes] == ["met"]
    response = next(
        c for c in found if c["department"] == lead and c["clock"] == "response" and c["state"] == "running"
    )
    first = datetime.fromisoformat(at_router(stack, appeal_id)["assigned_at"])
    assert abs((datetime.fromisoformat(response["started_at"]) - first).total_seconds()) < 1


async def urgings(stack, appeal_id: str, clock: str, count: int, timeout: float = 60.0) -> list[dict]:
    """The appeal's sla.urged.v1 reports of one clock, on sla.events.v2, once `count` have come."""
    return await read_topic(
        stack.kafka_access(),
        "sla.events.v2",
        lambda e: e.get("subject") == appeal_id and e["type"] == "sla.urged.v1" and e["data"]["clock"] == clock,
        count=count,
        timeout=timeout,
        unpack=True,
    )


def told(stack, appeal_id: str, event_type: str) -> set[str]:
    """Who notify planned to tell of the appeal's events of one type (held for office hours or sent)."""
    r = httpx.get(
        stack.url("notify") + "/v1/notifications",
        params={"appeal_id": appeal_id},
        headers=key(stack, "operator"),
        timeout=30,
    )
    return {n["recipient"] for n in r.json() if n["event_type"] == event_type}


async def test_an_unanswered_appeal_climbs_the_urging_ladder_once_per_level_across_an_sla_restart(stack):
    appeal_id = submit(stack)
    eventually(lambda: (at_router(stack, appeal_id) or {}).get("lead"), "routing")
    # Nobody answers: the scope clock breaches at 20 s, level 2 comes 4 s later. sla restarts between the levels.
    second = await urgings(stack, appeal_id, "scope", 1)
    assert second[0]["data"]["urge_level"] == 2
    stack.kill_service("sla")
    stack.start_service("sla")
    stack.wait_ready("sla")
    both = await urgings(stack, appeal_id, "scope", 2)
    time.sleep(3)
    again = await urgings(stack, appeal_id, "scope", 2)
    levels = {}
    for e in again:
        levels.setdefault(e["data"]["urge_level"], set()).add(e["id"])
    assert {level: len(ids) for level, ids in levels.items()} == {2: 1, 3: 1}, "each level once, under one id"
    assert {e["data"]["urge_level"] for e in both} == {2, 3}
    # The queue shows it at level 3; notify tells level 3's audiences (held for office hours, or sent).
    rows = queue(stack, state="overdue", urge_level=3).json()
    assert appeal_id in {row["appeal_id"] for row in rows}
    recipients = eventually(lambda: told(stack, appeal_id, "sla.urged.v1"), "notify planning the urgings")
    assert "city:supervisor" in eventually(
        lambda: (r := told(stack, appeal_id, "sla.urged.v1")) and "city:supervisor" in r and r,
        "the city supervisor told of level 3",
    ), recipients

    # The office urges by hand too: counted, in the timeline.
    r = act(stack, appeal_id, "department:coord", action="urge", note="Answer the company today.", clerk="Chen Wei")
    assert r.status_code == 200, r.text
    assert r.json()["timeline"][-1]["type"] == "appeal.urged.v1"


def test_a_cohandler_contributing_late_breaches_its_own_clock_never_the_leads(stack):
    appeal_id = submit(stack)
    lead = eventually(lambda: (at_router(stack, appeal_id) or {}).get("lead"), "routing")
    helper = "justice"
    r = act(stack, appeal_id, f"department:{lead}", action="add_cohandler", target_department=helper)
    assert r.status_code == 200, r.text
    assert act(stack, appeal_id, f"department:{lead}", action="accept", note="On it.").status_code == 200

    def contribution() -> dict | None:
        found = [c for c in sla_clocks(stack, appeal_id) if c["clock"] == "contribution"]
        return found[0] if found and found[0]["state"] == "breached" else None

    clock = eventually(contribution, "the co-handler's contribution clock breaching", timeout=CONTRIBUTION_SECONDS + 30)
    assert clock["department"] == helper
    r = act(stack, appeal_id, f"department:{helper}", action="contribute", note="Deferral approved on our side.")
    assert r.status_code == 200, r.text
    assert r.json()["contributions"][0]["department"] == helper
    # The lead can resolve; its own clocks were never the co-handler's.
    assert act(stack, appeal_id, f"department:{lead}", action="resolve", resolution="Deferred.").status_code == 200
    clocks = sla_clocks(stack, appeal_id)
    assert all(not c["breached"] for c in clocks if c["department"] == lead and c["clock"] != "contribution")

    # Stats counts the late contribution against the co-handler.
    # Periods are whole hours.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {"from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(hours=2)).isoformat()}

    def counted() -> dict | None:
        r = httpx.get(stack.url("stats") + "/v1/stats/departments", params=window, headers=key(stack, "operator"))
        rows = [d for d in r.json()["departments"] if d["department"] == helper] if r.status_code == 200 else []
        return rows[0] if rows and rows[0].get("contributions_late") else None

    row = eventually(counted, "stats counting the late contribution")
    assert row["contributions_late"] == 1
