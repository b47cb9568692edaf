"""Stats' count of the co-handlers' contributions (协办), as plain functions: each co-handler's own contribution
clock, met (on time) or breached (late or missing), counted against the co-handler as `clocks` counts every clock
(in the hour it started), apart from the lead's scope, response and resolution figures; the contribution rate;
the all-time totals behind `appeals_supervision_total`; several clocks on one appeal, each once."""

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from libs.config import load_city
from libs.envelopes import reports_of
from libs.kinds import AppealStatus, ClockState, EventType
from services.stats import projection, report
from services.stats.metrics import BusinessMetrics
from tests.helpers import packed
from tests.unit.test_stats import DEPT, T0, changed, clock_event, fold_all, submitted

CONFIG = Path(__file__).resolve().parents[2] / "config"
# The lead is DEPT (nanshan-finance); PROMPT contributes in time, LATE after its clock breached.
PROMPT, LATE = "nanshan-hrss", "nanshan-tax"
S = AppealStatus
DUE = T0 + timedelta(days=3)
START_HOUR = "h:2026-03-03T14"
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def city():
    return load_city(CONFIG)


def lead_clock(type_, state, at, kind):
    return clock_event(type_, state, at, clock=kind, due=T0 + timedelta(hours=24))


def contribution(type_, state, at, cohandler, generation, due=DUE):
    """An event of a co-handler's contribution clock: held against the co-handler, the generation sla numbers the
    appeal's contribution clocks by (`<appeal>:contribution:<n>`)."""
    event = clock_event(type_, state, at, clock="contribution", due=due, department=cohandler, generation=generation)
    if type_ == EventType.sla_breached:
        event.data.fired_at, event.data.level = at, 100
    return event


def contributed(seq, at, by, status):
    """A co-handler's part, as router writes it: the lead in `department`, the co-handler as `actor`, the appeal's
    status unchanged."""
    return changed(EventType.appeal_contributed, status, seq, at, actor=by, note="Our part")


def story():
    """Routed to DEPT with two co-handlers at 14:05; the lead's clocks and a contribution clock for each start; the
    lead resolves; PROMPT contributes in time, LATE's clock breaches at its due and its part comes after."""
    cohandlers = {"cohandlers": [PROMPT, LATE]}
    started = ClockState.running
    return [
        submitted(),
        changed(EventType.appeal_routed, S.routed, 1, T0, **cohandlers),
        packed(
            *(lead_clock(EventType.sla_started, started, T0, kind) for kind in ("scope", "response", "resolution")),
            contribution(EventType.sla_started, started, T0, PROMPT, 1),
            contribution(EventType.sla_started, started, T0, LATE, 2),
        ),
        contributed(2, T0 + timedelta(hours=2), PROMPT, S.routed),
        packed(contribution(EventType.sla_met, ClockState.met, T0 + timedelta(hours=2), PROMPT, 1)),
        changed(EventType.appeal_accepted, S.accepted, 3, T0 + timedelta(hours=3), note="A plan", **cohandlers),
        changed(EventType.appeal_resolved, S.resolved, 4, T0 + timedelta(hours=4), resolution="Done", **cohandlers),
        packed(
            *(lead_clock(EventType.sla_met, ClockState.met, T0 + timedelta(hours=4), k) for k in ("response", "scope"))
        ),
        packed(lead_clock(EventType.sla_met, ClockState.met, T0 + timedelta(hours=4), "resolution")),
        packed(contribution(EventType.sla_breached, ClockState.breached, DUE, LATE, 2)),
        # The late part only ends the breached clock: sla publishes nothing for it.
        contributed(5, DUE + timedelta(hours=5), LATE, S.resolved),
    ]


def test_two_cohandlers_on_one_appeal_each_count_their_own_clock_against_themselves():
    doc, total = fold_all(story())
    assert {
        key: (c["clock"], c["department"]) for key, c in doc["clocks"].items() if key.startswith("contribution")
    } == {
        "contribution:1": ("contribution", PROMPT),
        "contribution:2": ("contribution", LATE),
    }, "one clock per co-handler, kept apart by its run's id"
    start = total[START_HOUR]
    clocks = {name: n for name, n in start.items() if name.startswith("clock|")}
    assert clocks == {
        f"clock|{DEPT}|scope|met": 1,
        f"clock|{DEPT}|response|met": 1,
        f"clock|{DEPT}|resolution|met": 1,
        f"clock|{PROMPT}|contribution|met": 1,
        f"clock|{LATE}|contribution|breached": 1,
    }, "each in the hour it started, the lead's clocks met, the missing part the co-handler's alone"
    contributions = {k: v for k, v in total["t"].items() if k.startswith("contributions")}
    assert contributions == {f"contributions_on_time|{PROMPT}": 1, f"contributions_late|{LATE}": 1}
    # The breach is the urging ladder's level 1 of the co-handler, in the hour it fired.
    assert total["h:2026-03-06T14"] == {f"urgings_level_1|{LATE}": 1}
    # A contribution is no assignment, moves no lead and changes no status.
    assert doc["status"] == "resolved" and start[f"resolved|{DEPT}"] == 1, "the part after the resolution"
    assert total["t"][f"assigned|{DEPT}"] == 1 and not any(f"assigned|{co}" in total["t"] for co in (PROMPT, LATE))
    assert doc["department"] == DEPT and doc["assignments"] == [{"d": DEPT, "at": T0, "responded": T0 + 3 * HOUR}]
    assert "live_due" not in doc, "no clock left running unbreached"
    assert total == projection.counts(doc), "the changes add up to what the document counts"


def test_the_contributions_replayed_republished_or_read_in_another_order_count_once():
    events = story()
    doc, once = fold_all(events)
    assert all(projection.record(doc, event) is None for event in events), "folded already: nothing to count"
    # sla writes each report to sla.events.v1 too while a reader has not moved to v2; the outboxes republish.
    v1_copies = [copy for event in events if event.type == EventType.sla_reported for copy in reports_of(event)]
    _, twice = fold_all(events + v1_copies + events[1:])
    assert twice == once
    # A replay reads the topics one after the other: every clock event before the lifecycle, or after it backwards.
    clocks = [e for e in events if e.type.startswith("sla.")]
    rest = [e for e in events if not e.type.startswith("sla.")]
    assert fold_all(clocks + rest)[1] == once and fold_all(rest + clocks[::-1])[1] == once


def test_the_rates_keep_the_cohandlers_contributions_apart_from_the_leads_clocks(city):
    _, total = fold_all(story())
    overdue = [{"department": PROMPT, "clock": "contribution"}]  # another of its clocks, past due, not yet breached
    counts = {**total[START_HOUR], f"clock|{PROMPT}|contribution|live": 1}
    rows = {r["department"]: r for r in report.department_rates(city, counts, {}, overdue, {}, 10)}
    lead, prompt, late = rows[DEPT], rows[PROMPT], rows[LATE]
    assert lead["response_rate"] == 1.0 and lead["resolution_rate"] == 1.0
    assert lead["breach_rate"] == {"scope": 0.0, "response": 0.0, "resolution": 0.0, "contribution": None}
    assert (lead["contributions_on_time"], lead["contributions_late"], lead["contribution_rate"]) == (0, 0, None)
    assert late["clocks"]["contribution"] == {"met": 0, "breached": 1, "overdue": 0, "running": 0, "cancelled": 0}
    assert (late["contributions_on_time"], late["contributions_late"], late["contribution_rate"]) == (0, 1, 0.0)
    assert late["breach_rate"]["contribution"] == 1.0 and late["breach_rate"]["response"] is None
    assert late["response_rate"] is None and late["assigned"] == 0, "a co-handler is no lead"
    # Running past due with no breach seen yet counts as late, as in every breach rate: 1 / (1 + 1).
    assert (prompt["contributions_on_time"], prompt["contributions_late"], prompt["contribution_rate"]) == (1, 1, 0.5)
    assert prompt["contribution_rate"] == 1 - prompt["breach_rate"]["contribution"]
    assert prompt["clocks"]["contribution"]["running"] == 0


def test_a_cancelled_contribution_counts_neither_way_and_a_breach_stands_when_cancelled():
    started = [
        contribution(EventType.sla_started, ClockState.running, T0, PROMPT, 1),
        contribution(EventType.sla_started, ClockState.running, T0, LATE, 2),
    ]
    # The appeal is closed before PROMPT's part was due, and after LATE's clock breached.
    closed_at = DUE + timedelta(hours=1)
    story = [
        *started,
        contribution(EventType.sla_breached, ClockState.breached, DUE, LATE, 2),
        contribution(EventType.sla_cancelled, ClockState.cancelled, closed_at, PROMPT, 1),
        contribution(EventType.sla_cancelled, ClockState.cancelled, closed_at, LATE, 2),
    ]
    _, total = fold_all(story)
    assert {k: v for k, v in total[START_HOUR].items()} == {
        f"clock|{PROMPT}|contribution|cancelled": 1,
        f"clock|{LATE}|contribution|breached": 1,
    }
    assert {k: v for k, v in total["t"].items() if k.startswith("contributions")} == {f"contributions_late|{LATE}": 1}
    # Still running: no figure yet.
    _, running = fold_all(started)
    assert not any(k.startswith("contributions") for k in running.get("t", {}))


def test_the_daily_report_tells_of_the_contributions_and_shows_their_rate(city):
    counts = {
        f"clock|{PROMPT}|contribution|met": 3,
        f"clock|{PROMPT}|contribution|breached": 1,
        f"clock|{LATE}|contribution|breached": 2,
        f"clock|{DEPT}|response|breached": 1,
    }
    rows = report.department_rates(city, counts, {}, [], {}, 10)
    sh = ZoneInfo("Asia/Shanghai")
    start = datetime(2026, 3, 4, tzinfo=sh)
    data = report.daily_report(city, counts, rows, report.company_figures([]), start, start + timedelta(days=1), sh)
    assert [r["department"] for r in data["supervision"]] == [PROMPT, LATE]
    assert data["supervision"][0]["contribution_rate"] == 0.75 and data["supervision"][1]["contribution_rate"] == 0.0
    assert "Co-handlers gave 3 contributions on time; 3 came late or not at all (50% on time)." in data["text"]
    late = {r["department"]: r["breached"] for r in data["late_departments"]}
    assert late == {LATE: 2, PROMPT: 1, DEPT: 1}, "a missing part is its co-handler's late deadline, not the lead's"
    markdown = report.to_markdown(data)
    assert "### Co-handlers' contributions" in markdown
    assert "| Department | On time | Late or missing | Contribution rate |" in markdown
    assert "| Nanshan District Human Resources Bureau | 3 | 1 | 75% |" in markdown
    lines = report.to_csv(data).splitlines()
    assert f"contributions_on_time,{PROMPT},3," in lines and f"contributions_late,{LATE},2," in lines
    assert f"contribution_rate,{PROMPT},3,0.75" in lines and f"contribution_rate,{LATE},0,0.0" in lines
    assert lines.index(f"contribution_rate,{PROMPT},3,0.75") > lines.index(f"contributions_late,{LATE},2,")
    assert not [line for line in lines if line.startswith(f"contribution_rate,{DEPT}")]


def test_every_department_exports_its_contributions_on_time_and_late_from_the_first_scrape():
    metrics = BusinessMetrics([DEPT, PROMPT, LATE])
    _, total = fold_all(story())
    metrics.update(total["t"])
    (family,) = [m for m in metrics.collect() if m.name == "appeals_supervision"]
    values = {(s.labels["department"], s.labels["figure"]): s.value for s in family.samples}
    assert values[(PROMPT, "contributions_on_time")] == 1 and values[(PROMPT, "contributions_late")] == 0
    assert values[(LATE, "contributions_late")] == 1 and values[(LATE, "urgings_level_1")] == 1
    assert values[(DEPT, "contributions_on_time")] == values[(DEPT, "contributions_late")] == 0
