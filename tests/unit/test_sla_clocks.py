"""The SLA clock state machine (services/sla/clocks.py) with fixed instants: nothing sleeps.

Functions return a ClockChange (fields to set, events owed); the tests apply it with
`doc.update(change.set)` as the service does with its database write.
"""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.calendars import BusinessCalendar, load_calendars
from libs.contract import SLA_EVENTS, SLA_EVENTS_V2, department_topic
from libs.events import SlaClockChanged
from libs.ids import new_id
from libs.kinds import ClockKind, ClockState, EventType
from services.sla import clocks
from services.sla.service import pack

CONFIG = Path(__file__).resolve().parents[2] / "config"
SH = ZoneInfo("Asia/Shanghai")
HOUR = 3600.0
APPEAL = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
DEPT = "nanshan-finance"
FACTS = {"category": "tax", "district": "nanshan"}


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


# Mon 2 March 2026 10:00, a 24-hour target: 50 % at 22:00, 80 % at Tue 05:12, due Tue 10:00.
T0 = at(3, 2, 10)
T50 = at(3, 2, 22)
T80 = at(3, 3, 5, 12)
DUE = at(3, 3, 10)


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return load_calendars(CONFIG)["default"]


def new_clock(
    calendar: BusinessCalendar,
    target: str = "24h",
    started_at: datetime = T0,
    kind: ClockKind = ClockKind.resolution,
    generation: int = 1,
    department: str = DEPT,
):
    return clocks.start(
        APPEAL, kind, generation, department, "policy_24h", target, calendar, started_at, started_at, dict(FACTS)
    )


def apply(doc: dict[str, Any], change: clocks.ClockChange) -> dict[str, Any]:
    doc.update(change.set)
    return doc


def data(emit) -> SlaClockChanged:
    assert isinstance(emit.data, SlaClockChanged)
    return emit.data


def is_noop(change: clocks.ClockChange) -> bool:
    return change.set == {} and change.emits == [] and change.fired == []


# ---------------------------------------------------------------- ids and start


def test_clock_id_format():
    assert clocks.clock_id(APPEAL, ClockKind.scope, 1) == f"{APPEAL}:scope:1"
    assert clocks.clock_id(APPEAL, "response", 3) == f"{APPEAL}:response:3"
    with pytest.raises(ValueError):
        clocks.clock_id(APPEAL, "lunch", 1)


def test_start_gives_a_running_clock_due_at_start_plus_target(calendar):
    doc, emits = new_clock(calendar, kind=ClockKind.scope, generation=2, target="6h")
    assert doc["_id"] == f"{APPEAL}:scope:2"
    assert doc["appeal_id"] == APPEAL and doc["clock"] == "scope" and doc["generation"] == 2
    assert doc["state"] == ClockState.running
    assert doc["department"] == DEPT and doc["calendar"] == "default" and doc["sla_profile"] == "policy_24h"
    assert doc["started_at"] == doc["segment_start"] == T0
    assert doc["consumed"] == 0 and doc["budget"] == 6 * HOUR and doc["levels_fired"] == []
    assert doc["due_at"] == T0 + timedelta(hours=6)
    assert doc["next_level"] == 50
    assert doc["next_fire_at"] == T0 + timedelta(hours=3)
    assert doc["category"] == "tax" and doc["district"] == "nanshan"

    assert len(emits) == 1
    (emit,) = emits
    assert emit.topic == SLA_EVENTS
    assert emit.type == EventType.sla_started == "sla.started.v1"
    event = data(emit)
    assert event.clock_id == doc["_id"] and event.state == ClockState.running and event.level is None
    assert event.due_at == doc["due_at"] and event.remaining_seconds == 6 * HOUR and event.fired_at is None
    assert event.category == "tax" and event.district == "nanshan"


def test_start_24h_schedule(calendar):
    doc, _ = new_clock(calendar)
    assert doc["due_at"] == DUE
    assert doc["next_fire_at"] == T50
    assert clocks.level_at(doc, calendar, 80) == T80
    assert clocks.level_at(doc, calendar, 100) == DUE


def test_start_of_a_working_day_clock(calendar):
    # 3wd from Fri 13 Feb 16:00: due Wed 25th 16:00; 50 % (10.5 office hours) on Tue 24th 10:30.
    doc, _ = new_clock(calendar, target="3wd", started_at=at(2, 13, 16), kind=ClockKind.response)
    assert doc["budget"] == 21 * HOUR
    assert doc["due_at"] == at(2, 25, 16)
    assert doc["next_fire_at"] == at(2, 24, 10, 30)


# ---------------------------------------------------------------- fire


def test_fire_before_the_first_threshold_does_nothing(calendar):
    doc, _ = new_clock(calendar)
    assert is_noop(clocks.fire(doc, calendar, T50 - timedelta(seconds=1)))


def test_fire_at_fifty_percent_warns_on_sla_and_department_topics(calendar):
    doc, _ = new_clock(calendar)
    change = clocks.fire(doc, calendar, T50)
    assert [(e.topic, e.type) for e in change.emits] == [
        (SLA_EVENTS, EventType.sla_warning),
        (department_topic(DEPT), EventType.sla_warning),
    ]
    assert department_topic(DEPT) == f"dept.{DEPT}.v1"
    assert change.emits[0].type == "sla.warning.v1"
    for emit in change.emits:
        event = data(emit)
        assert event.level == 50 and event.state == ClockState.running and event.fired_at == T50
        assert event.remaining_seconds == 12 * HOUR and event.due_at == DUE
    assert change.fired == [(50, T50)]
    assert change.set["levels_fired"] == [50]
    assert change.set["next_level"] == 80 and change.set["next_fire_at"] == T80
    assert "state" not in change.set
    apply(doc, change)
    assert doc["state"] == ClockState.running and doc["due_at"] == DUE


def test_each_level_fires_exactly_once(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.fire(doc, calendar, T50))
    assert is_noop(clocks.fire(doc, calendar, T50))
    assert is_noop(clocks.fire(doc, calendar, T50 + timedelta(hours=1)))
    change = clocks.fire(doc, calendar, T80)
    assert [(data(e).level, e.type) for e in change.emits] == [(80, EventType.sla_warning)] * 2
    apply(doc, change)
    assert doc["next_level"] == 100 and doc["next_fire_at"] == DUE
    assert is_noop(clocks.fire(doc, calendar, T80))
    change = clocks.fire(doc, calendar, DUE)
    assert [(e.topic, e.type, data(e).level) for e in change.emits] == [
        (SLA_EVENTS, EventType.sla_breached, 100),
        (department_topic(DEPT), EventType.sla_breached, 100),
    ]
    apply(doc, change)
    assert doc["state"] == ClockState.breached and doc["levels_fired"] == [50, 80, 100]
    assert is_noop(clocks.fire(doc, calendar, DUE + timedelta(days=1)))


def test_fire_late_emits_every_missed_level_in_order_and_breaches(calendar):
    doc, _ = new_clock(calendar)
    now = DUE + timedelta(minutes=5)
    change = clocks.fire(doc, calendar, now)
    assert [(e.topic, e.type, data(e).level) for e in change.emits] == [
        (SLA_EVENTS, EventType.sla_warning, 50),
        (department_topic(DEPT), EventType.sla_warning, 50),
        (SLA_EVENTS, EventType.sla_warning, 80),
        (department_topic(DEPT), EventType.sla_warning, 80),
        (SLA_EVENTS, EventType.sla_breached, 100),
        (department_topic(DEPT), EventType.sla_breached, 100),
    ]
    assert change.emits[-1].type == "sla.breached.v1"
    assert [data(e).state for e in change.emits[::2]] == [ClockState.running, ClockState.running, ClockState.breached]
    assert all(data(e).fired_at == now for e in change.emits)
    assert change.fired == [(50, T50), (80, T80), (100, DUE)]
    apply(doc, change)
    assert doc["state"] == ClockState.breached
    assert doc["levels_fired"] == [50, 80, 100]
    assert doc["next_fire_at"] is None and doc["next_level"] is None
    assert doc["breached_at"] == now
    assert is_noop(clocks.fire(doc, calendar, now))


def test_fire_between_eighty_and_hundred_emits_fifty_and_eighty(calendar):
    doc, _ = new_clock(calendar)
    change = clocks.fire(doc, calendar, T80 + timedelta(minutes=1))
    assert [data(e).level for e in change.emits] == [50, 50, 80, 80]
    apply(doc, change)
    assert doc["state"] == ClockState.running and doc["next_level"] == 100 and doc["next_fire_at"] == DUE


def test_working_day_clock_fires_by_office_time_across_the_holiday(calendar):
    doc, _ = new_clock(calendar, target="3wd", started_at=at(2, 13, 16), kind=ClockKind.response)
    assert is_noop(clocks.fire(doc, calendar, at(2, 23, 23)))  # a week of holiday uses no office time
    change = clocks.fire(doc, calendar, at(2, 24, 10, 30))
    assert [data(e).level for e in change.emits] == [50, 50]
    apply(doc, change)
    assert doc["next_fire_at"] == at(2, 25, 9, 48)  # 80 % = 16.8 office hours


# ---------------------------------------------------------------- remaining


def test_remaining_counts_down_and_goes_negative_after_due(calendar):
    doc, _ = new_clock(calendar)
    assert clocks.remaining(doc, calendar, T0) == 24 * HOUR
    assert clocks.remaining(doc, calendar, T50) == 12 * HOUR
    assert clocks.remaining(doc, calendar, DUE) == 0
    assert clocks.remaining(doc, calendar, DUE + timedelta(hours=2)) == -2 * HOUR
    apply(doc, clocks.fire(doc, calendar, DUE + timedelta(hours=1)))
    assert doc["state"] == ClockState.breached
    assert clocks.remaining(doc, calendar, DUE + timedelta(hours=2)) == -2 * HOUR  # still counting


def test_remaining_of_a_working_day_clock_is_office_time(calendar):
    doc, _ = new_clock(calendar, target="3wd", started_at=at(2, 13, 16), kind=ClockKind.response)
    assert clocks.remaining(doc, calendar, at(2, 20, 12)) == 12 * HOUR  # Fri 2 h + make-up Sat 7 h used
    assert clocks.remaining(doc, calendar, at(2, 25, 17)) == -HOUR


def test_remaining_of_a_breached_clock_answered_late_stays_negative(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.fire(doc, calendar, DUE + timedelta(hours=1)))
    apply(doc, clocks.stop(doc, calendar, DUE + timedelta(hours=2)))
    assert clocks.remaining(doc, calendar, DUE + timedelta(days=3)) == -2 * HOUR


def test_remaining_of_a_met_clock_is_frozen_at_the_answer(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.stop(doc, calendar, T0 + timedelta(hours=6)))
    assert clocks.remaining(doc, calendar, DUE + timedelta(days=3)) == 18 * HOUR


# ---------------------------------------------------------------- pause and resume


def test_pause_consumes_elapsed_time_and_clears_the_schedule(calendar):
    doc, _ = new_clock(calendar)
    paused_at = T0 + timedelta(hours=2)
    change = clocks.pause(doc, calendar, paused_at)
    assert change.set == {
        "state": ClockState.paused,
        "consumed": 2 * HOUR,
        "paused_at": paused_at,
        "due_at": None,
        "next_level": None,
        "next_fire_at": None,
    }
    assert [(e.topic, e.type) for e in change.emits] == [(SLA_EVENTS, EventType.sla_paused)]
    event = data(change.emits[0])
    assert event.state == ClockState.paused and event.due_at is None and event.remaining_seconds == 22 * HOUR
    apply(doc, change)
    # A paused clock does not count down, and nothing fires, however long it waits.
    assert clocks.remaining(doc, calendar, paused_at + timedelta(days=5)) == 22 * HOUR
    assert is_noop(clocks.fire(doc, calendar, paused_at + timedelta(days=5)))


def test_pause_of_a_paused_clock_and_resume_of_a_running_clock_are_noops(calendar):
    doc, _ = new_clock(calendar)
    assert is_noop(clocks.resume(doc, calendar, T0 + timedelta(hours=1)))
    apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=2)))
    assert is_noop(clocks.pause(doc, calendar, T0 + timedelta(hours=3)))
    assert doc["consumed"] == 2 * HOUR


def test_resume_pushes_due_at_by_the_pause_length(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=2)))  # Mon 12:00
    resumed_at = T0 + timedelta(hours=5)  # Mon 15:00: a 3-hour pause
    change = clocks.resume(doc, calendar, resumed_at)
    assert [(e.topic, e.type) for e in change.emits] == [(SLA_EVENTS, EventType.sla_resumed)]
    assert data(change.emits[0]).state == ClockState.running
    assert data(change.emits[0]).due_at == DUE + timedelta(hours=3)
    apply(doc, change)
    assert doc["state"] == ClockState.running and doc["paused_at"] is None
    assert doc["segment_start"] == resumed_at
    assert doc["due_at"] == DUE + timedelta(hours=3)
    assert doc["next_level"] == 50 and doc["next_fire_at"] == T50 + timedelta(hours=3)
    assert clocks.remaining(doc, calendar, resumed_at) == 22 * HOUR
    assert is_noop(clocks.fire(doc, calendar, T50))  # the old 50 % instant no longer fires
    assert [data(e).level for e in clocks.fire(doc, calendar, T50 + timedelta(hours=3)).emits] == [50, 50]


def test_resume_after_warnings_keeps_the_fired_levels(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.fire(doc, calendar, T50))
    apply(doc, clocks.pause(doc, calendar, T50 + timedelta(hours=1)))
    apply(doc, clocks.resume(doc, calendar, T50 + timedelta(hours=11)))  # 10-hour pause
    assert doc["levels_fired"] == [50]
    assert doc["next_level"] == 80 and doc["next_fire_at"] == T80 + timedelta(hours=10)
    assert doc["due_at"] == DUE + timedelta(hours=10)


def test_a_level_passed_before_a_pause_fires_once_after_resume(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.pause(doc, calendar, at(3, 3, 0)))  # 14 h used, 50 % never fired
    apply(doc, clocks.resume(doc, calendar, at(3, 3, 6)))
    assert doc["next_level"] == 50 and doc["next_fire_at"] == at(3, 3, 4)  # already past
    change = clocks.fire(doc, calendar, at(3, 3, 6))
    assert [data(e).level for e in change.emits] == [50, 50]
    apply(doc, change)
    assert doc["next_level"] == 80 and doc["next_fire_at"] == at(3, 3, 11, 12)
    assert is_noop(clocks.fire(doc, calendar, at(3, 3, 6)))


def test_working_day_clock_paused_over_the_spring_festival(calendar):
    # 3wd from Fri 13 Feb 10:00 would be due Wed 25th 10:00 (Fri 6 h, make-up Sat 7 h, Tue 7 h, Wed 1 h).
    doc, _ = new_clock(calendar, target="3wd", started_at=at(2, 13, 10), kind=ClockKind.response)
    assert doc["due_at"] == at(2, 25, 10)
    apply(doc, clocks.pause(doc, calendar, at(2, 13, 16)))
    assert doc["consumed"] == 4 * HOUR  # 10:00-12:00 and 14:00-16:00
    apply(doc, clocks.resume(doc, calendar, at(2, 24, 9)))
    # 17 office hours left from Tue 24th 09:00: Tue 7 h, Wed 7 h, Thu 09:00-12:00.
    assert doc["due_at"] == at(2, 26, 12)
    assert doc["next_fire_at"] == at(2, 24, 17, 30)  # 50 %: 6.5 office hours after resuming
    assert clocks.remaining(doc, calendar, at(2, 24, 9)) == 17 * HOUR


def test_working_day_clock_paused_over_a_weekend_night_keeps_its_due_time(calendar):
    doc, _ = new_clock(calendar, target="3wd", started_at=at(3, 6, 10), kind=ClockKind.response)
    assert doc["due_at"] == at(3, 11, 10)
    apply(doc, clocks.pause(doc, calendar, at(3, 6, 18, 30)))
    apply(doc, clocks.resume(doc, calendar, at(3, 9, 8)))
    assert doc["consumed"] == 6 * HOUR
    assert doc["due_at"] == at(3, 11, 10)


# ---------------------------------------------------------------- stop and cancel


@pytest.mark.parametrize("paused", [False, True])
def test_stop_of_a_live_clock_is_met(calendar, paused):
    doc, _ = new_clock(calendar)
    if paused:
        apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=1)))
    ended = T0 + timedelta(hours=3)
    change = clocks.stop(doc, calendar, ended)
    assert [(e.topic, e.type) for e in change.emits] == [(SLA_EVENTS, EventType.sla_met)]
    assert change.emits[0].type == "sla.met.v1"
    assert data(change.emits[0]).state == ClockState.met and data(change.emits[0]).remaining_seconds is None
    apply(doc, change)
    assert doc["state"] == ClockState.met and doc["ended_at"] == ended
    assert doc["next_fire_at"] is None and doc["next_level"] is None
    assert is_noop(clocks.stop(doc, calendar, ended + timedelta(hours=1)))
    assert is_noop(clocks.cancel(doc, calendar, ended + timedelta(hours=1)))
    assert is_noop(clocks.fire(doc, calendar, DUE + timedelta(days=1)))
    assert is_noop(clocks.pause(doc, calendar, ended + timedelta(hours=1)))
    assert is_noop(clocks.resume(doc, calendar, ended + timedelta(hours=1)))


def test_stop_of_a_breached_clock_records_the_end_without_an_event(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.fire(doc, calendar, DUE))
    ended = DUE + timedelta(hours=4)
    change = clocks.stop(doc, calendar, ended)
    assert change.emits == []
    assert change.set["ended_at"] == ended and change.set["next_fire_at"] is None
    apply(doc, change)
    assert doc["state"] == ClockState.breached and doc["ended_at"] == ended
    assert is_noop(clocks.stop(doc, calendar, ended + timedelta(hours=1)))
    assert doc["ended_at"] == ended


@pytest.mark.parametrize("paused", [False, True])
def test_cancel_of_a_live_clock(calendar, paused):
    doc, _ = new_clock(calendar)
    if paused:
        apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=1)))
    ended = T0 + timedelta(hours=2)
    change = clocks.cancel(doc, calendar, ended)
    assert [(e.topic, e.type) for e in change.emits] == [(SLA_EVENTS, EventType.sla_cancelled)]
    assert data(change.emits[0]).state == ClockState.cancelled
    apply(doc, change)
    assert doc["state"] == ClockState.cancelled and doc["ended_at"] == ended and doc["next_fire_at"] is None
    assert is_noop(clocks.cancel(doc, calendar, ended))
    assert is_noop(clocks.stop(doc, calendar, ended))
    assert is_noop(clocks.fire(doc, calendar, DUE + timedelta(days=1)))


def test_cancel_of_a_breached_clock_records_the_end_without_an_event(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.fire(doc, calendar, DUE))
    change = clocks.cancel(doc, calendar, DUE + timedelta(hours=1))
    assert change.emits == [] and change.set["ended_at"] == DUE + timedelta(hours=1)
    apply(doc, change)
    assert doc["state"] == ClockState.breached


# ---------------------------------------------------------------- retarget and reassign


def test_retarget_to_a_longer_target_moves_due_at(calendar):
    # 3wd from Mon 2 March 10:00 is due Thu 10:00; 5wd is due Mon 9 March 10:00.
    doc, _ = new_clock(calendar, target="3wd", kind=ClockKind.response)
    assert doc["due_at"] == at(3, 5, 10)
    change = clocks.retarget(doc, calendar, "5wd", at(3, 3, 11))
    assert change.emits == []
    assert change.set["target"] == "5wd" and change.set["budget"] == 35 * HOUR
    apply(doc, change)
    assert doc["due_at"] == at(3, 9, 10)
    assert doc["next_level"] == 50 and doc["next_fire_at"] == at(3, 4, 15, 30)  # 17.5 office hours
    assert is_noop(clocks.retarget(doc, calendar, "5wd", at(3, 3, 12)))


def test_retarget_after_a_warning_keeps_the_fired_level(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.fire(doc, calendar, T50))
    apply(doc, clocks.retarget(doc, calendar, "72h", T50 + timedelta(hours=1)))
    assert doc["levels_fired"] == [50]
    assert doc["due_at"] == T0 + timedelta(hours=72)
    assert doc["next_level"] == 80 and doc["next_fire_at"] == T0 + timedelta(hours=72 * 0.8)


def test_retarget_of_a_paused_clock_sets_only_the_target(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=2)))
    change = clocks.retarget(doc, calendar, "48h", T0 + timedelta(hours=3))
    assert change.set == {"target": "48h", "budget": 48 * HOUR}
    apply(doc, change)
    apply(doc, clocks.resume(doc, calendar, T0 + timedelta(hours=4)))
    assert doc["due_at"] == T0 + timedelta(hours=50)  # 46 h left after a 2-hour pause


def test_retarget_of_an_ended_clock_is_a_noop(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.stop(doc, calendar, T0 + timedelta(hours=1)))
    assert is_noop(clocks.retarget(doc, calendar, "72h", T0 + timedelta(hours=2)))


def test_reassign_changes_department_of_live_clocks_only(calendar):
    doc, _ = new_clock(calendar)
    assert clocks.reassign(doc, "futian-commerce").set == {"department": "futian-commerce"}
    assert is_noop(clocks.reassign(doc, DEPT))
    apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=1)))
    assert clocks.reassign(doc, "futian-commerce").set == {"department": "futian-commerce"}

    met, _ = new_clock(calendar)
    apply(met, clocks.stop(met, calendar, T0 + timedelta(hours=1)))
    assert is_noop(clocks.reassign(met, "futian-commerce"))
    cancelled, _ = new_clock(calendar)
    apply(cancelled, clocks.cancel(cancelled, calendar, T0 + timedelta(hours=1)))
    assert is_noop(clocks.reassign(cancelled, "futian-commerce"))


def test_warnings_after_reassign_go_to_the_new_department(calendar):
    doc, _ = new_clock(calendar)
    apply(doc, clocks.reassign(doc, "futian-commerce"))
    change = clocks.fire(doc, calendar, T50)
    assert [e.topic for e in change.emits] == [SLA_EVENTS, "dept.futian-commerce.v1"]
    assert all(data(e).department == "futian-commerce" for e in change.emits)


def test_a_change_to_several_clocks_is_reported_in_one_event_under_the_v1_ids(calendar):
    _, started = new_clock(calendar)
    _, response = new_clock(calendar, "2h", kind=ClockKind.response)
    emits = [*started, *response]
    ids = [new_id(), new_id()]
    out, out_ids = pack(APPEAL, emits, ids, T0)
    assert [(e.topic, e.type) for e in out] == [(SLA_EVENTS_V2, EventType.sla_reported)]
    reports = out[0].data.reports
    assert [(r.id, r.type, r.data) for r in reports] == [(i, e.type, e.data) for i, e in zip(ids, emits, strict=True)]
    assert out_ids == pack(APPEAL, emits, ids, T0)[1], "packed again (a threshold fired again), the same id"
    with_v1, with_v1_ids = pack(APPEAL, emits, ids, T0, publish_v1=True)
    assert [e.topic for e in with_v1] == [SLA_EVENTS_V2, SLA_EVENTS, SLA_EVENTS]
    assert with_v1_ids == [*out_ids, *ids], "each v1 event keeps the id of its report"


def test_a_threshold_still_goes_to_the_department_as_a_v1_event(calendar):
    doc, _ = new_clock(calendar)
    change = clocks.fire(doc, calendar, T50)
    ids = [new_id()] * 2  # as the scheduler gives them: one id per threshold, on both topics
    out, out_ids = pack(APPEAL, change.emits, ids, T50)
    assert [(e.topic, e.type) for e in out] == [
        (SLA_EVENTS_V2, EventType.sla_reported),
        (department_topic(DEPT), EventType.sla_warning),
    ]
    assert out[0].data.reports[0].id == out_ids[1] == ids[0], "the warning is one id on both topics"
    assert out[1].data.level == 50
