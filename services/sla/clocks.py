"""SLA clocks (docs/domain.md, "SLA clocks") as plain functions: start, pause, resume, stop, cancel, extend, fire.

A clock counts `budget` seconds of its target's kind of time (calendar, or office
time for working-day targets). While running, `consumed` holds what was used
before `segment_start`; thresholds are 50 % and 80 % (warnings) and 100 %
(breach). A breached clock still awaiting its answer climbs the urging ladder
(催办/督办, `config/supervision.yaml`): each later level a set time after the
breach, on the clock's calendar. Each function returns the fields to set and the
events owed.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.calendars import BusinessCalendar, parse_target
from libs.config import UrgingLevel
from libs.contract import SLA_EVENTS, department_topic
from libs.events import SlaClockChanged
from libs.kinds import ClockKind, ClockState, EventType
from libs.mongo import as_stored
from libs.outbox import Emit

log = logging.getLogger(__name__)

LEVELS = (50, 80, 100)
LIVE = (ClockState.running.value, ClockState.paused.value)


# The urging ladder's levels after the breach (level 1), as configured: the level and how long after the breach.
Ladder = Sequence[UrgingLevel]


@dataclass
class ClockChange:
    set: dict[str, Any] = field(default_factory=dict)
    emits: list[Emit] = field(default_factory=list)
    # Thresholds fired (50, 80, 100) and urging levels fired (2, 3, ...), each with the instant it was due.
    fired: list[tuple[int, datetime]] = field(default_factory=list)
    urged: list[tuple[int, datetime]] = field(default_factory=list)


def clock_id(appeal_id: str, kind: ClockKind | str, generation: int) -> str:
    """Stable id of one run of a clock; a restart after reroute is a new generation."""
    return f"{appeal_id}:{ClockKind(kind).value}:{generation}"


def level_at(doc: dict[str, Any], calendar: BusinessCalendar, level: int) -> datetime:
    """When a running clock reaches `level` % of its budget."""
    target = parse_target(doc["target"])
    return calendar.add(target, doc["segment_start"], doc["budget"] * level / 100 - doc["consumed"])


def urge_at(doc: dict[str, Any], calendar: BusinessCalendar, rung: UrgingLevel) -> datetime:
    """When a breached clock reaches the urging level `rung`: `after_breach` after its due time, on its calendar.

    Counted from the due time, not from when the breach was fired: every replica and every pass after a
    restart finds the same instant, and a breach fired late (sla was down) does not delay the ladder.
    """
    target = parse_target(rung.after_breach)
    return calendar.add(target, doc["due_at"], calendar.budget(target))


def next_instant(doc: dict[str, Any], calendar: BusinessCalendar, ladder: Ladder) -> datetime | None:
    """The exact instant of the clock's next threshold or urging level (the stored one is rounded), if known."""
    if doc.get("next_level"):
        return level_at(doc, calendar, doc["next_level"])
    rung = next((r for r in ladder if r.level == doc.get("next_urge")), None)
    return urge_at(doc, calendar, rung) if rung and doc.get("due_at") else None


def _schedule(doc: dict[str, Any], calendar: BusinessCalendar) -> dict[str, Any]:
    """Due time and next threshold of a running clock."""
    pending = [lv for lv in LEVELS if lv not in doc.get("levels_fired", [])]
    nxt = pending[0] if pending else None
    return {
        "due_at": level_at(doc, calendar, 100),
        "next_level": nxt,
        "next_fire_at": level_at(doc, calendar, nxt) if nxt else None,
    }


def remaining(doc: dict[str, Any], calendar: BusinessCalendar, now: datetime) -> float:
    """Target time left (negative when overdue), in the clock's kind of time."""
    used = doc["consumed"]
    if doc["state"] != ClockState.paused and _open(doc):
        used += calendar.elapsed(parse_target(doc["target"]), doc["segment_start"], now)
    return doc["budget"] - used


def _event(
    doc: dict[str, Any],
    state: ClockState,
    calendar: BusinessCalendar,
    now: datetime,
    level: int | None = None,
    urge_level: int | None = None,
) -> SlaClockChanged:
    return SlaClockChanged(
        appeal_id=doc["appeal_id"],
        clock_id=doc["_id"],
        clock=doc["clock"],
        department=doc["department"],
        state=state,
        level=level,
        target=doc["target"],
        calendar=doc["calendar"],
        sla_profile=doc["sla_profile"],
        started_at=doc["started_at"],
        due_at=doc.get("due_at"),
        remaining_seconds=round(remaining(doc, calendar, now), 3)
        if state in (ClockState.running, ClockState.paused)
        else None,
        fired_at=now if level or urge_level else None,
        category=doc.get("category"),
        district=doc.get("district"),
        original_due_at=doc.get("original_due_at"),
        urge_level=urge_level,
    )


def start(
    appeal_id: str,
    kind: ClockKind,
    generation: int,
    department: str,
    profile: str,
    target_text: str,
    calendar: BusinessCalendar,
    started_at: datetime,
    now: datetime,
    facts: dict[str, Any],
) -> tuple[dict[str, Any], list[Emit]]:
    """A new running clock and its `sla.started.v1` event."""
    target = parse_target(target_text)
    doc: dict[str, Any] = {
        "_id": clock_id(appeal_id, kind, generation),
        "appeal_id": appeal_id,
        "clock": kind.value,
        "generation": generation,
        "department": department,
        "sla_profile": profile,
        "target": target_text,
        "calendar": calendar.name,
        "state": ClockState.running.value,
        "started_at": started_at,
        "segment_start": started_at,
        "consumed": 0.0,
        "budget": calendar.budget(target),
        "levels_fired": [],
        "version": 1,
        **facts,
    }
    doc.update(_schedule(doc, calendar))
    return doc, [Emit(SLA_EVENTS, EventType.sla_started, _event(doc, ClockState.running, calendar, now))]


def pause(doc: dict[str, Any], calendar: BusinessCalendar, at: datetime) -> ClockChange:
    """Stop counting (the company owes information); no-op unless running."""
    if doc["state"] != ClockState.running:
        return ClockChange()
    target = parse_target(doc["target"])
    consumed = doc["consumed"] + calendar.elapsed(target, doc["segment_start"], at)
    after = {**doc, "state": ClockState.paused.value, "consumed": consumed, "due_at": None}
    change = ClockChange(
        set={
            "state": ClockState.paused.value,
            "consumed": consumed,
            "paused_at": at,
            "due_at": None,
            "next_level": None,
            "next_fire_at": None,
        }
    )
    change.emits.append(Emit(SLA_EVENTS, EventType.sla_paused, _event(after, ClockState.paused, calendar, at)))
    return change


def resume(doc: dict[str, Any], calendar: BusinessCalendar, at: datetime) -> ClockChange:
    """Count again from `at`; no-op unless paused."""
    if doc["state"] != ClockState.paused:
        return ClockChange()
    after = {**doc, "state": ClockState.running.value, "segment_start": at}
    after.update(_schedule(after, calendar))
    change = ClockChange(set={k: after[k] for k in ("state", "segment_start", "due_at", "next_level", "next_fire_at")})
    change.set["paused_at"] = None
    change.emits.append(Emit(SLA_EVENTS, EventType.sla_resumed, _event(after, ClockState.running, calendar, at)))
    return change


def retarget(doc: dict[str, Any], calendar: BusinessCalendar, target_text: str, at: datetime) -> ClockChange:
    """Give a live clock a new target (e.g. co-handlers join: 5 working days instead of 3)."""
    if doc["state"] not in LIVE or doc["target"] == target_text:
        return ClockChange()
    after = {**doc, "target": target_text, "budget": calendar.budget(parse_target(target_text))}
    fields = {"target": target_text, "budget": after["budget"]}
    if doc["state"] == ClockState.running:
        after.update(_schedule(after, calendar))
        fields.update({k: after[k] for k in ("due_at", "next_level", "next_fire_at")})
    return ClockChange(set=fields)


def extend(doc: dict[str, Any], calendar: BusinessCalendar, until: datetime, at: datetime) -> ClockChange:
    """Move a running clock's due time to `until` (an extension approved at `at`): its budget grows by the
    clock's kind of time between the old due time and `until`.

    Thresholds come again from the new budget; one already fired stays fired and is not sent again. The
    clock keeps its first due time as `original_due_at`, however often it is extended. A working-day clock
    can only fall due in office time: an `until` outside office hours gives the close before it.
    """
    due = level_at(doc, calendar, 100) if doc["state"] == ClockState.running else None
    # A clock paused, answered, cancelled or breached keeps its due time: a breach stands and is counted. One
    # whose due time came before the approval lapsed; its breach is owed whether or not it has fired yet.
    if due is None or due <= at or until <= due:
        log.info(
            "an extension leaves the clock as it is",
            extra={"clock_id": doc["_id"], "state": doc["state"], "due_at": due, "until": until, "approved_at": at},
        )
        return ClockChange()
    budget = doc["budget"] + calendar.elapsed(parse_target(doc["target"]), due, until)
    after = {**doc, "budget": budget, "original_due_at": doc.get("original_due_at") or due}
    after.update(_schedule(after, calendar))
    change = ClockChange(
        set={k: after[k] for k in ("budget", "original_due_at", "due_at", "next_level", "next_fire_at")}
    )
    change.emits.append(Emit(SLA_EVENTS, EventType.sla_extended, _event(after, ClockState.running, calendar, at)))
    return change


def _open(doc: dict[str, Any]) -> bool:
    """Still awaiting its answer: running, paused, or breached but not yet answered."""
    return doc["state"] in LIVE or (doc["state"] == ClockState.breached and not doc.get("ended_at"))


def _final_consumed(doc: dict[str, Any], calendar: BusinessCalendar, at: datetime) -> float:
    """Time used when the clock ends at `at` (paused clocks used nothing since the pause)."""
    if doc["state"] == ClockState.paused:
        return doc["consumed"]
    return doc["consumed"] + calendar.elapsed(parse_target(doc["target"]), doc["segment_start"], at)


def _end(doc: dict[str, Any], calendar: BusinessCalendar, at: datetime) -> dict[str, Any]:
    """An ended clock owes nothing more: no threshold, and no urging level if it had breached."""
    return {
        "ended_at": at,
        "consumed": _final_consumed(doc, calendar, at),
        "next_level": None,
        "next_urge": None,
        "next_fire_at": None,
    }


def _finish(
    doc: dict[str, Any], calendar: BusinessCalendar, at: datetime, state: ClockState, event_type: EventType
) -> ClockChange:
    """End a live clock in `state`; a breached clock keeps its state and only records the end."""
    if doc["state"] == ClockState.breached and _open(doc):
        return ClockChange(set=_end(doc, calendar, at))
    if doc["state"] not in LIVE:
        return ClockChange()
    ended = {**_end(doc, calendar, at), "state": state.value}
    change = ClockChange(set=ended)
    change.emits.append(Emit(SLA_EVENTS, event_type, _event({**doc, **ended}, state, calendar, at)))
    return change


def stop(doc: dict[str, Any], calendar: BusinessCalendar, at: datetime) -> ClockChange:
    """The awaited answer came: the clock is met (a breached clock stays breached, now answered)."""
    return _finish(doc, calendar, at, ClockState.met, EventType.sla_met)


def cancel(doc: dict[str, Any], calendar: BusinessCalendar, at: datetime) -> ClockChange:
    """The clock no longer applies (appeal withdrawn from the department, closed or rejected)."""
    return _finish(doc, calendar, at, ClockState.cancelled, EventType.sla_cancelled)


def reassign(doc: dict[str, Any], department: str) -> ClockChange:
    """The resolution clock follows the lead department, overdue or not."""
    if not _open(doc) or doc["department"] == department:
        return ClockChange()
    return ClockChange(set={"department": department})


def fire(doc: dict[str, Any], calendar: BusinessCalendar, now: datetime, ladder: Ladder = ()) -> ClockChange:
    """Every threshold reached by `now` that has not fired (warnings at 50/80 %, breach at 100 %), then, on a
    breached clock still awaiting its answer, every level of the urging `ladder` reached by `now`."""
    change = _thresholds(doc, calendar, now)
    after = {**doc, **change.set}
    breached_now = any(level == 100 for level, _ in change.fired)
    # Only a clock that breached under the ladder climbs it (it has `urges_fired`): one breached before sla knew
    # the ladder is not urged at once for a breach long past.
    if _open(after) and after["state"] == ClockState.breached and (breached_now or "urges_fired" in after):
        _urge(after, calendar, now, ladder, change, breached_now)
    return change


def _thresholds(doc: dict[str, Any], calendar: BusinessCalendar, now: datetime) -> ClockChange:
    if doc["state"] != ClockState.running:
        return ClockChange()
    fired = list(doc.get("levels_fired", []))
    change = ClockChange()
    for level in LEVELS:
        if level in fired:
            continue
        at = level_at(doc, calendar, level)
        if at > now:
            break
        fired.append(level)
        state = ClockState.breached if level == 100 else ClockState.running
        after = {**doc, "levels_fired": fired, "state": state.value}
        event = _event(after, state, calendar, now, level=level)
        kind = EventType.sla_breached if level == 100 else EventType.sla_warning
        change.emits.append(Emit(SLA_EVENTS, kind, event))
        change.emits.append(Emit(department_topic(doc["department"]), kind, event))
        change.fired.append((level, at))
    if not change.fired:
        return change
    after = {**doc, "levels_fired": fired}
    change.set["levels_fired"] = fired
    if 100 in fired:
        change.set.update(
            {"state": ClockState.breached.value, "breached_at": now, "next_level": None, "next_fire_at": None}
        )
    else:
        change.set.update({k: v for k, v in _schedule(after, calendar).items() if k != "due_at"})
    return change


def _urge(
    doc: dict[str, Any],
    calendar: BusinessCalendar,
    now: datetime,
    ladder: Ladder,
    change: ClockChange,
    breached_now: bool,
) -> None:
    """Fire the levels of the ladder a breached, unanswered clock has reached by `now`, each once, in the order
    they fall due; keep the next one as the clock's `next_fire_at` (added to `change`)."""
    urged = list(doc.get("urges_fired", []))
    pending = sorted((urge_at(doc, calendar, rung), rung.level) for rung in ladder if rung.level not in urged)
    while pending and pending[0][0] <= now:
        at, level = pending.pop(0)
        urged.append(level)
        event = _event({**doc, "urges_fired": urged}, ClockState.breached, calendar, now, urge_level=level)
        change.emits.append(Emit(SLA_EVENTS, EventType.sla_urged, event))
        change.emits.append(Emit(department_topic(doc["department"]), EventType.sla_urged, event))
        change.urged.append((level, at))
    schedule = {"next_urge": pending[0][1] if pending else None, "next_fire_at": pending[0][0] if pending else None}
    # Set what changed; also a schedule the configuration has moved since it was stored (a level removed or
    # later), or the scheduler would claim the clock again and again for nothing.
    stale = as_stored(schedule) != as_stored({k: doc.get(k) for k in schedule})
    if change.urged or breached_now or stale:
        change.set.update({"urges_fired": urged, **schedule})
