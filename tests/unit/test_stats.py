"""Stats' rules as plain functions: what an appeal and a clock count, the rates, the report wording."""

import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from libs.config import load_city
from libs.events import AppealChanged, AppealSubmitted, Contact, Enterprise, SlaClockChanged
from libs.kafka.publishing import make_event
from libs.kinds import AppealStatus, ClockState, EventType
from services.stats import projection, report
from services.stats.buckets import sketch_key
from services.stats.metrics import BusinessMetrics
from tests.helpers import packed

CONFIG = Path(__file__).resolve().parents[2] / "config"
T0 = datetime(2026, 3, 3, 14, 5, tzinfo=UTC)
APPEAL = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
DEPT = "nanshan-finance"
USCC = "91440300MA5FXT4K8N"


@pytest.fixture(scope="module")
def city():
    return load_city(CONFIG)


def submitted(at=T0, appeal_id=APPEAL, category="financing", size_band="micro", employees=12, uscc=USCC):
    data = AppealSubmitted(
        appeal_id=appeal_id,
        channel="wechat",
        channel_ref="wx-1",
        category=category,
        size_band=size_band,
        enterprise=Enterprise(uscc=uscc, name="Lanhai", employees=employees, industry="it", district="nanshan"),
        contact=Contact(name="Li Wei", phone="13800138000"),
        title="Loan",
        description="Loan due",
        submitted_at=at,
    )
    return make_event("appeals/intake", EventType.appeal_submitted, appeal_id, data, time=at)


def changed(type_, status, seq, at, department=DEPT, appeal_id=APPEAL, submitted_at=T0, **extra):
    data = AppealChanged(
        appeal_id=appeal_id,
        status=status,
        sequence=seq,
        department=department,
        category="financing",
        channel="wechat",
        district="nanshan",
        size_band="micro",
        submitted_at=submitted_at,
        sla_profile="policy_24h",
        **extra,
    )
    return make_event("appeals/router", type_, appeal_id, data, time=at)


def clock_event(type_, state, at, clock="scope", due=None, department=DEPT, generation=1, appeal_id=APPEAL):
    data = SlaClockChanged(
        appeal_id=appeal_id,
        clock_id=f"{appeal_id}:{clock}:{generation}",
        clock=clock,
        department=department,
        state=state,
        target="6h",
        calendar="default",
        sla_profile="policy_24h",
        started_at=T0,
        due_at=due,
    )
    return make_event("appeals/sla", type_, appeal_id, data, time=at)


def fold_all(events, entity=APPEAL):
    """Fold events into a fresh document; returns it and the sum of the changes they made."""
    doc = projection.new_document(entity)
    total = defaultdict(lambda: defaultdict(int))
    for event in events:
        delta = projection.record(doc, event)
        for bucket, fields in (delta or {}).items():
            for name, n in fields.items():
                total[bucket][name] += n
    return doc, {b: {k: v for k, v in f.items() if v} for b, f in total.items() if any(f.values())}


def resolved_story():
    return [
        submitted(),
        changed(EventType.appeal_routed, AppealStatus.routed, 1, T0 + timedelta(seconds=2)),
        changed(EventType.appeal_accepted, AppealStatus.accepted, 2, T0 + timedelta(minutes=30), note="On it"),
        changed(EventType.appeal_resolved, AppealStatus.resolved, 3, T0 + timedelta(hours=5), resolution="Done"),
    ]


def test_a_resolved_appeal_counts_in_its_submission_hour_and_against_its_department():
    doc, total = fold_all(resolved_story())
    hour = total["h:2026-03-03T14"]
    assert hour["n"] == 1 and hour["resolved"] == 1
    assert hour["category|financing"] == hour["size_band|micro"] == hour["channel|wechat"] == 1
    assert hour["district|nanshan"] == hour["status|resolved"] == hour[f"department|{DEPT}"] == 1
    assert hour[f"assigned|{DEPT}"] == hour[f"resolved|{DEPT}"] == 1
    assert "status|routed" not in hour, "an appeal counts under its current status only"
    latency = total["l:2026-03-03T14"]
    first_response = sketch_key(30 * 60 - 2)
    assert latency[f"first_response|{DEPT}|{first_response}"] == 1
    assert latency[f"resolution|{DEPT}|{sketch_key(5 * 3600)}"] == 1
    t = total["t"]
    assert t["submitted|wechat|financing|micro"] == 1
    assert t[f"routed|{DEPT}|policy_24h"] == 1 and t[f"resolved|{DEPT}|financing"] == 1
    assert not any(k.startswith("open|") for k in t), "a resolved appeal is no longer open"
    assert total == projection.appeal_counts(doc), "the changes add up to what the document counts"


def test_an_event_folded_twice_changes_nothing_the_second_time():
    story = resolved_story()
    doc, once = fold_all(story)
    assert all(projection.record(doc, event) is None for event in story)
    _, twice = fold_all(story + story)
    assert twice == once


def test_topics_may_arrive_in_any_order_and_end_with_the_same_figures():
    story = resolved_story()
    _, in_order = fold_all(story)
    _, lifecycle_first = fold_all(story[1:] + story[:1])
    assert lifecycle_first == in_order


def test_a_reopened_resolution_no_longer_counts_and_the_last_rounds_answer_feeds_satisfaction():
    # A reopen as router wrote them before redos were marked: the company's "not resolved" with its score.
    story = resolved_story() + [
        changed(EventType.appeal_reopened, AppealStatus.reopened, 4, T0 + timedelta(days=1), satisfaction=2),
    ]
    _, total = fold_all(story)
    answer_hour = total["h:2026-03-04T14"]
    assert answer_hour == {f"answers|{DEPT}|unsatisfied": 1, f"redos|{DEPT}": 1}
    assert f"resolved|{DEPT}" not in total["h:2026-03-03T14"]
    assert total["t"][f"open|{DEPT}"] == 1
    story.append(
        changed(EventType.appeal_resolved, AppealStatus.resolved, 5, T0 + timedelta(days=2), resolution="Done now")
    )
    story.append(changed(EventType.appeal_confirmed, AppealStatus.confirmed, 6, T0 + timedelta(days=3), satisfaction=5))
    _, total = fold_all(story)
    assert total["h:2026-03-03T14"][f"resolved|{DEPT}"] == 1
    assert total["h:2026-03-06T14"] == {f"answers|{DEPT}|satisfied": 1}
    assert total["h:2026-03-04T14"] == {f"redos|{DEPT}": 1}, "the first round's answer no longer counts; its redo does"
    assert total["t"][f"resolved|{DEPT}|financing"] == 2


def test_a_transfer_opens_a_second_assignment_and_the_first_stays_unresolved():
    other = "nanshan-commerce"
    story = resolved_story()[:2] + [
        changed(
            EventType.appeal_transferred,
            AppealStatus.routed,
            2,
            T0 + timedelta(minutes=10),
            department=other,
            previous_department=DEPT,
        ),
        changed(
            EventType.appeal_resolved,
            AppealStatus.resolved,
            3,
            T0 + timedelta(hours=2),
            department=other,
            resolution="Done",
        ),
    ]
    _, total = fold_all(story)
    hour = total["h:2026-03-03T14"]
    assert hour[f"assigned|{DEPT}"] == hour[f"assigned|{other}"] == 1
    assert hour[f"resolved|{other}"] == 1 and f"resolved|{DEPT}" not in hour
    assert hour[f"department|{other}"] == 1


def test_a_clock_counts_its_outcome_and_a_breach_stays_a_breach():
    due = T0 + timedelta(hours=6)
    started = clock_event(EventType.sla_started, ClockState.running, T0, due=due)
    doc, total = fold_all([started])
    assert total == {"h:2026-03-03T14": {f"clock|{DEPT}|scope|live": 1}}
    assert doc["live_due"] == due, "a running clock is found by the 'running past due' index"
    doc, total = fold_all([started, clock_event(EventType.sla_met, ClockState.met, T0 + timedelta(hours=1))])
    assert total == {"h:2026-03-03T14": {f"clock|{DEPT}|scope|met": 1}} and "live_due" not in doc
    doc, total = fold_all([started, clock_event(EventType.sla_breached, ClockState.breached, due)])
    assert total["h:2026-03-03T14"] == {f"clock|{DEPT}|scope|breached": 1} and "live_due" not in doc
    # The breach is the urging ladder's level 1 too: a supervision act, in the hour it fired.
    assert total["h:2026-03-03T20"] == total["t"] == {f"urgings_level_1|{DEPT}": 1} and len(total) == 3


def test_an_appeal_keeps_its_clocks_and_is_found_by_the_earliest_one_running():
    scope_due, resolution_due = T0 + timedelta(hours=6), T0 + timedelta(hours=72)
    events = [
        submitted(),
        clock_event(EventType.sla_started, ClockState.running, T0, due=scope_due),
        clock_event(EventType.sla_started, ClockState.running, T0, clock="resolution", due=resolution_due),
    ]
    doc, total = fold_all(events)
    assert set(doc["clocks"]) == {"scope:1", "resolution:1"} and doc["live_due"] == scope_due
    hour = total["h:2026-03-03T14"]
    assert hour["n"] == 1 and hour[f"clock|{DEPT}|scope|live"] == hour[f"clock|{DEPT}|resolution|live"] == 1
    doc, total = fold_all([*events, clock_event(EventType.sla_met, ClockState.met, T0 + timedelta(hours=1))])
    assert doc["live_due"] == resolution_due, "the scope clock is met: the resolution clock is the earliest now"
    assert total["h:2026-03-03T14"][f"clock|{DEPT}|scope|met"] == 1


def test_a_packed_report_counts_as_its_clock_events_and_a_v1_copy_of_one_counts_once():
    due = T0 + timedelta(hours=6)
    scope = clock_event(EventType.sla_started, ClockState.running, T0, due=due)
    resolution = clock_event(EventType.sla_started, ClockState.running, T0, clock="resolution", due=due)
    met = clock_event(EventType.sla_met, ClockState.met, T0 + timedelta(hours=1))
    _, one_by_one = fold_all([scope, resolution, met])
    doc, together = fold_all([packed(scope, resolution), packed(met)])
    assert together == one_by_one and set(doc["applied"]) == {scope.id, resolution.id, met.id}
    # While sla writes both versions, a reader of both topics meets each report twice, in either order.
    _, both = fold_all([scope, packed(scope, resolution), packed(met), met])
    assert both == one_by_one
    doc = fold_all([scope, resolution])[0]
    assert projection.record(doc, packed(scope, resolution)) is None, "nothing new: nothing to count"


def test_rates_follow_the_formulas_and_open_overdue_work_counts_as_late(city):
    counts = {
        f"clock|{DEPT}|scope|met": 6,
        f"clock|{DEPT}|scope|breached": 1,
        f"clock|{DEPT}|scope|live": 3,
        f"clock|{DEPT}|resolution|met": 4,
        f"clock|{DEPT}|resolution|live": 2,
        f"assigned|{DEPT}": 10,
        f"resolved|{DEPT}": 4,
        f"answers|{DEPT}|satisfied": 2,
        f"answers|{DEPT}|basically_satisfied": 1,
        f"answers|{DEPT}|unsatisfied": 1,
        f"answers|{DEPT}|outside": 2,
        f"answers|{DEPT}|unreached": 1,
        "assigned|finance": 9,
        "resolved|finance": 9,
    }
    overdue = [
        {"department": DEPT, "clock": "scope"},
        {"department": DEPT, "clock": "resolution"},
        {"department": DEPT, "clock": "resolution"},
    ]
    rows = {r["department"]: r for r in report.department_rates(city, counts, {}, overdue, {DEPT: 6}, 10)}
    row = rows[DEPT]
    # scope: 6 met, 1 breached, 1 of the 3 running is past due -> 6 / (6 + 1 + 1).
    assert row["response_rate"] == 0.75
    assert row["clocks"]["scope"] == {"met": 6, "breached": 1, "overdue": 1, "running": 2, "cancelled": 0}
    assert row["breach_rate"]["scope"] == 0.25
    # resolution: nothing breached yet, but both running clocks are past due -> 2 / (4 + 0 + 2).
    assert row["breach_rate"]["resolution"] == round(2 / 6, 4)
    # (2 satisfied + 1 basically) / (those + 1 unsatisfied); outside and unreached shown apart.
    assert row["resolution_rate"] == 0.4 and row["satisfaction_rate"] == 0.75 and row["open"] == 6
    assert (row["feedback"], row["outside"], row["unreached"]) == (4, 2, 1)
    assert row["rank"] == 1
    assert rows["finance"]["resolution_rate"] == 1.0 and rows["finance"]["rank"] is None, (
        "below the minimum volume a department is shown but not ranked"
    )
    assert rows["tax"]["response_rate"] is None, "no work means no rate, not 0 %"


def test_percentiles_come_from_the_sketch_within_one_percent():
    rng = random.Random(7)
    values = [rng.uniform(60, 86400) for _ in range(5000)]
    sketch = defaultdict(int)
    for v in values:
        sketch[sketch_key(v)] += 1
    values.sort()
    for q in (0.5, 0.9):
        exact = values[int(q * (len(values) - 1))]
        assert report.quantile(sketch, q) == pytest.approx(exact, rel=0.011)
    assert report.quantile({}, 0.5) is None


def company_row(*events):
    """What stats reads back for the company figures, from the document the events fold into."""
    doc, _ = fold_all(events, entity=events[0].data.appeal_id)
    return {k: doc[k] for k in ("uscc", "lists", "status", "answered") if k in doc}


def test_companies_count_once_however_many_appeals_they_make():
    a1, a2, b1, c1 = "01JB8X4R5ZJ6Q8V2Y7K9M3N4A1", "01JB8X4R5ZJ6Q8V2Y7K9M3N4A2", "01JB8X4R5ZJ6Q8V2Y7K9M3N4B1", "01C1"
    b_uscc, c_uscc = "91440300MA5FXT4K9B", "91440300MA5FXT4K9C"
    key = {"lists": ["key_sme"], "flags": ["key_enterprise"]}
    rows = [
        # Company A (on the key SME list): one appeal solved, the other still waiting for an answer.
        company_row(
            submitted(appeal_id=a1),
            changed(EventType.appeal_routed, AppealStatus.routed, 1, T0, appeal_id=a1, **key),
            changed(EventType.appeal_resolved, AppealStatus.resolved, 2, T0 + timedelta(hours=3), appeal_id=a1, **key),
        ),
        company_row(
            submitted(appeal_id=a2, at=T0 + timedelta(days=1)),
            changed(EventType.appeal_routed, AppealStatus.routed, 1, T0 + timedelta(days=1), appeal_id=a2, **key),
        ),
        # Company B: declined with guidance, which is an answer, but not a solution.
        company_row(
            submitted(appeal_id=b1, uscc=b_uscc),
            changed(EventType.appeal_routed, AppealStatus.routed, 1, T0, appeal_id=b1),
            changed(
                EventType.appeal_declined, AppealStatus.declined, 2, T0, appeal_id=b1, guidance="Ask the tax office"
            ),
        ),
        # Company C: resolved, then reopened: no longer solved, still answered.
        company_row(
            submitted(appeal_id=c1, uscc=c_uscc),
            changed(EventType.appeal_routed, AppealStatus.routed, 1, T0, appeal_id=c1),
            changed(EventType.appeal_resolved, AppealStatus.resolved, 2, T0, appeal_id=c1),
            changed(EventType.appeal_reopened, AppealStatus.reopened, 3, T0, appeal_id=c1, satisfaction=1),
        ),
    ]
    assert rows[0] == {"uscc": USCC, "lists": ["key_sme"], "status": "resolved", "answered": True}
    figures = report.company_figures(rows)
    assert figures == {"companies": 3, "answered": 3, "solved": 0, "appeals": 4, "appeals_per_company": 1.33}
    # The first day alone: company A's one appeal there is solved.
    first_day = [r for r in rows if r is not rows[1]]
    assert report.company_figures(first_day)["solved"] == 1
    assert report.company_figures([rows[1]]) == {
        "companies": 1,
        "answered": 0,
        "solved": 0,
        "appeals": 1,
        "appeals_per_company": 1.0,
    }
    by_list = {f["list"]: f for f in report.by_list(rows)}
    assert by_list["key_sme"]["companies"] == 1 and by_list["key_sme"]["appeals"] == 2
    assert by_list["none"]["companies"] == 2
    assert report.company_figures(report.on_list(rows, "key_sme"))["answered"] == 1
    assert report.on_list(rows, "none") == rows[2:]
    assert report.company_figures([])["appeals_per_company"] is None


def test_an_appeal_counts_under_each_list_its_company_was_on():
    _, total = fold_all(
        [submitted(), changed(EventType.appeal_routed, AppealStatus.routed, 1, T0, lists=["key_sme", "prevention"])]
    )
    hour = total["h:2026-03-03T14"]
    assert hour["list|key_sme"] == hour["list|prevention"] == 1 and "list|none" not in hour
    _, before_routing = fold_all([submitted()])
    assert before_routing["h:2026-03-03T14"]["list|none"] == 1


def test_the_daily_report_reads_like_the_seed(city):
    counts = {
        "n": 463,
        "resolved": 100,
        "category|financing": 172,
        "category|labour": 120,
        "category|tax": 171,
        "size_band|micro": 330,
        "size_band|small": 96,
        "size_band|medium": 37,
        f"clock|{DEPT}|resolution|breached": 3,
    }
    sh = ZoneInfo("Asia/Shanghai")
    start, end = datetime(2020, 3, 3, 22, tzinfo=sh), datetime(2020, 3, 4, 17, tzinfo=sh)
    rows = report.department_rates(city, counts, {}, [], {}, 10)
    rows_of_companies = [{"uscc": f"c{i % 185}", "status": "resolved" if i < 100 else "routed"} for i in range(463)]
    companies = report.company_figures(rows_of_companies)
    data = report.daily_report(city, counts, rows, companies, start, end, sh)
    assert data["text"].startswith(
        "Between 22:00 Tuesday 3 March 2020 and 17:00 Wednesday 4 March 2020 the platform received 463 appeals, "
        "100 of which have been resolved. 172 were about financing (37%). 330 came from companies with fewer "
        "than 30 employees, 96 from companies with 30 to 100 employees and 37 from companies with 101 to 300 "
        "employees."
    )
    assert "The 463 appeals were put forward by 185 companies: 0 of them have got an answer" in data["text"]
    assert "Late on their deadlines: Nanshan District Financial" in data["text"]
    assert [c["key"] for c in data["categories"]] == ["financing", "tax", "labour"]
    assert data["categories"][0]["share"] == 0.3715
    markdown = report.to_markdown(data)
    assert "| financing | 172 | 37% |" in markdown and "| fewer than 30 employees | 330 | 71% |" in markdown
    csv_text = report.to_csv(data)
    assert "total,received,463," in csv_text and "size_bands,small,96,0.2073" in csv_text


def extension(type_, seq, at, department=DEPT, until=T0 + timedelta(days=20), **extra):
    """An extension event as router writes it: `department` is the lead that asked."""
    return changed(
        type_,
        AppealStatus.accepted,
        seq,
        at,
        department=department,
        due_at=until,
        previous_due_at=T0 + timedelta(days=10),
        reason="Site inspection needed",
        **extra,
    )


def extensions_story():
    return resolved_story()[:3] + [
        extension(EventType.appeal_extension_requested, 3, T0 + timedelta(hours=1)),
        extension(EventType.appeal_extension_rejected, 4, T0 + timedelta(hours=2), note="Not justified"),
        extension(EventType.appeal_extension_requested, 5, T0 + timedelta(hours=3)),
        extension(EventType.appeal_extension_approved, 6, T0 + timedelta(days=1, hours=2)),
    ]


def test_extensions_count_in_their_hours_against_the_department_that_asked():
    doc, total = fold_all(extensions_story())
    assert total["h:2026-03-03T15"] == {f"extensions_requested|{DEPT}": 1}
    assert total["h:2026-03-03T16"] == {f"extensions_rejected|{DEPT}": 1}
    assert total["h:2026-03-03T17"] == {f"extensions_requested|{DEPT}": 1}
    assert total["h:2026-03-04T16"] == {f"extensions_approved|{DEPT}": 1}
    assert projection.FIGURES[:3] == ("extensions_requested", "extensions_approved", "extensions_rejected")
    assert [total["t"][f"{figure}|{DEPT}"] for figure in projection.FIGURES[:3]] == [2, 1, 1], "the metric's totals"
    hour = total["h:2026-03-03T14"]
    assert hour[f"assigned|{DEPT}"] == 1 and hour["status|accepted"] == 1, "an extension is no new assignment"
    assert total == projection.appeal_counts(doc)


def test_extension_events_replayed_count_once():
    story = extensions_story()
    doc, once = fold_all(story)
    assert all(projection.record(doc, event) is None for event in story)
    _, twice = fold_all(story + story[3:] + story)
    assert twice == once


def test_an_extension_decided_after_a_transfer_counts_for_the_asker_and_leaves_the_lead_alone():
    other = "nanshan-commerce"
    story = resolved_story()[:2] + [
        extension(EventType.appeal_extension_requested, 2, T0 + timedelta(minutes=10)),
        changed(
            EventType.appeal_transferred,
            AppealStatus.routed,
            3,
            T0 + timedelta(minutes=20),
            department=other,
            previous_department=DEPT,
        ),
        extension(EventType.appeal_extension_approved, 4, T0 + timedelta(minutes=30)),
    ]
    doc, total = fold_all(story)
    hour = total["h:2026-03-03T14"]
    assert hour[f"extensions_requested|{DEPT}"] == hour[f"extensions_approved|{DEPT}"] == 1
    assert hour[f"assigned|{DEPT}"] == hour[f"assigned|{other}"] == 1
    assert hour[f"department|{other}"] == 1 and doc["department"] == other and doc["sequence"] == 4
    assert total["t"][f"open|{other}"] == 1 and f"open|{DEPT}" not in total["t"]


def resolution_clock(type_, at, due, **extra):
    event = clock_event(type_, ClockState.running, at, clock="resolution", due=due)
    for name, value in extra.items():
        setattr(event.data, name, value)
    return event


def test_an_approved_extension_moves_the_due_time_running_past_due_is_read_from():
    due, extended = T0 + timedelta(days=10), T0 + timedelta(days=20)
    started = resolution_clock(EventType.sla_started, T0, due)
    moved = resolution_clock(EventType.sla_extended, T0 + timedelta(days=9), extended, original_due_at=due)
    doc, total = fold_all([started, packed(moved)])
    assert doc["live_due"] == extended and doc["clocks"]["resolution:1"]["due_at"] == extended
    assert total == {"h:2026-03-03T14": {f"clock|{DEPT}|resolution|live": 1}}, "extended is not breached"
    # A replay may read the run's start (sla.events.v1) after its extension (sla.events.v2): the same clock.
    late, _ = fold_all([packed(moved), started])
    assert late["clocks"] == doc["clocks"] and late["live_due"] == extended
    breached = clock_event(EventType.sla_breached, ClockState.breached, extended, clock="resolution")
    doc, total = fold_all([started, packed(moved), packed(breached)])
    assert "live_due" not in doc and total["h:2026-03-03T14"] == {f"clock|{DEPT}|resolution|breached": 1}
    met = clock_event(EventType.sla_met, ClockState.met, T0 + timedelta(days=15), clock="resolution")
    doc, total = fold_all([started, packed(moved), met])
    assert "live_due" not in doc and total == {"h:2026-03-03T14": {f"clock|{DEPT}|resolution|met": 1}}


def test_a_start_read_after_its_clock_ended_does_not_run_it_again():
    started = clock_event(EventType.sla_started, ClockState.running, T0, due=T0 + timedelta(hours=6))
    met = clock_event(EventType.sla_met, ClockState.met, T0 + timedelta(hours=1))
    doc, total = fold_all([met, started])
    assert total == fold_all([started, met])[1] == {"h:2026-03-03T14": {f"clock|{DEPT}|scope|met": 1}}
    assert "live_due" not in doc


def test_department_figures_and_the_daily_report_show_extensions(city):
    counts = {
        "n": 4,
        f"assigned|{DEPT}": 4,
        f"extensions_requested|{DEPT}": 3,
        f"extensions_approved|{DEPT}": 1,
        f"extensions_rejected|{DEPT}": 1,
        "extensions_requested|finance": 1,
    }
    rows = report.department_rates(city, counts, {}, [], {}, 10)
    by_code = {r["department"]: r for r in rows}
    figures = ("extensions_requested", "extensions_approved", "extensions_rejected")
    assert [by_code[DEPT][f] for f in figures] == [3, 1, 1]
    assert [by_code["finance"][f] for f in figures] == [1, 0, 0] and by_code["tax"]["extensions_requested"] == 0
    # The report shows names and codes as text whatever they hold: markup, and a code a spreadsheet would run.
    rows.append({**by_code["tax"], "department": "=cmd|x", "name": "<b>Odd|name</b>", "extensions_rejected": 2})
    sh = ZoneInfo("Asia/Shanghai")
    start = datetime(2026, 3, 4, tzinfo=sh)
    data = report.daily_report(city, counts, rows, report.company_figures([]), start, start + timedelta(days=1), sh)
    assert [r["department"] for r in data["supervision"]] == [DEPT, "finance", "=cmd|x"]
    assert data["supervision"][0] == {
        "department": DEPT,
        "name": "Nanshan District Financial Services Office",
        "extensions_requested": 3,
        "extensions_approved": 1,
        "extensions_rejected": 1,
        **{figure: 0 for figure in projection.FIGURES[3:]},
        "send_back_rate": 0.0,
        "contribution_rate": None,
    }
    assert "Departments asked the coordinating office for 4 extensions; it approved 1 and rejected 3." in data["text"]
    markdown = report.to_markdown(data)
    assert "| Department | Extensions asked | Approved | Rejected |" in markdown
    assert "| Nanshan District Financial Services Office | 3 | 1 | 1 |" in markdown
    assert "| \\<b\\>Odd\\|name\\</b\\> | 0 | 0 | 2 |" in markdown
    lines = report.to_csv(data).splitlines()
    assert f"extensions_requested,{DEPT},3," in lines and "extensions_requested,finance,1," in lines
    assert f"extensions_approved,{DEPT},1," in lines and "extensions_approved,finance,0," not in lines
    assert "extensions_rejected,'=cmd|x,2," in lines
    quiet = report.daily_report(
        city,
        {},
        report.department_rates(city, {}, {}, [], {}, 10),
        data["companies"],
        start,
        start + timedelta(days=1),
        sh,
    )
    assert quiet["supervision"] == [] and "extension" not in quiet["text"] and "coordinating" not in quiet["text"]


def test_every_department_exports_its_supervision_figures_from_the_first_scrape():
    metrics = BusinessMetrics([DEPT, "finance"])
    metrics.update({f"extensions_requested|{DEPT}": 2, f"extensions_approved|{DEPT}": 1, "extensions_x|a|b": 5})
    (family,) = [m for m in metrics.collect() if m.name == "appeals_supervision"]
    values = {(s.labels["department"], s.labels["figure"]): s.value for s in family.samples}
    assert values[(DEPT, "extensions_requested")] == 2 and values[(DEPT, "extensions_approved")] == 1
    assert values[(DEPT, "extensions_rejected")] == 0 and values[("finance", "extensions_requested")] == 0
    assert len(values) == 2 * len(projection.FIGURES), "each department, each figure; no name of another shape"
    assert {s.name for s in family.samples} == {"appeals_supervision_total"}


SHANGHAI, BERLIN = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")
# Whole-hour zones with and without daylight saving (Santiago changes at midnight, Apia skipped 30 December
# 2011), and zones whose offset is not whole hours all year (Kolkata) or half the year (Lord Howe).
ZONES = (
    "Asia/Shanghai",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Pacific/Apia",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
)
DST_DAYS = (
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2026, 4, 5),
    date(2026, 9, 6),
    date(2011, 12, 29),
    date(2026, 4, 4),
    date(2026, 10, 3),
)


def test_an_hour_adds_into_the_day_its_utc_start_falls_on_in_the_city():
    assert projection.day_of("h:2026-03-03T15", SHANGHAI) == "hd:2026-03-03"  # 23:00 local
    assert projection.day_of("h:2026-03-03T16", SHANGHAI) == "hd:2026-03-04"  # midnight local
    assert projection.day_of("l:2026-03-04T15", SHANGHAI) == "ld:2026-03-04"
    assert projection.day_of("t", SHANGHAI) is None and projection.day_of("hd:2026-03-04", SHANGHAI) is None
    assert projection.day_span(date(2026, 3, 29), BERLIN) == (
        datetime(2026, 3, 28, 23, tzinfo=UTC),
        datetime(2026, 3, 29, 22, tzinfo=UTC),
    )
    assert projection.day_span(date(2026, 10, 25), BERLIN)[1] - projection.day_span(date(2026, 10, 25), BERLIN)[
        0
    ] == timedelta(hours=25)


def test_where_an_hour_straddles_local_midnight_there_are_no_day_buckets():
    kolkata, lord_howe = ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Lord_Howe")
    assert projection.day_span(date(2026, 3, 4), kolkata) is None
    assert all(projection.day_of(f"h:2026-03-04T{h:02d}", kolkata) is None for h in range(24))
    assert projection.day_span(date(2026, 7, 4), lord_howe) is None, "+10:30 in winter"
    assert projection.day_span(date(2026, 1, 4), lord_howe) is not None, "+11:00 in summer"
    assert projection.day_span(date(2011, 12, 30), ZoneInfo("Pacific/Apia")) is None, "a day that never was"


def test_day_buckets_receive_the_changes_of_their_hours_and_nothing_else():
    _, total = fold_all(
        resolved_story()
        + [changed(EventType.appeal_confirmed, AppealStatus.confirmed, 4, T0 + timedelta(hours=3), satisfaction=5)]
    )
    days = projection.with_days(total, SHANGHAI)
    assert {b: f for b, f in days.items() if not b.startswith(("hd:", "ld:"))} == total
    # 14:05 UTC is 22:05 in Shanghai, 17:05 UTC is 01:05 the next day.
    assert days["hd:2026-03-03"] == total["h:2026-03-03T14"]
    assert days["hd:2026-03-04"] == total["h:2026-03-03T17"] == {f"answers|{DEPT}|satisfied": 1}
    assert days["ld:2026-03-03"] == total["l:2026-03-03T14"]
    assert set(days) - set(total) == {"hd:2026-03-03", "hd:2026-03-04", "ld:2026-03-03"}


def _hours(start: datetime, end: datetime) -> list[datetime]:
    at = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    stop = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while at < stop:
        out.append(at)
        at += timedelta(hours=1)
    return out


def _periods(rng: random.Random, tz: ZoneInfo):
    """Periods from local midnight or mid-day to local midnight or mid-day, over hours, days and DST changes."""
    for i in range(120):
        day = (
            DST_DAYS[i % len(DST_DAYS)] + timedelta(days=rng.randint(-3, 1))
            if i % 2
            else date(2026, 1, 1) + timedelta(days=rng.randint(0, 364))
        )
        start = datetime.combine(day, time(0 if i % 3 else rng.randint(0, 23)), tzinfo=tz)
        end = datetime.combine(
            day + timedelta(days=rng.randint(0, 6)), time(0 if i % 5 else rng.randint(0, 23)), tzinfo=tz
        )
        if end > start:
            yield start, end


def _covered(
    start: datetime, end: datetime, tz: ZoneInfo, since: date | None, near: list[tuple[datetime, str | None]]
) -> tuple[list[datetime], int]:
    """The hours the day buckets (as day_of fills them) and hour buckets `cover` names hold; how many days."""
    days, hours = projection.cover(start, end, tz, since)
    names = {"hd:" + d for d in days}
    covered = [h for h, day in near if day in names]
    return sorted(covered + [datetime.fromisoformat(h + ":00+00:00") for h in hours]), len(days)


@pytest.mark.parametrize("zone", ZONES)
def test_whole_days_and_the_hours_left_hold_exactly_the_hours_of_a_period(zone):
    tz = ZoneInfo(zone)
    used = 0
    for start, end in _periods(random.Random(zone), tz):
        wanted = _hours(start, end)
        near = [
            (h, projection.day_of("h:" + projection.hour_of(h), tz))
            for h in _hours(start - timedelta(days=2), end + timedelta(days=2))
        ]
        covered, days = _covered(start, end, tz, date.min, near)
        assert covered == wanted, (start, end)
        used += days
        assert _covered(start, end, tz, None, near) == (wanted, 0), "no day bucket is whole yet"
        since = start.astimezone(tz).date() + timedelta(days=2)
        assert _covered(start, end, tz, since, near)[0] == wanted
        assert all(date.fromisoformat(d) >= since for d in projection.cover(start, end, tz, since)[0])
    if zone == "Asia/Kolkata":
        assert used == 0
    else:
        assert used > 100, "whole days come from day buckets"


@pytest.mark.parametrize("value", ["nanshan.x", "a..b", "$where", "a|b", "100%", "%2E", "\x00", "南山区", "nanshan"])
def test_a_counter_name_holds_any_value_as_one_plain_field_and_reads_back_as_it_was(value):
    name = projection.counter("district", value)
    assert "." not in name and not name.startswith("$") and "\x00" not in name and name.count("|") == 1
    assert projection.parts(name) == ["district", value]


def test_names_of_configured_codes_are_the_names_earlier_versions_wrote():
    assert projection.counter("clock", DEPT, "scope", "met") == f"clock|{DEPT}|scope|met"


def test_an_appeal_from_a_district_with_a_dot_counts_under_one_plain_field():
    event = submitted()
    event.data.enterprise.district = "nanshan.x"
    _, total = fold_all([event])
    hour = total["h:2026-03-03T14"]
    assert hour["district|nanshan%2Ex"] == 1 and not any("." in name for name in hour)
    assert report.groups(hour, "district") == [{"key": "nanshan.x", "count": 1, "share": 1.0}]


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("nanshan", "nanshan"),
        (172, 172),
        (0.37, 0.37),
    ],
)
def test_a_csv_cell_never_starts_a_formula(cell, shown):
    assert report.csv_cell(cell) == shown


def test_markdown_shows_markup_as_text_and_keeps_a_table_row_on_one_line():
    assert report.md_text("a|b\n*x* <script>`y`[z](u)") == "a\\|b \\*x\\* \\<script\\>\\`y\\`\\[z\\](u)"
