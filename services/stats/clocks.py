"""What an SLA clock counts: its fold and its counts, as plain functions.

A clock is kept in its appeal's document (`clocks`), under its own id
(`clock_key`): an appeal has any number of them, each run of each kind apart,
several contribution clocks (one per co-handler) too. A clock is counted by its
outcome in the hour it started, against its department.
"""

from collections import defaultdict
from typing import Any

from libs.envelopes import CloudEvent
from libs.kinds import ClockState, EventType
from services.stats.buckets import TOTALS, Counts, counter, encode, hour_of, ms
from services.stats.supervision import CONTRIBUTION, CONTRIBUTION_FIGURES, urge


def is_clock(event: CloudEvent[Any]) -> bool:
    """An SLA event (`sla.*`): it is folded into its clock alone, not into the rest of the appeal's document."""
    return event.type.startswith("sla.")


def clock_key(appeal_id: str, clock_id: str) -> str:
    """Where an appeal's document keeps a clock: `scope:1` for clock `<appeal>:scope:1`."""
    return encode(clock_id.removeprefix(f"{appeal_id}:"))


def set_live_due(doc: dict[str, Any]) -> None:
    """Keep `live_due`, the earliest due time of the appeal's clocks running unbreached (the index behind
    "running past due"), absent when none runs so."""
    dues = [c["live_due"] for c in doc.get("clocks", {}).values() if "live_due" in c]
    if dues:
        doc["live_due"] = min(dues)
    else:
        doc.pop("live_due", None)


_CLOCK_STATES = {
    EventType.sla_started: "running",
    EventType.sla_resumed: "running",
    EventType.sla_paused: "paused",
    EventType.sla_met: "met",
    EventType.sla_cancelled: "cancelled",
}


# The events that set a clock's due time; sla recomputes it on each of them (none while paused).
_DUE_SETTERS = {EventType.sla_started, EventType.sla_resumed, EventType.sla_paused, EventType.sla_extended}


def fold_clock(doc: dict[str, Any], event: CloudEvent[Any]) -> None:
    data = event.data
    # A start read after a later event of its run says less than that event did: a replay may read a run's start on
    # sla.events.v1 after its extension on sla.events.v2, and must not put back the due time the extension moved.
    late_start = event.type == EventType.sla_started and "state" in doc
    doc.update(clock=data.clock.value, department=data.department, started_at=ms(data.started_at))
    if event.type == EventType.sla_breached:
        doc["breached"] = True
    state = _CLOCK_STATES.get(EventType(event.type))
    if state and not late_start:
        doc["state"] = state
    if event.type == EventType.sla_extended:
        # An extension neither starts nor stops a clock; read before its run's start, it stands in for it.
        doc.setdefault("state", "paused" if data.state == ClockState.paused else "running")
    if event.type in _DUE_SETTERS and not late_start:
        doc["due_at"] = data.due_at and ms(data.due_at)
    level = {EventType.sla_breached: 1, EventType.sla_urged: data.urge_level}.get(EventType(event.type))
    if level:
        urge(doc, level, data.department, ms(data.fired_at or event.time))
    # Present only while the clock runs unbreached: the index behind "running past due".
    if doc.get("state") == "running" and not doc.get("breached") and doc.get("due_at"):
        doc["live_due"] = doc["due_at"]
    else:
        doc.pop("live_due", None)


def clock_outcome(doc: dict[str, Any]) -> str:
    """met, breached, live (running or paused, not yet breached) or cancelled."""
    if doc.get("breached"):
        return "breached"
    return {"met": "met", "cancelled": "cancelled"}.get(doc.get("state", "running"), "live")


def clock_counts(doc: dict[str, Any]) -> Counts:
    """What one clock counts: its outcome, in the hour it started, against its department; and the urging levels it
    reached, each in the hour it fired, against the department it held to account then. A contribution clock met or
    breached also adds to its co-handler's all-time contributions on time or late: neither outcome changes after
    (a breach stands when the part comes late or the clock is cancelled; sla cancels no met clock), so those totals
    never fall."""
    if "started_at" not in doc:
        return {}
    out: Counts = defaultdict(lambda: defaultdict(int))
    outcome = clock_outcome(doc)
    out["h:" + hour_of(doc["started_at"])][counter("clock", doc["department"], doc["clock"], outcome)] += 1
    if doc["clock"] == CONTRIBUTION and outcome in CONTRIBUTION_FIGURES:
        out[TOTALS][counter(CONTRIBUTION_FIGURES[outcome], doc["department"])] += 1
    # The urging ladder's levels are supervision acts: each in the hour it fired, and in the all-time totals.
    for level, urged in doc.get("urged", {}).items():
        name = counter(f"urgings_level_{level}", urged["d"])
        out["h:" + hour_of(urged["at"])][name] += 1
        out[TOTALS][name] += 1
    return {b: dict(f) for b, f in out.items()}
