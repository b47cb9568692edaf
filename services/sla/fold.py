"""What one lifecycle event does to an appeal's clocks, without a database or a broker.

`fold(book, event, doc, now)` carries out the event's steps (`rules.steps`) on the
appeal's stored document with the functions of `clocks.py`, and returns the document
after and the events owed. `service.py` reads the documents, folds a batch of events
into them and writes each appeal once.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.calendars import BusinessCalendar, Calendars
from libs.config import City, SlaConfig, SupervisionConfig
from libs.envelopes import CloudEvent
from libs.events import AppealChanged
from libs.kinds import ClockKind, ClockState
from libs.mongo import as_stored
from libs.outbox import Emit
from services.sla import clocks, rules

log = logging.getLogger(__name__)

# A breached clock still awaits its answer: the lifecycle can stop or cancel it.
ALIVE = (*clocks.LIVE, ClockState.breached.value)


@dataclass(frozen=True)
class SlaBook:
    """Profiles, calendars and who uses which calendar; the urging ladder a breached clock climbs."""

    city: City
    sla: SlaConfig
    calendars: Calendars
    supervision: SupervisionConfig
    # Also write each report to sla.events.v1, while some reader has not moved to v2 (docs/production.md).
    publish_v1: bool = False
    # A redo's resolution clock (重办, `config/assessment.yaml`); the profile's resolution target without it.
    redo_target: str | None = None

    @property
    def ladder(self) -> clocks.Ladder:
        """The urging levels after the breach (2: 催办, 3: 督办), `config/supervision.yaml`."""
        return self.supervision.urging.levels

    def calendar_for(self, department: str) -> BusinessCalendar:
        """The calendar a department works by (the default one for an unknown department)."""
        return self.calendars.of_department(self.city, department)

    def target(self, profile: str, kind: ClockKind, cohandlers: bool, redo: bool = False) -> str:
        """A clock's target: the profile's, the co-handled response's, a co-handler's contribution's (the
        same for every profile, `config/supervision.yaml`), or a redo's resolution (`config/assessment.yaml`)."""
        if redo and kind == ClockKind.resolution and self.redo_target:
            return self.redo_target
        if kind == ClockKind.contribution:
            return self.supervision.cohandling.contribution
        p = self.sla.profile(profile)
        if kind == ClockKind.response and cohandlers and p.response_with_cohandlers:
            return p.response_with_cohandlers
        return getattr(p, kind.value)


def new_appeal(appeal_id: str) -> dict[str, Any]:
    """The document of an appeal sla has not seen yet, before its first event."""
    return {"_id": appeal_id, "sequence": 0, "clocks": []}


def fold(
    book: SlaBook, event: CloudEvent[AppealChanged], doc: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], list[Emit]]:
    """Carry out one event's steps (`rules.steps`) on the appeal's clocks: the document after, and the events owed."""
    data = event.data
    if data.sequence <= doc["sequence"]:
        return doc, []
    generation: dict[str, int] = dict(doc.get("generation", {}))
    kept = list(doc.get("clocks", []))
    emits: list[Emit] = []
    at = event.time
    for step in rules.steps(event.type, data):
        if isinstance(step, rules.Start):
            if step.only_if_none_alive and _alive(kept, step.kind, None):
                continue
            if step.on_joining and _joined(kept, step.kind, step.department):
                continue
            generation[step.kind.value] = generation.get(step.kind.value, 0) + 1
            emits += _begin(book, event, step, generation[step.kind.value], kept, now)
            continue
        if isinstance(step, rules.Extend):
            emits += _extend(book, event, step, kept)
            continue
        change = _VERBS[step.verb]
        target = book.target(data.sla_profile or "", ClockKind.response, True) if step.verb == "retarget" else None
        for clock in _alive(kept, step.kinds, step.department):
            done = change(clock, book.calendars.named(clock["calendar"]), at, step.to or target)
            kept[kept.index(clock)] = as_stored({**clock, **done.set})
            emits += done.emits
    return {**doc, "sequence": data.sequence, "generation": generation, "clocks": kept}, emits


# What each verb of the table does to one clock; the last argument is the reassign's department or the new target.
_VERBS: dict[str, Callable[[dict[str, Any], BusinessCalendar, datetime, Any], clocks.ClockChange]] = {
    "stop": lambda doc, cal, at, _: clocks.stop(doc, cal, at),
    "cancel": lambda doc, cal, at, _: clocks.cancel(doc, cal, at),
    "pause": lambda doc, cal, at, _: clocks.pause(doc, cal, at),
    "resume": lambda doc, cal, at, _: clocks.resume(doc, cal, at),
    "reassign": lambda doc, cal, at, department: clocks.reassign(doc, department),
    "retarget": lambda doc, cal, at, target: clocks.retarget(doc, cal, target, at),
}


def _extend(
    book: SlaBook, event: CloudEvent[AppealChanged], step: rules.Extend, kept: list[dict[str, Any]]
) -> list[Emit]:
    """Extend the current run of a clock (in `kept`); returns the events owed.

    The current run, not every live one: an earlier run answered late stays breached, and an extension
    is granted to one run (a reopened appeal's new clock has its own).
    """
    runs = [c for c in kept if c["clock"] == step.kind.value]
    clock = max(runs, key=lambda c: c["generation"], default=None)
    if clock is None or step.until is None or step.until.tzinfo is None:
        # The event carried no zoned due time, or sla never saw the appeal routed: nothing to move, said aloud.
        log.warning(
            "an approved extension moves no clock",
            extra={"appeal_id": event.data.appeal_id, "clock": step.kind.value, "until": step.until},
        )
        return []
    done = clocks.extend(clock, book.calendars.named(clock["calendar"]), step.until, event.time)
    kept[kept.index(clock)] = as_stored({**clock, **done.set})
    return done.emits


def _alive(
    kept: list[dict[str, Any]], kinds: ClockKind | tuple[ClockKind, ...] | None, department: str | None
) -> list[dict[str, Any]]:
    """The appeal's clocks still counting or awaiting an answer, of `kinds` and `department` when given."""
    wanted = (kinds,) if isinstance(kinds, ClockKind) else kinds
    return [
        c
        for c in kept
        if c["state"] in ALIVE
        and (wanted is None or c["clock"] in wanted)
        and (department is None or c["department"] == department)
    ]


def _joined(kept: list[dict[str, Any]], kind: ClockKind, department: str) -> bool:
    """`department` has a run of `kind` that was not cancelled: alive, met or breached (answered or not)."""
    return any(
        c["clock"] == kind.value and c["department"] == department and c["state"] != ClockState.cancelled.value
        for c in kept
    )


def _begin(
    book: SlaBook,
    event: CloudEvent[AppealChanged],
    step: rules.Start,
    generation: int,
    kept: list[dict[str, Any]],
    now: datetime,
) -> list[Emit]:
    """Start one run of a clock (appended to `kept`); returns the events owed."""
    data = event.data
    if any(c["_id"] == clocks.clock_id(data.appeal_id, step.kind, generation) for c in kept):
        return []  # an earlier version wrote its clocks apart from the sequence: this run was started already
    calendar = book.calendar_for(step.department)
    target = book.target(data.sla_profile or "", step.kind, bool(data.cohandlers), step.redo)
    facts = {"category": data.category.value, "district": data.district}
    started_at = {"submission": data.submitted_at, "assignment": data.since or event.time}.get(step.origin, event.time)
    doc, emits = clocks.start(
        data.appeal_id,
        step.kind,
        generation,
        step.department,
        data.sla_profile or "",
        target,
        calendar,
        started_at,
        now,
        facts,
    )
    # Warnings and breaches fire on a timer, outside any event's handler: the trace travels with the clock.
    kept.append(as_stored({**doc, "traceparent": event.traceparent}))
    return emits
