"""An approved extension (延期) on one clock (services/sla/clocks.py, `extend`), with fixed instants.

Apart from tests/unit/test_sla_clocks.py only to keep each file readable at one sitting; the
same conventions: functions return a ClockChange, applied with `doc.update(change.set)`.
"""

import logging
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.calendars import BusinessCalendar, load_calendars
from libs.contract import SLA_EVENTS, department_topic
from libs.events import SlaClockChanged
from libs.kinds import ClockKind, ClockState, EventType
from services.sla import clocks, views

CONFIG = Path(__file__).resolve().parents[2] / "config"
SH = ZoneInfo("Asia/Shanghai")
HOUR = 3600.0
APPEAL = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
DEPT = "finance"


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


def new_clock(calendar: BusinessCalendar, target: str = "24h", started_at: datetime = T0) -> dict[str, Any]:
    doc, _ = clocks.start(
        APPEAL, ClockKind.resolution, 1, DEPT, "policy_24h", target, calendar, started_at, started_at, {}
    )
    return doc


def apply(doc: dict[str, Any], change: clocks.ClockChange) -> dict[str, Any]:
    doc.update(change.set)
    return doc


def data(emit) -> SlaClockChanged:
    assert isinstance(emit.data, SlaClockChanged)
    return emit.data


def is_noop(change: clocks.ClockChange) -> bool:
    return change.set == {} and change.emits == [] and change.fired == []


# ---------------------------------------------------------------- the new due time is `until`, exactly


@pytest.mark.parametrize(
    "target, started_at, due, until, budget_hours",
    [
        # Office hours 09:00-12:00 and 14:00-18:00 (7 h a day). 3wd from Mon 2 March 10:00 is due Thu 10:00;
        # to Mon 9 March 11:00 adds Thu 6 h, Fri 7 h, no weekend, Mon 2 h.
        pytest.param("3wd", at(3, 2, 10), at(3, 5, 10), at(3, 9, 11), 21 + 15, id="working days, a weekend"),
        # 3wd from Wed 11 Feb 10:00 is due on the make-up Saturday 14th at 10:00; to Wed 25th 16:00 adds
        # Sat 6 h, nothing for the Spring Festival (15-23 Feb), Tue 24th 7 h and Wed 25th 5 h.
        pytest.param("3wd", at(2, 11, 10), at(2, 14, 10), at(2, 25, 16), 21 + 18, id="working days, Spring Festival"),
        # 3wd from Tue 31 March 10:00 is due Fri 3 April 10:00; to Tue 7 April 11:00 adds Fri 6 h, nothing for the
        # weekend and Qingming Monday (6 April), Tue 2 h.
        pytest.param("3wd", at(3, 31, 10), at(4, 3, 10), at(4, 7, 11), 21 + 8, id="working days, Qingming"),
        # Calendar hours count the weekend: Tue 3 March 10:00 to Fri 6 March 18:00 adds 80 h.
        pytest.param("24h", T0, DUE, at(3, 6, 18), 24 + 80, id="calendar hours"),
    ],
)
def test_an_extension_moves_the_due_time_to_until(calendar, target, started_at, due, until, budget_hours):
    doc = new_clock(calendar, target, started_at)
    assert doc["due_at"] == due
    approved = started_at + timedelta(hours=1)
    change = clocks.extend(doc, calendar, until, approved)
    assert change.set["due_at"] == until
    assert change.set["budget"] == budget_hours * HOUR
    assert change.set["original_due_at"] == due
    apply(doc, change)
    assert clocks.level_at(doc, calendar, 100) == until
    assert clocks.remaining(doc, calendar, until) == 0
    assert doc["state"] == ClockState.running and doc["levels_fired"] == []


def test_an_extension_is_reported_with_the_new_and_the_original_due_time(calendar):
    doc = new_clock(calendar)
    approved, until = T0 + timedelta(hours=13), DUE + timedelta(hours=24)
    change = clocks.extend(doc, calendar, until, approved)
    assert [(e.topic, e.type) for e in change.emits] == [(SLA_EVENTS, EventType.sla_extended)]
    assert change.emits[0].type == "sla.extended.v1"
    event = data(change.emits[0])
    assert event.state == ClockState.running and event.level is None and event.fired_at is None
    assert event.due_at == until and event.original_due_at == DUE
    assert event.remaining_seconds == (until - approved).total_seconds()


def test_a_second_extension_keeps_the_first_due_time_as_the_original(calendar):
    doc = new_clock(calendar)
    apply(doc, clocks.extend(doc, calendar, DUE + timedelta(hours=24), T0 + timedelta(hours=1)))
    change = clocks.extend(doc, calendar, DUE + timedelta(hours=48), T0 + timedelta(hours=2))
    assert change.set["original_due_at"] == DUE and change.set["due_at"] == DUE + timedelta(hours=48)
    assert data(change.emits[0]).original_due_at == DUE


# ---------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    "fired_by, levels_fired, next_level, next_fire_at",
    [
        # Extended to 48 h: 50 % at T0 + 24 h, 80 % at T0 + 38.4 h, due T0 + 48 h.
        pytest.param(None, [], 50, T0 + timedelta(hours=24), id="none fired"),
        pytest.param(T50, [50], 80, T0 + timedelta(hours=38.4), id="50 fired"),
        pytest.param(T80, [50, 80], 100, T0 + timedelta(hours=48), id="50 and 80 fired"),
    ],
)
def test_thresholds_come_from_the_new_budget_and_a_fired_one_stays_fired(
    calendar, fired_by, levels_fired, next_level, next_fire_at
):
    doc = new_clock(calendar)
    if fired_by:
        apply(doc, clocks.fire(doc, calendar, fired_by))
    until = T0 + timedelta(hours=48)
    apply(doc, clocks.extend(doc, calendar, until, T80 + timedelta(minutes=1)))
    assert doc["levels_fired"] == levels_fired
    assert (doc["next_level"], doc["next_fire_at"]) == (next_level, next_fire_at)
    early = clocks.fire(doc, calendar, until - timedelta(seconds=1))
    assert 100 not in [level for level, _ in early.fired], "no breach at the old due time, nor before until"
    # Late enough for all: only the levels not fired before are sent, the breach on the new due time.
    change = clocks.fire(doc, calendar, until)
    assert [level for level, _ in change.fired] == [lv for lv in clocks.LEVELS if lv not in levels_fired]
    assert change.fired[-1] == (100, until)
    breach = data(change.emits[-1])
    assert change.emits[-1].topic == department_topic(DEPT) and change.emits[-1].type == EventType.sla_breached
    assert breach.due_at == until and breach.original_due_at == DUE


def test_an_extended_clock_paused_and_resumed_moves_on_from_its_new_due_time(calendar):
    doc = new_clock(calendar)
    until = DUE + timedelta(hours=24)
    apply(doc, clocks.extend(doc, calendar, until, T0 + timedelta(hours=1)))
    apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=2)))
    change = clocks.resume(doc, calendar, T0 + timedelta(hours=5))
    assert data(change.emits[0]).original_due_at == DUE
    apply(doc, change)
    assert doc["due_at"] == until + timedelta(hours=3) and doc["original_due_at"] == DUE


# ---------------------------------------------------------------- clocks an extension leaves alone


def paused(calendar: BusinessCalendar, doc: dict[str, Any]) -> None:
    apply(doc, clocks.pause(doc, calendar, T0 + timedelta(hours=1)))


def met(calendar: BusinessCalendar, doc: dict[str, Any]) -> None:
    apply(doc, clocks.stop(doc, calendar, T0 + timedelta(hours=1)))


def cancelled(calendar: BusinessCalendar, doc: dict[str, Any]) -> None:
    apply(doc, clocks.cancel(doc, calendar, T0 + timedelta(hours=1)))


def breached(calendar: BusinessCalendar, doc: dict[str, Any]) -> None:
    apply(doc, clocks.fire(doc, calendar, DUE))


@pytest.mark.parametrize(
    "before, until, approved",
    [
        pytest.param(paused, DUE + timedelta(days=2), T0 + timedelta(hours=2), id="paused"),
        pytest.param(met, DUE + timedelta(days=2), T0 + timedelta(hours=2), id="met"),
        pytest.param(cancelled, DUE + timedelta(days=2), T0 + timedelta(hours=2), id="cancelled"),
        pytest.param(breached, DUE + timedelta(days=2), DUE + timedelta(minutes=1), id="breached"),
        # Still running because the scheduler has not fired it yet: approved after its due time, it lapsed.
        pytest.param(None, DUE + timedelta(days=2), DUE + timedelta(seconds=1), id="running past its due time"),
        pytest.param(None, DUE, T0 + timedelta(hours=2), id="until not after the due time"),
        pytest.param(None, DUE - timedelta(hours=1), T0 + timedelta(hours=2), id="until before the due time"),
    ],
)
def test_an_extension_leaves_a_clock_not_running_before_until_as_it_is(calendar, caplog, before, until, approved):
    doc = new_clock(calendar)
    if before:
        before(calendar, doc)
    kept = dict(doc)
    with caplog.at_level(logging.INFO, logger=clocks.__name__):
        assert is_noop(clocks.extend(doc, calendar, until, approved))
    assert doc == kept and "original_due_at" not in doc
    (record,) = [r for r in caplog.records if r.name == clocks.__name__]
    assert record.levelno == logging.INFO and record.clock_id == doc["_id"] and record.state == doc["state"]


def test_a_breach_stands_after_a_late_approval(calendar):
    doc = new_clock(calendar)
    breached(calendar, doc)
    assert is_noop(clocks.extend(doc, calendar, DUE + timedelta(days=2), DUE + timedelta(minutes=1)))
    assert doc["state"] == ClockState.breached and doc["levels_fired"] == [50, 80, 100]


# ---------------------------------------------------------------- what GET /v1/appeals/{id}/sla shows


def test_the_clock_view_shows_the_original_due_time_of_an_extended_clock_only(calendar):
    runtime = SimpleNamespace(
        book=SimpleNamespace(calendars=load_calendars(CONFIG)), clock=SimpleNamespace(now=lambda: T0)
    )
    doc = new_clock(calendar)
    assert views._view(doc, runtime).original_due_at is None
    until = DUE + timedelta(hours=24)
    apply(doc, clocks.extend(doc, calendar, until, T0))
    view = views._view(doc, runtime)
    assert view.due_at == until and view.original_due_at == DUE
    assert view.remaining_seconds == 48 * HOUR
    assert view.model_dump(mode="json")["original_due_at"] == "2026-03-03T10:00:00+08:00"
