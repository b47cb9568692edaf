"""Return visits, redos and the city's scorecard on the running stack (docs/domain.md, "Return visits and
assessment").

One stack for the module, every service, with a visit calendar of seconds (`assessment_config`
below): the survey link goes 2 s after a resolution, the office calls 2 s later, and a visit
nobody answered ends unreached 20 s after it was due. Two departments resolve appeals; their
companies answer, are visited, or stay silent; the figures and the scorecard are then a hand count.
"""

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from tests.e2e.test_whole_stack import assert_rebuild_equals_live
from tests.helpers import appeal_body, eventually, fresh_stack, key

pytestmark = pytest.mark.timeout(600)

A, B = "nanshan-finance", "nanshan-hrss"  # financing and labour appeals in Nanshan
CITY_TZ = ZoneInfo("Asia/Shanghai")
DUE, CALL, UNREACHED = 2, 2, 20


def this_month() -> str:
    return datetime.now(CITY_TZ).strftime("%Y-%m")


def next_month() -> str:
    now = datetime.now(CITY_TZ)
    return f"{now.year + now.month // 12}-{now.month % 12 + 1:02d}"


# From next month the city weighs the resolution rate alone: the two departments swap places there.
NEXT_WEIGHTS = {"response_rate": 0, "resolution_rate": 100, "satisfaction_rate": 0}


def assessment_config(config: Path) -> None:
    """Visits in seconds, every department ranked, lists of one, and a formula that takes effect next month."""
    path = config / "assessment.yaml"
    assessment = yaml.safe_load(path.read_text())
    assessment["return_visits"].update(
        due_after=f"{DUE}s", call_after=f"{CALL}s", unreached_after=f"{UNREACHED}s", attempts=3
    )
    assessment["redo"]["supervise_after"] = 1
    scorecard = assessment["scorecard"]
    scorecard.update(minimum_volume=1, red_list=1, black_list=1)
    nothing_off = {"breach": 0, "redo": 0, "overruled_send_back": 0, "urging_level_3": 0}
    scorecard["formulas"].append({"from": next_month(), "weights": NEXT_WEIGHTS, "deductions": nothing_off})
    path.write_text(yaml.safe_dump(assessment, allow_unicode=True))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "visits-stack", configure=assessment_config)
    yield s
    s.stop()


def at_router(stack, appeal_id: str) -> dict:
    r = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers=key(stack, "operator"), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def lead_of(stack, appeal_id: str) -> str | None:
    """The appeal's lead once router has routed it; None before (404 until router has stored it)."""
    r = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers=key(stack, "operator"), timeout=30)
    assert r.status_code in (200, 404), r.text
    return r.json().get("lead") if r.status_code == 200 else None


def resolved_appeal(stack, category: str) -> tuple[str, str]:
    """An appeal of `category` in Nanshan, accepted and resolved by its lead: (appeal id, status token)."""
    r = httpx.post(
        stack.url("intake") + "/v1/appeals",
        json=appeal_body(category=category),
        headers=key(stack, "channel:web"),
        timeout=30,
    )
    assert r.status_code == 202, r.text
    appeal_id, token = r.json()["appeal_id"], r.json()["status_token"]
    lead = eventually(lambda: lead_of(stack, appeal_id), "routing")
    for body in ({"action": "accept"}, {"action": "resolve", "resolution": "Repayment deferred by six months."}):
        r = httpx.post(
            stack.url("router") + f"/v1/appeals/{appeal_id}/actions",
            json=body,
            headers=key(stack, f"department:{lead}"),
            timeout=30,
        )
        assert r.status_code == 200, r.text
    return appeal_id, token


def visits(stack, state: str, scope: str = "department:coord") -> list[dict]:
    r = httpx.get(stack.url("router") + "/v1/return-visits", params={"state": state}, headers=key(stack, scope))
    assert r.status_code == 200, r.text
    return r.json()


def attempt(stack, appeal_id: str, scope: str = "department:coord", **body: Any) -> httpx.Response:
    return httpx.post(
        stack.url("router") + f"/v1/return-visits/{appeal_id}/attempts",
        json={"visitor": "Zhou Min", **body},
        headers=key(stack, scope),
        timeout=30,
    )


def answer(stack, appeal_id: str, token: str, resolved: bool, satisfaction: int) -> None:
    """The company answers on its follow page (the survey link), as a visit."""
    r = httpx.post(
        stack.url("intake") + f"/v1/appeals/{appeal_id}/feedback",
        json={"resolved": resolved, "satisfaction": satisfaction},
        headers={"X-Status-Token": token},
        timeout=30,
    )
    assert r.status_code == 202, r.text


def told(stack, appeal_id: str, event_type: str) -> list[dict]:
    r = httpx.get(
        stack.url("notify") + "/v1/notifications", params={"appeal_id": appeal_id}, headers=key(stack, "operator")
    )
    return [n for n in r.json() if n["event_type"] == event_type]


@pytest.fixture(scope="module")
def appeals(stack) -> dict[str, tuple[str, str]]:
    """Six appeals resolved by A and three by B, their surveys sent."""
    made = {f"A{n}": resolved_appeal(stack, "financing") for n in range(1, 7)}
    made |= {f"B{n}": resolved_appeal(stack, "labour") for n in range(1, 4)}
    assert {at_router(stack, appeal_id)["lead"] for appeal_id, _ in made.values()} == {A, B}
    wanted = {appeal_id for appeal_id, _ in made.values()}

    def surveyed() -> bool:
        rows = {row["appeal_id"]: row for row in visits(stack, "open", scope="operator")}
        return all(rows.get(i, {}).get("visit", {}).get("state") == "surveyed" for i in wanted)

    eventually(surveyed, "every survey sent")
    return made


def test_the_company_gets_the_survey_link_when_its_visit_is_due(stack, appeals):
    appeal_id, _ = appeals["A1"]
    sent = eventually(lambda: told(stack, appeal_id, "appeal.visit_due.v1"), "the survey link sent")
    assert {n["recipient"] for n in sent} == {"company"}
    # The visit is on record with its times, on the office's calendar of seconds.
    visit = at_router(stack, appeal_id)["visit"]
    assert (visit["round"], visit["state"]) == (1, "surveyed")
    due, call_from = datetime.fromisoformat(visit["due_at"]), datetime.fromisoformat(visit["call_from"])
    assert (call_from - due).total_seconds() == CALL


def test_only_the_office_and_operators_keep_the_visits_and_an_attempt_names_what_is_missing(stack, appeals):
    appeal_id, _ = appeals["A2"]
    r = httpx.get(stack.url("router") + "/v1/return-visits", headers=key(stack, f"department:{A}"))
    assert r.status_code == 403
    assert attempt(stack, appeal_id, scope=f"department:{A}", reached=True, score=5).status_code == 403
    missing = attempt(stack, appeal_id, reached=True, score=2)
    assert missing.status_code == 422 and "cause" in missing.json()["detail"]
    # Open tasks show the contact to call; the office's visitor reads it, and that is on record.
    row = next(r for r in visits(stack, "open") if r["appeal_id"] == appeal_id)
    assert row["contact"]["name"] == "Li Wei" and row["contact"]["phone"].endswith("13800138000")
    assert row["resolution"] == "Repayment deferred by six months."


def test_answers_visits_redos_and_the_unreached_close_each_appeal_as_the_office_records_them(stack, appeals):
    ids = {name: appeal_id for name, (appeal_id, _) in appeals.items()}
    # Companies answering the survey link: basically satisfied, confirmed though unsatisfied, satisfied.
    answer(stack, *appeals["A1"], resolved=True, satisfaction=4)
    answer(stack, *appeals["A6"], resolved=True, satisfaction=2)
    answer(stack, *appeals["B1"], resolved=True, satisfaction=5)
    # The office's calls.
    assert (
        attempt(
            stack, ids["A2"], reached=True, score=2, cause="outside", note="The policy does not cover it."
        ).status_code
        == 200
    )
    assert (
        attempt(stack, ids["A3"], reached=True, score=1, cause="department", note="The bank never called.").status_code
        == 200
    )
    for _ in range(3):
        r = attempt(stack, ids["A4"], reached=False, note="no answer")
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["visit"]["state"] == "unreached"
    assert attempt(stack, ids["B2"], reached=True, outcome="satisfied", score=5).status_code == 200
    assert attempt(stack, ids["B3"], reached=True, score=2, cause="department").status_code == 200
    ended = attempt(stack, ids["B2"], reached=True, score=5)
    assert ended.status_code == 409 and "no return visit is open" in ended.json()["detail"]

    # A5 stays silent: the office is asked to call it, then it ends unreached.
    calls = eventually(lambda: [r for r in visits(stack, "to_call") if r["appeal_id"] == ids["A5"]], "A5 to call")
    assert calls[0]["to_call"] and calls[0]["contact"]["name"] == "Li Wei"
    eventually(lambda: at_router(stack, ids["A5"])["status"] == "closed", "A5 ending unreached", timeout=UNREACHED + 30)
    assert at_router(stack, ids["A5"])["visit"]["state"] == "unreached"
    assert not [r for r in visits(stack, "unreached") if r["contact"]], "an ended task shows no contact"

    closed = {name: at_router(stack, i) for name, i in ids.items()}
    assert {name: (doc["status"], doc["visit"]["state"]) for name, doc in closed.items()} == {
        "A1": ("closed", "answered"),
        "A2": ("closed", "visited"),
        "A3": ("reopened", "visited"),
        "A4": ("closed", "unreached"),
        "A5": ("closed", "unreached"),
        "A6": ("closed", "answered"),
        "B1": ("closed", "answered"),
        "B2": ("closed", "visited"),
        "B3": ("reopened", "visited"),
    }


def test_a_redo_goes_back_to_the_lead_with_the_redo_s_clock_the_company_told_and_the_office_supervising(stack, appeals):
    for name, lead in (("A3", A), ("B3", B)):
        appeal_id = appeals[name][0]
        doc = eventually(lambda i=appeal_id: at_router(stack, i) if at_router(stack, i)["redo_count"] else None, "redo")
        assert (doc["status"], doc["lead"], doc["redo_count"]) == ("reopened", lead, 1)

        # sla runs a second resolution clock with the redo's target (3 working days by default), due when router
        # told the company.
        def redo_clock(i=appeal_id) -> dict | None:
            r = httpx.get(stack.url("sla") + f"/v1/appeals/{i}/sla", headers=key(stack, "operator"))
            runs = [c for c in r.json()["clocks"] if c["clock"] == "resolution" and c["state"] == "running"]
            return runs[0] if runs else None

        clock = eventually(redo_clock, "the redo's resolution clock")
        assert clock["target"] == "3wd"
        assert datetime.fromisoformat(clock["due_at"]) == datetime.fromisoformat(doc["redo_due_at"])
        company = eventually(lambda i=appeal_id: told(stack, i, "appeal.reopened.v1"), "the redo told")
        assert {"company", f"{lead}:handler", f"{lead}:head"} <= {n["recipient"] for n in company}
        # The company's page shows the visit, but neither who called nor what the visitor noted.
        page = httpx.get(
            stack.url("intake") + f"/v1/appeals/{appeal_id}", headers={"X-Status-Token": appeals[name][1]}, timeout=30
        ).json()
        visited = [e for e in page["timeline"] if e["type"] == "appeal.visited.v1"]
        assert visited and all(e["clerk"] is None and e["note"] is None for e in visited)
        # With supervise_after 1 here, the office's queue has it at once.
        queue = httpx.get(stack.url("router") + "/v1/appeals", params={"state": "redo"}, headers=key(stack, "operator"))
        assert appeal_id in {row["appeal_id"] for row in queue.json()}


# The hand count of the appeals above, this month. A: six assigned, five resolved and kept (A3 is redone), answers
# basically satisfied (A1) and unsatisfied (A3, A6), outside (A2) and unreached (A4, A5) apart, one redo. B: three
# assigned, two kept, satisfied twice (B1, B2), unsatisfied once (B3), one redo. Both accepted at once: every scope
# clock met.
HAND_COUNT = {
    A: {
        "volume": 6,
        "response_rate": 1.0,
        "resolution_rate": 5 / 6,
        "satisfaction_rate": 1 / 3,
        "redos": 1,
        "satisfied": 0,
        "basically_satisfied": 1,
        "unsatisfied": 2,
        "outside": 1,
        "unreached": 2,
        "breaches": 0,
    },
    B: {
        "volume": 3,
        "response_rate": 1.0,
        "resolution_rate": 2 / 3,
        "satisfaction_rate": 2 / 3,
        "redos": 1,
        "satisfied": 2,
        "basically_satisfied": 0,
        "unsatisfied": 1,
        "outside": 0,
        "unreached": 0,
        "breaches": 0,
    },
}
# 30 × response + 35 × resolution + 35 × satisfaction − 1 per redo; next month's formula weighs resolution alone.
SCORES = {A: 30 + 35 * 5 / 6 + 35 / 3 - 1, B: 30 + 35 * 2 / 3 + 35 * 2 / 3 - 1}
NEXT_SCORES = {A: 100 * 5 / 6, B: 100 * 2 / 3}


def scorecard(stack, **params: str) -> dict:
    r = httpx.get(stack.url("stats") + "/v1/stats/scorecard", params=params, headers=key(stack, "operator"))
    assert r.status_code == 200, r.text
    return r.json()


def counted(stack) -> dict | None:
    """This month's scorecard once stats has counted every answer above."""
    card = scorecard(stack, month=this_month())
    rows = {row["department"]: row for row in card["departments"]}
    done = all(rows[d]["unreached"] == HAND_COUNT[d]["unreached"] and rows[d]["redos"] == 1 for d in (A, B))
    return card if done else None


def test_the_figures_and_the_scorecard_are_the_hand_count_and_a_later_formula_leaves_this_month_as_it_was(
    stack, appeals
):
    card = eventually(lambda: counted(stack), "stats counting every answer", timeout=90)
    rows = {row["department"]: row for row in card["departments"]}
    for department, expected in HAND_COUNT.items():
        row = rows[department]
        assert {k: row[k] for k in expected} == pytest.approx(expected, abs=1e-3), department
        assert row["score"] == pytest.approx(SCORES[department], abs=0.01)
        assert row["ranked"]
    assert card["ranked_count"] == 2
    assert (card["red_list"], card["black_list"]) == ([B], [A])
    assert (rows[B]["rank"], rows[A]["rank"]) == (1, 2)
    assert card["formula"]["from"] == "2020-01"

    # The formula that takes effect next month swaps them there; this month keeps the lists it was published with.
    preview = scorecard(stack, month=this_month(), formula=next_month())
    assert preview["preview"] and preview["formula"]["weights"] == pytest.approx(NEXT_WEIGHTS)
    previewed = {row["department"]: row["score"] for row in preview["departments"] if row["department"] in (A, B)}
    assert previewed == pytest.approx(NEXT_SCORES, abs=0.01)
    assert (preview["red_list"], preview["black_list"]) == ([A], [B])
    assert scorecard(stack, month=this_month())["red_list"] == [B]

    # The department figures carry the same satisfaction, answers apart.
    r = httpx.get(
        stack.url("stats") + "/v1/stats/departments",
        params={"from": card["from"], "to": card["to"]},
        headers=key(stack, "operator"),
    )
    figures = {row["department"]: row for row in r.json()["departments"]}
    assert figures[A]["satisfaction_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert (figures[A]["outside"], figures[A]["unreached"], figures[B]["redos"]) == (1, 2, 1)

    # The monthly report says them in sentences.
    report = httpx.get(
        stack.url("stats") + "/v1/reports/monthly",
        params={"month": this_month()},
        headers={**key(stack, "operator"), "Accept": "text/markdown"},
    )
    assert report.status_code == 200, report.text
    text = " ".join(report.text.split())
    names = {row["department"]: row["name"] for row in card["departments"]}
    for said in (
        "2 satisfied, 1 basically satisfied and 3 unsatisfied (satisfaction rate 50%)",
        "1 more was unsatisfied for reasons outside the departments, and 2 visits ended with the company unreached.",
        "2 redos were ordered.",
        "2 departments were ranked",
        f"Red list: {names[B]} ({round(SCORES[B], 2):g}); black list: {names[A]} ({round(SCORES[A], 2):g}).",
    ):
        assert said in text, said


def test_a_rebuild_from_the_topics_gives_the_same_scorecard(stack, appeals):
    eventually(lambda: counted(stack), "stats counting every answer", timeout=90)
    # The scorecard is a function of the buckets and the configuration: equal buckets, equal scorecards.
    assert_rebuild_equals_live(stack)
