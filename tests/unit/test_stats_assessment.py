"""Stats' count of return visits (回访), answers and redos (重办), and the city's monthly scorecard, as plain
functions: the score mapping, one answer per round and the last round's, outside and unreached apart, redos and an
outside review undoing one, the month of each measure in city time, the score, ranks and lists, the formula of a
month, the monthly report, the metrics, and the same scorecard from a replay in another order."""

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import httpx
import pytest

from libs.config import ConfigError, Formula, ScorecardRules, load_assessment, load_city
from libs.kinds import AppealStatus, ClockState, EventType
from services.stats import assessment, flows, monthly, projection, report, service
from services.stats.app import create_app
from services.stats.buckets import cover
from services.stats.metrics import ScorecardMetrics
from services.stats.models import MonthlyReport, Scorecard
from services.stats.runtime import city_zone
from services.stats.settings import StatsSettings
from tests.unit.test_stats import APPEAL, DEPT, T0, changed, clock_event, fold_all, submitted

CONFIG = Path(__file__).resolve().parents[2] / "config"
SH = ZoneInfo("Asia/Shanghai")
OTHER, THIRD, OFFICE = "nanshan-tax", "nanshan-hrss", "coord"
S, E = AppealStatus, EventType


@pytest.fixture(scope="module")
def city():
    return load_city(CONFIG)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def resolved(seq, at, round_=1, **extra):
    return changed(E.appeal_resolved, S.resolved, seq, at, resolution="Done", visit_round=round_, **extra)


def company(seq, at, score, round_=1, solved=True, **extra):
    """The company's answer as router writes it: confirmed, or "not resolved" reopening the appeal as a redo."""
    said = {"actor": "company", "satisfaction": score, "visit_round": round_}
    if not solved:
        said.update(visit_outcome="unsatisfied", cause="department", redo=True, redo_count=round_)
    said.update(extra)
    if solved:
        return changed(E.appeal_confirmed, S.confirmed, seq, at, **said)
    return changed(E.appeal_reopened, S.reopened, seq, at, **said)


def visited(seq, at, outcome=None, cause=None, round_=1, reached=True, status=S.resolved, **extra):
    """One attempt of the office's return visit: the office is the actor, the lead the department."""
    said = {"actor": OFFICE, "clerk": "zhou-min", "visit_round": round_, "reached": reached, **extra}
    return changed(E.appeal_visited, status, seq, at, visit_outcome=outcome, cause=cause, **said)


def redone(seq, at, round_=1, **extra):
    """The redo the office's visit orders after an unsatisfied answer at the department's fault."""
    return changed(
        E.appeal_reopened,
        S.reopened,
        seq,
        at,
        actor=OFFICE,
        visit_round=round_,
        visit_outcome="unsatisfied",
        satisfaction=2,
        cause="department",
        redo=True,
        redo_count=round_,
        **extra,
    )


def closed(seq, at, **extra):
    return changed(E.appeal_closed, S.closed, seq, at, **extra)


def routed_and_resolved(at=T0, appeal_id=APPEAL, department=DEPT):
    """Submitted and routed at `at`, resolved an hour later (round 1)."""
    of = {"appeal_id": appeal_id, "department": department, "submitted_at": at}
    return [
        submitted(at=at, appeal_id=appeal_id),
        changed(E.appeal_routed, S.routed, 1, at, **of),
        resolved(2, at + timedelta(hours=1), **of),
    ]


ANSWER_FIGURES = ("answers|", "redos|", "visit_attempts|")


def answers_in(total, bucket):
    return {name: n for name, n in total.get(bucket, {}).items() if name.startswith(ANSWER_FIGURES[:2])}


def answer_buckets(total):
    """Every bucket's answers, redos and visit attempts: what a replay in any order must give alike."""
    found = {b: {k: n for k, n in f.items() if k.startswith(ANSWER_FIGURES)} for b, f in total.items()}
    return {b: f for b, f in found.items() if f}


@pytest.mark.parametrize(
    ("score", "outcome"),
    [(5, "satisfied"), (4, "basically_satisfied"), (3, "unsatisfied"), (2, "unsatisfied"), (1, "unsatisfied")],
)
def test_a_companys_score_counts_5_satisfied_4_basically_satisfied_1_to_3_unsatisfied(score, outcome):
    # Without the outcome router now maps: read from the score, as in the confirmations written before.
    _, total = fold_all([*routed_and_resolved(), company(3, hours(3), score, round_=None)])
    assert answers_in(total, "h:2026-03-03T17") == {f"answers|{DEPT}|{outcome}": 1}


@pytest.mark.parametrize("score", [0, 6, -3, 10**30])
def test_a_score_outside_1_to_5_counts_nothing_and_stops_nothing(score):
    doc, total = fold_all([*routed_and_resolved(), company(3, hours(3), score)])
    assert answers_in(total, "h:2026-03-03T17") == {} and not doc.get("answers")


def test_a_round_no_database_could_store_is_read_from_the_resolutions():
    doc, total = fold_all([*routed_and_resolved(), company(3, hours(3), 5, round_=10**30)])
    assert answers_in(total, "h:2026-03-03T17") == {f"answers|{DEPT}|satisfied": 1} and doc["answers"][0]["r"] is None


def test_a_visit_reached_is_its_rounds_answer_and_the_first_answer_of_a_round_counts():
    story = [
        *routed_and_resolved(),
        visited(3, hours(20), outcome="basically_satisfied", satisfaction=4),
        closed(4, hours(20), actor=OFFICE, visit_outcome="basically_satisfied", visit_round=1),
    ]
    _, total = fold_all(story)
    assert answers_in(total, "h:2026-03-04T10") == {f"answers|{DEPT}|basically_satisfied": 1}
    assert total["h:2026-03-04T10"][f"visit_attempts|{DEPT}"] == 1
    # The company answered the survey first: its answer is the round's, whatever order the events are read in.
    story.insert(3, company(5, hours(10), 5))
    for replay in (story, story[::-1], story[3:] + story[:3]):
        _, total = fold_all(replay)
        assert answers_in(total, "h:2026-03-04T00") == {f"answers|{DEPT}|satisfied": 1}
        assert answers_in(total, "h:2026-03-04T10") == {}


def test_only_the_last_rounds_answer_counts_and_the_first_leaves_its_hour():
    first = [
        *routed_and_resolved(),
        visited(3, hours(20), outcome="unsatisfied", cause="department", satisfaction=2),
        redone(4, hours(20), due_at=hours(90)),
    ]
    _, total = fold_all(first)
    assert answers_in(total, "h:2026-03-04T10") == {f"answers|{DEPT}|unsatisfied": 1, f"redos|{DEPT}": 1}
    story = [*first, resolved(5, hours(40), round_=2), company(6, hours(50), 5, round_=2)]
    doc, total = fold_all(story)
    assert answers_in(total, "h:2026-03-04T10") == {f"redos|{DEPT}": 1}, "the redo stays; round 1's answer left"
    assert answers_in(total, "h:2026-03-05T16") == {f"answers|{DEPT}|satisfied": 1}
    assert total == projection.appeal_counts(doc)
    assert answer_buckets(fold_all(story[::-1])[1]) == answer_buckets(total)


def test_rounds_of_events_written_before_rounds_were_stamped_are_read_from_the_resolutions():
    story = [
        *routed_and_resolved(),
        company(3, hours(3), 2, round_=None, solved=False, redo=None, cause=None, visit_outcome=None),
        resolved(4, hours(30), round_=None),
        company(5, hours(40), 4, round_=None, visit_outcome=None),
    ]
    _, total = fold_all(story)
    assert answers_in(total, "h:2026-03-03T17") == {f"redos|{DEPT}": 1}, "an old reopen with a score is a redo"
    assert answers_in(total, "h:2026-03-05T06") == {f"answers|{DEPT}|basically_satisfied": 1}


def test_unsatisfied_for_reasons_outside_and_unreached_are_apart_from_the_satisfaction_rate(city):
    outside = [
        *routed_and_resolved(),
        visited(3, hours(20), outcome="unsatisfied", cause="outside", satisfaction=1),
        closed(4, hours(20), actor=OFFICE, visit_outcome="unsatisfied", visit_round=1),
    ]
    _, total = fold_all(outside)
    assert answers_in(total, "h:2026-03-04T10") == {f"answers|{DEPT}|outside": 1}, "no redo either"
    unreached = [
        *routed_and_resolved(),
        *(visited(3 + n, hours(20 + n), reached=False) for n in range(3)),
        closed(6, hours(22), actor=OFFICE, visit_outcome="unreached", visit_round=1),
    ]
    _, total = fold_all(unreached)
    assert answers_in(total, "h:2026-03-04T12") == {f"answers|{DEPT}|unreached": 1}
    attempts = sum(n for f in total.values() for name, n in f.items() if name == f"visit_attempts|{DEPT}")
    assert attempts == 3, "the unreached attempts count nothing but attempts"
    counts = {
        f"answers|{DEPT}|satisfied": 3,
        f"answers|{DEPT}|basically_satisfied": 1,
        f"answers|{DEPT}|unsatisfied": 1,
        f"answers|{DEPT}|outside": 4,
        f"answers|{DEPT}|unreached": 5,
        f"answers|{OTHER}|outside": 1,
    }
    rows = {r["department"]: r for r in report.department_rates(city, counts, {}, [], {}, 10)}
    assert rows[DEPT]["satisfaction_rate"] == 0.8 and rows[DEPT]["feedback"] == 5
    assert (rows[DEPT]["outside"], rows[DEPT]["unreached"]) == (4, 5)
    assert rows[OTHER]["satisfaction_rate"] is None, "nothing answered at the department's reasons: no rate"


def test_a_redo_counts_in_its_hour_and_an_outside_review_undoes_it():
    said_not_resolved = [*routed_and_resolved(), company(3, hours(5), 2, solved=False, due_at=hours(80))]
    _, total = fold_all(said_not_resolved)
    assert answers_in(total, "h:2026-03-03T19") == {f"answers|{DEPT}|unsatisfied": 1, f"redos|{DEPT}": 1}
    confirmed = visited(4, hours(9), outcome="unsatisfied", cause="department", status=S.reopened)
    _, total = fold_all([*said_not_resolved, confirmed])
    assert answers_in(total, "h:2026-03-03T19") == {f"answers|{DEPT}|unsatisfied": 1, f"redos|{DEPT}": 1}
    reviewed = [
        *said_not_resolved,
        confirmed,
        visited(5, hours(10), outcome="unsatisfied", cause="outside", status=S.reopened),
        closed(6, hours(10), actor=OFFICE),
    ]
    doc, total = fold_all(reviewed)
    assert answers_in(total, "h:2026-03-03T19") == {f"answers|{DEPT}|outside": 1}, "answered then, outside now"
    assert answers_in(total, "h:2026-03-04T00") == {}
    for replay in (reviewed[::-1], reviewed[3:] + reviewed[:3]):
        assert answer_buckets(fold_all(replay)[1]) == answer_buckets(total)
    assert all(projection.record(doc, event) is None for event in reviewed), "each event once"


# --- The month of each measure, and the scorecard -------------------------------------------------------------------


def project(events) -> dict[str, dict[str, int]]:
    """The buckets a batch of events leaves, hours and the city's days, as service.project writes them."""
    docs: dict[str, dict] = {}
    out: dict[str, dict[str, int]] = {}
    for event in events:
        doc = docs.setdefault(event.data.appeal_id, projection.new_document(event.data.appeal_id))
        for bucket, fields in projection.with_days(projection.record(doc, event) or {}, SH).items():
            into = out.setdefault(bucket, {})
            for name, n in fields.items():
                into[name] = into.get(name, 0) + n
    return out


def month_counts(buckets, month: str) -> dict[str, int]:
    """What service.window reads for a month: its whole days' buckets, plus hours."""
    days, hours_ = cover(*assessment.month_span(month, SH), SH, date.min)
    total: dict[str, int] = {}
    for name in [f"hd:{d}" for d in days] + [f"h:{h}" for h in hours_]:
        for field, n in buckets.get(name, {}).items():
            total[field] = total.get(field, 0) + n
    return total


def card_of(city, buckets, month, rules, formula_month=None):
    rows = report.department_rates(city, month_counts(buckets, month), {}, [], {}, 10)
    return assessment.scorecard(rows, rules, rules.formula(formula_month or month))


def rules_of(*formulas, minimum_volume=1, red=1, black=1) -> ScorecardRules:
    return ScorecardRules(
        minimum_volume=minimum_volume, red_list=red, black_list=black, formulas=[Formula(**f) for f in formulas]
    )


ZHUNGEER = {
    "from": "2020-01",
    "weights": {"response_rate": 30, "resolution_rate": 35, "satisfaction_rate": 35},
    "deductions": {"breach": 1, "redo": 1, "overruled_send_back": 0.5, "urging_level_3": 2},
}


def test_an_assignment_in_late_november_and_its_breach_in_december_count_in_their_own_months(city):
    # 20:00 on 30 November in Shenzhen; the scope clock breaches at 01:00 on 1 December there, still November in UTC.
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    breach = datetime(2026, 11, 30, 17, tzinfo=UTC)
    events = [
        submitted(at=at),
        changed(E.appeal_routed, S.routed, 1, at, submitted_at=at),
        clock_event(E.sla_started, ClockState.running, at, due=breach),
        clock_event(E.sla_breached, ClockState.breached, breach),
    ]
    buckets = project(events)
    rules = rules_of(ZHUNGEER)
    november = {c["department"]: c for c in card_of(city, buckets, "2026-11", rules)["departments"]}[DEPT]
    december = {c["department"]: c for c in card_of(city, buckets, "2026-12", rules)["departments"]}[DEPT]
    assert (november["volume"], november["breaches"]) == (1, 0)
    assert (december["volume"], december["breaches"]) == (0, 1)
    assert assessment.month_of(breach, SH) == "2026-12" and assessment.month_of(breach, UTC) == "2026-11"
    assert assessment.month_span("2026-12", SH) == (datetime(2026, 12, 1, tzinfo=SH), datetime(2027, 1, 1, tzinfo=SH))


def figures(department, volume, response, resolution, satisfaction, **counts):
    """A row of department figures as report.department_rates gives it, with the measures a scorecard reads."""
    row = {"department": department, "name": department.title(), "assigned": volume}
    row.update(response_rate=response, resolution_rate=resolution, satisfaction_rate=satisfaction)
    for name in ("urgings_level_1", "redos", "send_backs_overruled", "urgings_level_3", *assessment.ANSWERS):
        row[name] = counts.get(name, 0)
    return row


@pytest.mark.parametrize(
    ("rates", "deducted", "score"),
    [
        ((1.0, 1.0, 1.0), {}, 100.0),
        ((0.5, 1.0, 0.8), {}, 15 + 35 + 28),
        ((0.5, 1.0, None), {}, round((15 + 35) * 100 / 65, 2)),  # no answers: scaled by 100 / (30 + 35)
        ((None, 0.5, None), {}, 50.0),
        ((None, None, None), {}, None),  # nothing to score
        ((1.0, 1.0, 1.0), {"urgings_level_1": 3, "redos": 2, "send_backs_overruled": 1, "urgings_level_3": 1}, 92.5),
        ((0.0, 0.0, 0.0), {"urgings_level_1": 2}, -2.0),
    ],
)
def test_the_score_weighs_the_rates_with_a_denominator_and_deducts_per_count(rates, deducted, score):
    row = figures(DEPT, 10, *rates, **deducted)
    assert assessment.score(assessment.measures(row), Formula(**ZHUNGEER)) == score


def test_ties_share_a_rank_and_departments_under_the_minimum_volume_are_listed_not_ranked():
    rows = [
        figures("a", 12, 1.0, 1.0, 1.0, redos=1),  # 99
        figures("b", 12, 1.0, 1.0, 1.0, urgings_level_1=1),  # 99
        figures("c", 12, 1.0, 1.0, 1.0),  # 100
        figures("d", 12, 0.5, 0.5, 0.5),  # 50
        figures("e", 3, 1.0, 1.0, 1.0),  # 100, but only 3 assignments
        figures("f", 12, None, None, None),  # nothing to score
    ]
    card = assessment.scorecard(rows, rules_of(ZHUNGEER, minimum_volume=10, red=1, black=1), Formula(**ZHUNGEER))
    ranks = {c["department"]: c["rank"] for c in card["departments"]}
    assert ranks == {"c": 1, "a": 2, "b": 2, "d": 4, "e": None, "f": None}
    assert [c["department"] for c in card["departments"]] == ["c", "a", "b", "d", "f", "e"], "unranked by volume"
    assert card["red_list"] == ["c"] and card["black_list"] == ["d"] and card["ranked_count"] == 4
    assert {c["department"]: c["list"] for c in card["departments"]}["e"] is None
    # Two on the red list: the tie at its border is in; the black list keeps off the red list's departments.
    card = assessment.scorecard(rows, rules_of(ZHUNGEER, minimum_volume=10, red=2, black=3), Formula(**ZHUNGEER))
    assert card["red_list"] == ["c", "a", "b"] and card["black_list"] == ["d"]
    few = assessment.scorecard(rows[:2], rules_of(ZHUNGEER, red=3, black=3), Formula(**ZHUNGEER))
    assert few["red_list"] == ["a", "b"] and few["black_list"] == []
    none = assessment.scorecard(rows, rules_of(ZHUNGEER, red=0, black=0), Formula(**ZHUNGEER))
    assert none["red_list"] == none["black_list"] == []


def test_a_formula_from_a_later_month_leaves_earlier_months_and_previews_on_them():
    later = {
        **ZHUNGEER,
        "from": "2026-12",
        "weights": {"response_rate": 0, "resolution_rate": 0, "satisfaction_rate": 100},
    }
    rules = rules_of(ZHUNGEER, later, red=1, black=1)
    rows = [figures("quick", 12, 1.0, 1.0, 0.5), figures("liked", 12, 0.5, 0.5, 1.0)]
    november = assessment.scorecard(rows, rules, rules.formula("2026-11"))
    assert november["red_list"] == ["quick"] and november["black_list"] == ["liked"]
    assert november["formula"]["from"] == "2020-01"
    preview = assessment.scorecard(rows, rules, rules.formula("2026-12"))
    assert preview["red_list"] == ["liked"] and preview["formula"]["from"] == "2026-12"
    assert {c["department"]: c["score"] for c in preview["departments"]} == {"liked": 100.0, "quick": 50.0}
    assert assessment.scorecard(rows, rules, rules.formula("2026-11")) == november, "November keeps its lists"


def month_story():
    """November 2026 in Shenzhen: DEPT's company answers satisfied on one appeal and "not resolved" on another (a
    redo, resolved again, round 2 unanswered); OTHER's visit finds the cause outside on one, and another ends
    unreached; THIRD's company answers basically satisfied. Each routed early in the month, answered a day on."""
    tails = [
        (DEPT, lambda s, t, of: [company(s, t, 5, **of)]),
        (
            DEPT,
            lambda s, t, of: [company(s, t, 2, solved=False, **of), resolved(s + 1, t + timedelta(hours=5), 2, **of)],
        ),
        (OTHER, lambda s, t, of: [visited(s, t, outcome="unsatisfied", cause="outside", satisfaction=1, **of)]),
        (OTHER, lambda s, t, of: [closed(s, t, visit_outcome="unreached", visit_round=1, **of)]),
        (THIRD, lambda s, t, of: [company(s, t, 4, **of)]),
    ]
    events = []
    for n, (lead, tail) in enumerate(tails):
        appeal_id, at = f"{APPEAL[:-2]}{n:02d}", datetime(2026, 11, 3 + n, 2, tzinfo=UTC)
        events += routed_and_resolved(at, appeal_id, lead)
        events += tail(3, at + timedelta(days=1), {"appeal_id": appeal_id, "department": lead, "submitted_at": at})
    return events


def rebuilt_order(events):
    """As a rebuild may read them: the appeals' lifecycle in the order of their partitions, other appeals first, and
    the submissions (another topic) last."""
    lifecycle: dict[str, list] = {}
    for event in events:
        if event.type != E.appeal_submitted:
            lifecycle.setdefault(event.data.appeal_id, []).append(event)
    return [e for appeal in reversed(lifecycle.values()) for e in appeal] + [
        e for e in events if e.type == E.appeal_submitted
    ]


def test_a_replay_in_another_order_gives_the_same_scorecard(city):
    events = month_story()
    rules = rules_of(ZHUNGEER, red=1, black=1)
    live = card_of(city, project(events), "2026-11", rules)
    assert card_of(city, project(rebuilt_order(events)), "2026-11", rules) == live
    rows = {c["department"]: c for c in live["departments"]}
    assert (rows[DEPT]["satisfied"], rows[DEPT]["unsatisfied"], rows[DEPT]["redos"]) == (1, 1, 1)
    assert (rows[OTHER]["outside"], rows[OTHER]["unreached"], rows[OTHER]["satisfaction_rate"]) == (1, 1, None)
    assert rows[THIRD]["basically_satisfied"] == 1 and rows[THIRD]["satisfaction_rate"] == 1.0
    # DEPT: 2 assigned, both resolved now (the redo too), satisfaction 1/2, 1 redo; no clocks here, no response rate:
    # (35 x 1 + 35 x 0.5) scaled by 100 / 70, less 1 for the redo.
    assert rows[DEPT]["resolution_rate"] == 1.0 and rows[DEPT]["satisfaction_rate"] == 0.5
    assert rows[DEPT]["score"] == 74.0 and rows[DEPT]["rank"] == 3
    assert rows[OTHER]["score"] == rows[THIRD]["score"] == 100.0, "outside and unreached weigh nothing"
    assert live["red_list"] == [THIRD, OTHER] and live["black_list"] == [DEPT], "a tie in code order"


# --- What reads the scorecard: the endpoint's flow, the monthly report, the metrics, the city's time zone ---------


def of_month(card, month):
    """A scorecard as flows.scorecard gives it: with its month."""
    start, end = assessment.month_span(month, SH)
    return {"month": month, "from": start, "to": end, "timezone": SH.key, "preview": False, **card}


class _Clock:
    def now(self):
        return datetime(2026, 11, 30, 18, tzinfo=UTC)  # already 1 December in Shenzhen


def runtime_over(city, buckets, monkeypatch, rules):
    """What flows.scorecard needs of stats' runtime, with the store read from `buckets`."""

    async def window(db, prefix, start, end, tz):
        return month_counts(buckets, assessment.month_of(start, tz)) if prefix == "h:" else {}

    async def nothing(*_):
        return [] if len(_) > 1 else {}

    monkeypatch.setattr(service, "window", window)
    monkeypatch.setattr(service, "overdue_clocks", nothing)
    monkeypatch.setattr(service, "totals", nothing)
    return SimpleNamespace(
        db=None,
        tz=SH,
        clock=_Clock(),
        city=city,
        settings=SimpleNamespace(min_volume=10),
        assessment=SimpleNamespace(scorecard=rules),
    )


async def test_the_scorecard_of_a_month_and_a_preview_of_a_later_formula_as_the_endpoint_gives_them(city, monkeypatch):
    later = {**ZHUNGEER, "from": "2026-12", "deductions": {**ZHUNGEER["deductions"], "redo": 30}}
    rules = rules_of(ZHUNGEER, later, red=1, black=1)
    runtime = runtime_over(city, project(month_story()), monkeypatch, rules)
    assert flows.this_month(runtime) == "2026-12"
    card = Scorecard.model_validate(await flows.scorecard(runtime, "2026-11")).model_dump(by_alias=True, mode="json")
    assert card["month"] == "2026-11" and card["preview"] is False and card["formula"]["from"] == "2020-01"
    assert card["from"] == "2026-11-01T00:00:00+08:00" and card["to"] == "2026-12-01T00:00:00+08:00"
    assert card["timezone"] == "Asia/Shanghai" and card["black_list"] == [DEPT]
    row = card["departments"][0]
    assert set(row) == {
        "department", "name", "volume", "response_rate", "resolution_rate", "satisfaction_rate", "breaches", "redos",
        "overruled_send_backs", "urgings_level_3", "satisfied", "basically_satisfied", "unsatisfied", "outside",
        "unreached", "score", "ranked", "rank", "list",
    }  # fmt: skip
    preview = await flows.scorecard(runtime, "2026-11", formula="2026-12")
    assert preview["preview"] is True and preview["formula"]["deductions"]["redo"] == 30
    assert {c["department"]: c["score"] for c in preview["departments"]}[DEPT] == 45.0
    assert (await flows.scorecard(runtime, "2026-11"))["black_list"] == [DEPT], "the month's own lists stay"


def test_the_monthly_report_says_the_months_figures_as_the_seeds_word_theirs(city):
    card = card_of(city, project(month_story()), "2026-11", rules_of(ZHUNGEER, red=1, black=1))
    data = monthly.monthly_report(of_month(card, "2026-11"))
    assert data["answers"] == {
        "satisfied": 1,
        "basically_satisfied": 1,
        "unsatisfied": 1,
        "outside": 1,
        "unreached": 1,
        "answers": 4,
        "satisfaction_rate": 0.6667,
        "redos": 1,
    }
    names = {d.code: d.name for d in city.departments}
    assert data["text"] == (
        "In November 2026 the city's departments received 4 answers to return visits and from companies: "
        "1 satisfied, 1 basically satisfied and 1 unsatisfied (satisfaction rate 67%); 1 more was unsatisfied for "
        "reasons outside the departments, and 1 visit ended with the company unreached. 1 redo was ordered. "
        f"3 departments were ranked, of {len(city.departments)} (those with at least 1 lead assignments in the "
        f"month). Red list: {names[THIRD]} (100) and {names[OTHER]} (100); black list: {names[DEPT]} (74). "
        "Scores: 30 × response rate + 35 × resolution rate + 35 × satisfaction rate, minus 1 per breach, 1 per "
        "redo, 0.5 per overruled send-back and 2 per level-3 urging (the formula in effect from January 2020)."
    )
    MonthlyReport.model_validate(data)
    markdown = monthly.to_markdown(data)
    assert markdown.startswith("# Monthly report November 2026\n")
    assert (
        f"| 3 | {DEPT} | {monthly.md_text(names[DEPT])} | 2 |  | 100% | 50% | 0 | 1 | 0 | 0 | 0 | 0 | 74.00 | black |"
        in markdown
    )
    rows = monthly.to_csv(data).splitlines()
    assert rows[0].startswith("rank,department,name,volume,response_rate,resolution_rate,satisfaction_rate,")
    assert f"3,{DEPT},{names[DEPT]},2,,1.0,0.5,0,1,0,0,1,0,1,0,0,74.0,black" in rows


def test_a_monthly_report_quiet_or_with_odd_names_stays_true_and_harmless():
    rows = [figures("x", 0, None, None, None), {**figures("y", 1, 1.0, None, None), "name": "=HYPERLINK(1)"}]
    card = assessment.scorecard(rows, rules_of(ZHUNGEER, minimum_volume=5), Formula(**ZHUNGEER))
    data = monthly.monthly_report(of_month(card, "2027-02"))
    assert "received 0 answers" in data["text"] and "(no satisfaction rate)" in data["text"]
    assert "0 redos were ordered. 0 departments were ranked, of 2" in data["text"] and "Red list" not in data["text"]
    assert "'=HYPERLINK(1)" in monthly.to_csv(data) and "=HYPERLINK" not in monthly.to_csv(data).replace("'=", "")


def test_the_metrics_give_this_months_score_and_answers_by_outcome_for_every_department():
    metrics = ScorecardMetrics([DEPT, OTHER, THIRD])
    assert list(metrics.collect()) == [], "nothing until the first scorecard"
    rows = [figures(DEPT, 12, 1.0, 0.5, 1.0, satisfied=3, redos=2), figures(OTHER, 2, None, None, None, outside=1)]
    metrics.update(assessment.scorecard(rows, rules_of(ZHUNGEER), Formula(**ZHUNGEER)))
    families = {m.name: m for m in metrics.collect()}
    assert {(s.labels["department"], s.value) for s in families["appeals_scorecard_score"].samples} == {
        (DEPT, 82.5 - 2)
    }, "none for a department with nothing to score"
    answers = {
        (s.labels["department"], s.labels["outcome"]): s.value for s in families["appeals_scorecard_answers"].samples
    }
    assert len(answers) == 3 * 5 and answers[(DEPT, "satisfied")] == 3 and answers[(OTHER, "outside")] == 1
    assert answers[(THIRD, "unreached")] == 0, "a department not in the scorecard reads 0"
    assert {s.labels["department"]: s.value for s in families["appeals_scorecard_redos"].samples}[DEPT] == 2


def test_stats_counts_days_and_months_in_the_citys_time_zone_and_refuses_another(city):
    assert city_zone(StatsSettings(), city).key == "Asia/Shanghai", "the coordinating office's calendar's"
    assert city_zone(StatsSettings(timezone="Asia/Shanghai"), city).key == "Asia/Shanghai"
    with pytest.raises(ConfigError, match="not the city's time zone"):
        city_zone(StatsSettings(timezone="Europe/Berlin"), city)


def test_an_invalid_assessment_file_stops_stats_with_a_message(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    text = (config / "assessment.yaml").read_text().replace("red_list: 3", "red_list: -1")
    (config / "assessment.yaml").write_text(text)
    with pytest.raises(ConfigError, match="red_list"):
        create_app(StatsSettings(config_dir=config))
    assert load_assessment(CONFIG, load_city(CONFIG)).scorecard.formula("2026-11").weights.satisfaction_rate == 35


async def test_the_scorecard_and_the_monthly_report_over_http(city, demo_keys, monkeypatch):
    keys, keys_file = demo_keys
    app = create_app(StatsSettings(api_keys_file=keys_file, environment="test"))
    runtime = app.state.runtime
    runtime._db = object()  # what the store would be given; its reads are the buckets of the month's story
    stand_in = runtime_over(city, project(month_story()), monkeypatch, runtime.assessment.scorecard)
    monkeypatch.setattr(runtime, "clock", stand_in.clock)
    operator = {"X-Api-Key": keys["operator"]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://stats") as client:
        card = (await client.get("/v1/stats/scorecard", params={"month": "2026-11"}, headers=operator)).json()
        assert card["month"] == "2026-11" and card["minimum_volume"] == 10 and card["red_list"] == []
        assert {d["department"] for d in card["departments"]} == {d.code for d in city.departments}
        assert (await client.get("/v1/stats/scorecard", headers=operator)).json()["month"] == "2026-12"
        bad_ones = ({"month": "2026-13"}, {"month": "Nov"}, {"month": "0000-01"}, {"month": "9999-12"})
        for bad in (*bad_ones, {"month": "2026-11", "formula": "2026-1"}):
            assert (await client.get("/v1/stats/scorecard", params=bad, headers=operator)).status_code == 422
        # Days and times too: year 1 in the city's UTC+8 would start in year 0, which no datetime holds.
        for path, bad in (
            ("/v1/reports/daily", {"date": "0001-01-01"}),
            ("/v1/reports/daily", {"from": "0001-01-01", "to": "0001-01-02"}),
            ("/v1/stats/summary", {"to": "9999-12-31T23:00"}),
        ):
            refused = await client.get(path, params=bad, headers=operator)
            assert refused.status_code == 422 and "from 2000 to 9998" in refused.text, (path, bad, refused.text)
        clerk = {"X-Api-Key": keys[f"department:{DEPT}"]}
        own = (await client.get("/v1/stats/scorecard", params={"month": "2026-11"}, headers=clerk)).json()
        assert [d["department"] for d in own["departments"]] == [DEPT], "a department reads its own line alone"
        assert own["ranked_count"] == card["ranked_count"] == 0 and own["formula"] == card["formula"]
        assert (await client.get("/v1/reports/monthly", headers=clerk)).status_code == 403
        channel = {"X-Api-Key": keys["channel:wechat"]}
        assert (await client.get("/v1/stats/scorecard", headers=channel)).status_code == 403
        report_of = {"month": "2026-11"}
        body = (await client.get("/v1/reports/monthly", params=report_of, headers=operator)).json()
        assert body["answers"]["answers"] == 4 and body["text"].startswith("In November 2026 the city's departments")
        markdown = await client.get(
            "/v1/reports/monthly", params=report_of, headers={**operator, "Accept": "text/markdown"}
        )
        assert markdown.text.startswith("# Monthly report November 2026")
        csv_text = await client.get("/v1/reports/monthly", params=report_of, headers={**operator, "Accept": "text/csv"})
        assert csv_text.headers["content-type"].startswith("text/csv") and len(csv_text.text.splitlines()) == 1 + len(
            city.departments
        )
