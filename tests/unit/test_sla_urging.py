"""The urging ladder (催办/督办) on one clock (services/sla/clocks.py, `fire` with the ladder), with fixed instants.

Level 1 is the breach itself; `config/supervision.yaml` puts level 2 one working day after
it and level 3 five, on the clock's calendar. The same conventions as
tests/unit/test_sla_clocks.py: functions return a ClockChange, applied with `doc.update(change.set)`.
"""

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.calendars import BusinessCalendar, load_calendars
from libs.config import ConfigError, UrgingLevel, load_city, load_supervision
from libs.contract import SLA_EVENTS, SLA_EVENTS_V2, department_topic
from libs.events import SlaClockChanged
from libs.kinds import ClockKind, ClockState, EventType
from libs.mongo import as_stored
from services.sla import clocks, views
from services.sla.app import create_app, load_book
from services.sla.service import pack, summary, threshold_event_id, urge_event_id
from services.sla.settings import SlaSettings

CONFIG = Path(__file__).resolve().parents[2] / "config"
SH = ZoneInfo("Asia/Shanghai")
APPEAL = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
DEPT = "finance"
S = timedelta(seconds=1)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


# A response clock of 3wd from Tue 3 March 16:00 falls due Fri 6 March 16:00; level 2 comes one working day
# later (Fri 2 h, Mon 5 h: Mon 9 March 16:00), level 3 five (Fri 2 h, Mon-Thu 28 h, Fri 5 h: Fri 13 March 16:00).
STARTED, DUE, L2, L3 = at(3, 3, 16), at(3, 6, 16), at(3, 9, 16), at(3, 13, 16)


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return load_calendars(CONFIG)["default"]


@pytest.fixture(scope="module")
def ladder() -> list[UrgingLevel]:
    return load_supervision(CONFIG, load_city(CONFIG)).urging.levels


def new_clock(
    calendar: BusinessCalendar, target: str = "3wd", started_at: datetime = STARTED, kind=ClockKind.response
) -> dict[str, Any]:
    doc, _ = clocks.start(APPEAL, kind, 1, DEPT, "policy_24h", target, calendar, started_at, started_at, {})
    return doc


def apply(doc: dict[str, Any], change: clocks.ClockChange) -> dict[str, Any]:
    doc.update(change.set)
    return doc


def data(emit) -> SlaClockChanged:
    assert isinstance(emit.data, SlaClockChanged)
    return emit.data


def is_noop(change: clocks.ClockChange) -> bool:
    return change.set == {} and change.emits == [] and change.fired == [] and change.urged == []


def breached(calendar, ladder, **kwargs) -> dict[str, Any]:
    doc = new_clock(calendar, **kwargs)
    return apply(doc, clocks.fire(doc, calendar, doc["due_at"], ladder))


def urges(change: clocks.ClockChange) -> list[tuple[str, str, int | None]]:
    return [(e.topic, e.type, data(e).urge_level) for e in change.emits if e.type == EventType.sla_urged]


def test_the_configured_ladder_is_one_and_five_working_days_after_the_breach(ladder):
    assert [(r.level, r.after_breach) for r in ladder] == [(2, "1wd"), (3, "5wd")]


# ---------------------------------------------------------------- when each level falls due


@pytest.mark.parametrize(
    "target, started_at, due, level_2, level_3",
    [
        pytest.param("3wd", STARTED, DUE, L2, L3, id="breach Friday 16:00, over a weekend"),
        # Calendar hours breach on Saturday 03:00: the next working day is Monday, all of it.
        pytest.param("24h", at(3, 6, 3), at(3, 7, 3), at(3, 9, 18), at(3, 13, 18), id="breach on a Saturday night"),
        # Fri 13 February 16:00, before the Spring Festival: Saturday the 14th is a make-up working day (16:00);
        # 15-23 February are off, so level 3 comes Fri 27 February 16:00 (Fri 2 h, Sat 7 h, 24-26 Feb 21 h, 5 h).
        pytest.param("3wd", at(2, 10, 16), at(2, 13, 16), at(2, 14, 16), at(2, 27, 16), id="Spring Festival"),
        # A 6 h scope clock due Friday 20:00, after office hours: all of Saturday the 14th (make-up), then five.
        pytest.param("6h", at(2, 13, 14), at(2, 13, 20), at(2, 14, 18), at(2, 27, 18), id="due after office hours"),
    ],
)
def test_each_level_falls_due_on_the_clocks_calendar_after_the_breach(
    calendar, ladder, target, started_at, due, level_2, level_3
):
    doc = new_clock(calendar, target, started_at)
    assert doc["due_at"] == due
    change = clocks.fire(doc, calendar, due, ladder)
    assert [level for level, _ in change.fired] == [50, 80, 100] and change.urged == []
    apply(doc, change)
    assert doc["state"] == ClockState.breached
    assert doc["next_urge"] == 2 and doc["next_fire_at"] == level_2 and doc["urges_fired"] == []
    assert [clocks.urge_at(doc, calendar, rung) for rung in ladder] == [level_2, level_3]
    apply(doc, clocks.fire(doc, calendar, level_2, ladder))
    assert doc["next_urge"] == 3 and doc["next_fire_at"] == level_3


# ---------------------------------------------------------------- each level once, on time


def test_each_level_fires_once_on_its_instant_on_both_topics(calendar, ladder):
    doc = breached(calendar, ladder)
    assert is_noop(clocks.fire(doc, calendar, L2 - S, ladder))

    change = clocks.fire(doc, calendar, L2, ladder)
    assert urges(change) == [
        (SLA_EVENTS, EventType.sla_urged, 2),
        (department_topic(DEPT), EventType.sla_urged, 2),
    ]
    assert change.emits[0].type == "sla.urged.v1" and change.fired == [] and change.urged == [(2, L2)]
    for emit in change.emits:
        event = data(emit)
        assert event.state == ClockState.breached and event.level is None and event.fired_at == L2
        assert event.due_at == DUE and event.remaining_seconds is None and event.department == DEPT
    apply(doc, change)
    assert doc["urges_fired"] == [2] and doc["state"] == ClockState.breached
    assert is_noop(clocks.fire(doc, calendar, L2, ladder))
    assert is_noop(clocks.fire(doc, calendar, L3 - S, ladder))

    change = clocks.fire(doc, calendar, L3, ladder)
    assert urges(change) == [(SLA_EVENTS, EventType.sla_urged, 3), (department_topic(DEPT), EventType.sla_urged, 3)]
    apply(doc, change)
    assert doc["urges_fired"] == [2, 3] and doc["next_urge"] is None and doc["next_fire_at"] is None
    assert is_noop(clocks.fire(doc, calendar, L3 + timedelta(days=30), ladder))


def test_a_pass_long_after_fires_every_missed_threshold_and_level_in_order_once(calendar, ladder):
    doc = new_clock(calendar)
    late = L3 + timedelta(hours=1)
    change = clocks.fire(doc, calendar, late, ladder)
    assert [(e.type, data(e).level, data(e).urge_level) for e in change.emits[::2]] == [
        (EventType.sla_warning, 50, None),
        (EventType.sla_warning, 80, None),
        (EventType.sla_breached, 100, None),
        (EventType.sla_urged, None, 2),
        (EventType.sla_urged, None, 3),
    ]
    assert [level for level, _ in change.fired] == [50, 80, 100] and change.urged == [(2, L2), (3, L3)]
    apply(doc, change)
    assert is_noop(clocks.fire(doc, calendar, late, ladder))


def test_without_a_ladder_a_breach_is_the_last_thing_that_fires(calendar):
    doc = breached(calendar, ())
    assert doc["next_fire_at"] is None and doc["next_urge"] is None
    assert is_noop(clocks.fire(doc, calendar, L3, ()))


# ---------------------------------------------------------------- only while the clock awaits its answer


@pytest.mark.parametrize("end", [clocks.stop, clocks.cancel], ids=["answered", "cancelled"])
@pytest.mark.parametrize("ended_at", [DUE + timedelta(hours=1), L2 + timedelta(hours=1)], ids=["before 2", "after 2"])
def test_no_level_fires_once_the_breached_clock_stopped(calendar, ladder, end, ended_at):
    doc = breached(calendar, ladder)
    apply(doc, clocks.fire(doc, calendar, ended_at, ladder))
    change = end(doc, calendar, ended_at)
    assert change.emits == [], "the breach stands: no met or cancelled event"
    assert change.set["next_fire_at"] is None and change.set["next_urge"] is None
    apply(doc, change)
    fired_before = list(doc["urges_fired"])
    for later in (L2, L3, L3 + timedelta(days=1)):
        assert is_noop(clocks.fire(doc, calendar, later, ladder))
    assert doc["urges_fired"] == fired_before and doc["state"] == ClockState.breached


def test_stopping_a_breached_clock_clears_the_appeals_pending_level(calendar, ladder):
    scope = breached(calendar, ladder, target="6h", started_at=at(3, 6, 9), kind=ClockKind.scope)
    resolution = new_clock(calendar, target="10d", started_at=at(3, 6, 9), kind=ClockKind.resolution)
    found, gone = summary([scope, resolution])
    # Scope's level 2 (Mon 15:00) comes before resolution's 50 % (Wed 09:00).
    assert found["next_fire_at"] == scope["next_fire_at"] == at(3, 9, 15)
    assert found["live_due"] == resolution["due_at"], "a breached clock has no running due time"
    apply(scope, clocks.stop(scope, calendar, at(3, 7, 10)))
    found, gone = summary([scope, resolution])
    assert found["next_fire_at"] == resolution["next_fire_at"] == at(3, 11, 9)
    apply(resolution, clocks.stop(resolution, calendar, at(3, 7, 10)))
    assert summary([scope, resolution]) == ({}, {"next_fire_at": "", "live_due": ""}), "nothing left to claim"


def test_a_clock_breached_before_sla_knew_the_ladder_is_not_urged(calendar, ladder):
    doc = breached(calendar, ())
    del doc["urges_fired"], doc["next_urge"]
    assert is_noop(clocks.fire(doc, calendar, L3, ladder))


# ---------------------------------------------------------------- what moves the ladder


def test_an_extension_before_the_breach_moves_the_breach_and_every_level(calendar, ladder):
    doc = new_clock(calendar)
    # Approved Thu 5 March: due Tue 10 March 16:00 instead of Fri 6 March 16:00.
    until = at(3, 10, 16)
    apply(doc, clocks.extend(doc, calendar, until, at(3, 5, 10)))
    at_old_level_2 = clocks.fire(doc, calendar, L2, ladder)
    assert 100 not in [level for level, _ in at_old_level_2.fired] and at_old_level_2.urged == []
    apply(doc, clocks.fire(doc, calendar, until, ladder))
    assert doc["state"] == ClockState.breached and doc["original_due_at"] == DUE
    # One working day after Tue 16:00 is Wed 16:00; five is the next Tue 16:00.
    assert doc["next_fire_at"] == at(3, 11, 16)
    assert [clocks.urge_at(doc, calendar, rung) for rung in ladder] == [at(3, 11, 16), at(3, 17, 16)]
    assert not clocks.fire(doc, calendar, at(3, 11, 16) - S, ladder).urged
    change = clocks.fire(doc, calendar, at(3, 17, 16), ladder)
    assert change.urged == [(2, at(3, 11, 16)), (3, at(3, 17, 16))]
    assert all(data(e).original_due_at == DUE and data(e).due_at == until for e in change.emits)


def test_an_extension_after_the_breach_moves_nothing(calendar, ladder):
    doc = breached(calendar, ladder)
    assert is_noop(clocks.extend(doc, calendar, at(3, 20, 16), DUE + timedelta(hours=1)))
    assert clocks.fire(doc, calendar, L2, ladder).urged == [(2, L2)]


def test_a_breached_clock_that_moves_with_the_appeal_is_urged_at_its_new_department(calendar, ladder):
    doc = breached(calendar, ladder, kind=ClockKind.resolution)
    apply(doc, clocks.reassign(doc, "customs"))
    change = clocks.fire(doc, calendar, L2, ladder)
    assert [e.topic for e in change.emits] == [SLA_EVENTS, department_topic("customs")]
    assert {data(e).department for e in change.emits} == {"customs"}


def test_a_level_the_configuration_no_longer_has_is_dropped_not_claimed_forever(calendar, ladder):
    doc = as_stored(breached(calendar, ladder))
    only_level_2 = [rung for rung in ladder if rung.level == 2]
    apply(doc, clocks.fire(doc, calendar, L2, only_level_2))
    assert doc["next_fire_at"] is None
    # Level 3 moved to ten working days: the stored instant is due, the new one is not; it is rescheduled.
    doc = as_stored(breached(calendar, ladder))
    apply(doc, clocks.fire(doc, calendar, L2, ladder))
    later = [ladder[0], UrgingLevel(level=3, after_breach="10wd", audiences=ladder[1].audiences)]
    change = clocks.fire(doc, calendar, L3, later)
    assert change.urged == [] and change.emits == []
    assert change.set["next_urge"] == 3 and change.set["next_fire_at"] == at(3, 20, 16)


def test_the_exact_instant_of_the_next_threshold_or_level(calendar, ladder):
    doc = new_clock(calendar)
    assert clocks.next_instant(doc, calendar, ladder) == clocks.level_at(doc, calendar, 50)
    doc = breached(calendar, ladder)
    assert clocks.next_instant(doc, calendar, ladder) == L2
    apply(doc, clocks.stop(doc, calendar, DUE + S))
    assert clocks.next_instant(doc, calendar, ladder) is None


# ---------------------------------------------------------------- ids, the packed report, the view


def test_each_level_has_an_id_of_its_own_the_same_every_time():
    clock_id = f"{APPEAL}:response:1"
    assert urge_event_id(clock_id, 2, L2) == urge_event_id(clock_id, 2, L2)
    ids = {urge_event_id(clock_id, 2, L2), urge_event_id(clock_id, 3, L3), threshold_event_id(clock_id, 100, DUE)}
    assert len(ids) == 3
    assert urge_event_id(clock_id, 2, L2) != urge_event_id(f"{APPEAL}:response:2", 2, L2)


def test_a_level_is_packed_like_a_warning_and_goes_to_the_department_on_its_own(calendar, ladder):
    doc = breached(calendar, ladder)
    change = clocks.fire(doc, calendar, L2, ladder)
    event_id = urge_event_id(doc["_id"], 2, L2)
    out, out_ids = pack(APPEAL, change.emits, [event_id] * 2, L2)
    assert [(e.topic, e.type) for e in out] == [
        (SLA_EVENTS_V2, EventType.sla_reported),
        (department_topic(DEPT), EventType.sla_urged),
    ]
    (report,) = out[0].data.reports
    assert (report.id, report.type, report.data.urge_level) == (event_id, EventType.sla_urged, 2)
    assert out_ids[1] == event_id


def test_the_view_shows_the_level_reached_and_when_the_next_is_due(calendar, ladder):
    runtime = SimpleNamespace(
        book=SimpleNamespace(calendars=load_calendars(CONFIG)), clock=SimpleNamespace(now=lambda: L2)
    )
    doc = new_clock(calendar)
    assert (views._view(doc, runtime).urge_level, views._view(doc, runtime).next_urge_at) == (None, None)
    apply(doc, clocks.fire(doc, calendar, DUE, ladder))
    assert (views._view(doc, runtime).urge_level, views._view(doc, runtime).next_urge_at) == (1, L2)
    apply(doc, clocks.fire(doc, calendar, L2, ladder))
    assert (views._view(doc, runtime).urge_level, views._view(doc, runtime).next_urge_at) == (2, L3)
    apply(doc, clocks.stop(doc, calendar, L2 + S))
    view = views._view(doc, runtime)
    assert (view.urge_level, view.next_urge_at, view.breached) == (2, None, True)


# ---------------------------------------------------------------- the ladder, from supervision.yaml checked at start


def test_the_book_climbs_the_configured_ladder():
    assert [(r.level, r.after_breach) for r in load_book(CONFIG).ladder] == [(2, "1wd"), (3, "5wd")]


@pytest.mark.parametrize(
    "after_breach, complaint",
    [
        ("a day", r"supervision\.yaml: urging\.levels\[0\]\.after_breach"),
        ("0wd", r"supervision\.yaml: urging\.levels\[0\]: after_breach: '0wd' must be positive"),
    ],
    ids=["not a duration", "zero"],
)
def test_a_broken_supervision_file_stops_sla_at_start(tmp_path, after_breach, complaint):
    config = shutil.copytree(CONFIG, tmp_path / "config")
    text = (config / "supervision.yaml").read_text(encoding="utf-8")
    (config / "supervision.yaml").write_text(
        text.replace("after_breach: 1wd", f"after_breach: {after_breach}"), "utf-8"
    )
    with pytest.raises(ConfigError, match=complaint):
        create_app(SlaSettings(config_dir=config))


def test_a_missing_supervision_file_stops_sla_at_start(tmp_path):
    config = shutil.copytree(CONFIG, tmp_path / "config")
    (config / "supervision.yaml").unlink()
    with pytest.raises(ConfigError, match=r"supervision\.yaml: file not found"):
        create_app(SlaSettings(config_dir=config))
