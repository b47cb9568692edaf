"""Companies as the government knows them, on the running stack: lists, a chosen department, liaisons, figures.

The stack imports config/lists at start, as `make run` does: 91440300ML00090007 is on the key SME
list with Zhou Min as its liaison; any other credit code is on no list.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.helpers import appeal_body, eventually, fresh_stack, key

pytestmark = pytest.mark.timeout(600)

LISTED = "91440300ML00090007"
LIAISON = "liaison:zhou-min"
# Workshop leases are operations: no catalogue policy, so no 24-hour target comes before the list's 48.
LEASE = {
    "category": "operations",
    "title": "Workshop lease ends",
    "description": "The landlord ends the lease of our workshop next month.",
    "flags": ["key_enterprise"],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "companies-stack")
    yield s
    s.stop()


def submit(stack, body: dict) -> str:
    r = httpx.post(stack.url("intake") + "/v1/appeals", json=body, headers=key(stack, "channel:web"), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["appeal_id"]


def at_router(stack, appeal_id: str) -> dict | None:
    r = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers=key(stack, "operator"), timeout=30)
    return r.json() if r.status_code == 200 else None


def routed_to(stack, appeal_id: str, lead: str | None = None) -> dict:
    return eventually(
        lambda: (
            (doc := at_router(stack, appeal_id))
            and doc["status"] == "routed"
            and (lead is None or doc["lead"] == lead)
            and doc
        ),
        f"{appeal_id} routed" + (f" to {lead}" if lead else ""),
    )


def act(stack, appeal_id: str, department: str, **body) -> None:
    r = httpx.post(
        stack.url("router") + f"/v1/appeals/{appeal_id}/actions",
        json=body,
        headers=key(stack, f"department:{department}"),
        timeout=30,
    )
    assert r.status_code == 200, r.text


def resolution_target(stack, appeal_id: str) -> timedelta:
    """How long the resolution clock gives, as sla reports it."""

    def clock() -> dict | None:
        r = httpx.get(stack.url("sla") + f"/v1/appeals/{appeal_id}/sla", headers=key(stack, "operator"), timeout=30)
        found = [c for c in r.json()["clocks"] if c["clock"] == "resolution"] if r.status_code == 200 else []
        return found[0] if found else None

    found = eventually(clock, f"the resolution clock of {appeal_id}")
    return datetime.fromisoformat(found["due_at"]) - datetime.fromisoformat(found["started_at"])


def liaison_heard(stack, appeal_id: str) -> Counter[tuple[str, str]]:
    r = httpx.get(
        stack.url("notify") + "/v1/notifications",
        params={"appeal_id": appeal_id},
        headers=key(stack, "operator"),
        timeout=30,
    )
    return Counter((n["event_type"], n["channel"]) for n in r.json() if n["recipient"] == LIAISON)


def test_lists_a_chosen_department_a_liaison_and_the_company_figures_through_the_stack(stack):
    # A flag the channel declares changes no deadline; the same appeal from a listed company gets 48 hours.
    declared = submit(stack, appeal_body(**LEASE))
    listed = submit(stack, appeal_body(enterprise={"uscc": LISTED, "district": "nanshan"}, **LEASE))
    assert routed_to(stack, declared)["sla_profile"] == "standard_72h"
    doc = routed_to(stack, listed)
    assert (doc["sla_profile"], doc["lists"], doc["declared_flags"]) == (
        "priority_48h",
        ["key_sme"],
        ["key_enterprise"],
    )
    assert resolution_target(stack, declared) == timedelta(hours=72)
    assert resolution_target(stack, listed) == timedelta(hours=48)

    # The listed company chooses commerce for a loan; commerce declines within its six hours and the rules route it.
    chosen = submit(stack, appeal_body(enterprise={"uscc": LISTED, "district": "nanshan"}, department="commerce"))
    assert routed_to(stack, chosen, "commerce")["cohandlers"] == []
    act(stack, chosen, "commerce", action="decline", guidance="Loans are the finance bureau's.")
    rerouted = routed_to(stack, chosen, "nanshan-finance")
    assert rerouted["declined_by"] == [] and rerouted["chosen_department"] == "commerce"

    def scope_of_commerce() -> dict | None:
        r = httpx.get(stack.url("sla") + f"/v1/appeals/{chosen}/sla", headers=key(stack, "operator"), timeout=30)
        # sla reads the lifecycle in gathered batches: the appeal's clocks may not be there yet.
        found = r.json()["clocks"] if r.status_code == 200 else []
        clocks = [c for c in found if c["clock"] == "scope" and c["department"] == "commerce"]
        return clocks[0] if clocks and clocks[0]["state"] != "running" else None

    scope = eventually(scope_of_commerce, "commerce's scope clock stopping")
    assert scope["state"] == "met" and not scope.get("breached"), "a decline within six hours breaches nothing"

    # The first company's appeal is resolved: that company has every appeal solved.
    lead = routed_to(stack, declared)["lead"]
    act(stack, declared, lead, action="accept", note="We are looking for a workshop.")
    act(stack, declared, lead, action="resolve", resolution="The district found a new workshop.")

    # Zhou Min, the listed company's liaison, hears once of each routing and of the decline; the other company
    # has no liaison.
    expected = {
        listed: {("appeal.routed.v1", "email"): 1, ("appeal.routed.v1", "wechat"): 1},
        chosen: {
            ("appeal.routed.v1", "email"): 1,
            ("appeal.routed.v1", "wechat"): 1,
            ("appeal.declined.v1", "email"): 1,
            ("appeal.declined.v1", "wechat"): 1,
        },
    }
    for appeal_id, heard in expected.items():
        eventually(lambda a=appeal_id, h=heard: liaison_heard(stack, a) == h, f"the liaison hearing of {appeal_id}")
    assert not liaison_heard(stack, declared)

    # By hand: two companies; both got an answer (a resolution, a decline with guidance); one has every
    # appeal solved; three appeals, two of them from the listed company.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {"from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(hours=2)).isoformat()}

    def figures() -> dict | None:
        r = httpx.get(stack.url("stats") + "/v1/stats/companies", params=window, headers=key(stack, "operator"))
        body = r.json()
        return body if (body["appeals"], body["solved"]) == (3, 1) else None

    body = eventually(figures, "stats counting the three appeals and the resolution")
    assert (body["companies"], body["answered"], body["solved"], body["appeals_per_company"]) == (2, 2, 1, 1.5)
    per_list = {row["list"]: (row["companies"], row["appeals"]) for row in body["lists"]}
    assert per_list == {"key_sme": (1, 2), "none": (1, 1)}
    report = httpx.get(stack.url("stats") + "/v1/reports/daily", params=window, headers=key(stack, "operator"))
    assert report.json()["companies"] == {k: body[k] for k in report.json()["companies"]}
    assert (
        "The 3 appeals were put forward by 2 companies: 2 of them have got an answer from a department, "
        "and 1 has had every appeal solved." in report.json()["text"]
    )
