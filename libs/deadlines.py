"""An appeal's SLA clocks as sla last reported them, kept by the services that show deadlines (intake, router).

Each keeps the clocks in its own appeal documents under `clocks.<clock_id>`; an older
event never overwrites a newer one, so redelivery and replays change nothing.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, overload

from pydantic import BaseModel, Field
from pymongo import UpdateOne

from libs.envelopes import CloudEvent
from libs.events import SlaClockChanged
from libs.mongo import not_after


class Deadline(BaseModel):
    """One SLA clock of the appeal, as sla last reported it."""

    clock: str = Field(description="scope, response or resolution.", examples=["resolution"])
    department: str = Field(description="Department the clock holds to account.", examples=["nanshan-finance"])
    state: str = Field(description="running, paused, met, breached or cancelled.", examples=["running"])
    target: str = Field(description="Target as configured: '72h', '3wd' (working days).", examples=["72h"])
    started_at: datetime
    due_at: datetime | None = Field(default=None, description="When the target runs out; none while paused.")
    remaining_seconds: float | None = Field(
        default=None,
        description="Running: seconds until due_at at the time of this answer (negative once "
        "overdue). Paused: target time left when it resumes. Stopped clocks: none.",
    )
    overdue: bool = Field(default=False, description="The target has run out (breached, or running past due).")
    original_due_at: datetime | None = Field(
        default=None, description="When an approved extension (延期) moved the due time: the due time before it."
    )
    clock_id: str | None = Field(default=None, description="This run of the clock, as sla names it.")
    urge_level: int | None = Field(
        default=None, description="The urging ladder's level it reached: 2 催办, 3 督办 (1 is the breach itself)."
    )


def clock_entry(event: CloudEvent[SlaClockChanged]) -> dict[str, Any]:
    """What an appeal's document keeps of one clock, as this event reports it."""
    data = event.data
    return {
        "clock": data.clock.value,
        "department": data.department,
        "state": data.state.value,
        "target": data.target,
        "started_at": data.started_at,
        "due_at": data.due_at,
        "remaining_seconds": data.remaining_seconds,
        "level": data.level,
        "urge_level": data.urge_level,
        "original_due_at": data.original_due_at,
        "at": event.time,
    }


def clock_writes(events: Sequence[CloudEvent[SlaClockChanged]], *, each: bool = False) -> list[UpdateOne]:
    """Writes that keep each clock's last reported state on its appeal's document (which must exist).

    One write per appeal, setting the latest report of each of its clocks in the batch and
    guarded by all of them: it matches nothing if any clock holds a newer report. `each`
    gives one write per report instead, each guarded alone, for what the first way missed.
    """
    if each:
        return [_clock_write(event.data.appeal_id, [event]) for event in events]
    latest: dict[str, dict[str, CloudEvent[SlaClockChanged]]] = {}
    for event in events:
        clocks = latest.setdefault(event.data.appeal_id, {})
        known = clocks.get(event.data.clock_id)
        if known is None or known.time <= event.time:
            clocks[event.data.clock_id] = event
    return [_clock_write(appeal_id, list(clocks.values())) for appeal_id, clocks in latest.items()]


def _clock_write(appeal_id: str, events: list[CloudEvent[SlaClockChanged]]) -> UpdateOne:
    # Each clock's report not later than this event's, or a clock never seen.
    keys = {f"clocks.{event.data.clock_id}": event for event in events}
    return UpdateOne(
        {"_id": appeal_id, **{f"{key}.at": not_after(event.time) for key, event in keys.items()}},
        {"$set": {key: clock_entry(event) for key, event in keys.items()}},
    )


def merged_clocks(
    clocks: dict[str, dict[str, Any]], events: Sequence[CloudEvent[SlaClockChanged]]
) -> dict[str, dict[str, Any]]:
    """The clocks after `events`: of each clock, the latest report wins; an older one changes nothing."""
    out = dict(clocks)
    for event in events:
        known = out.get(event.data.clock_id)
        if known is None or aware(known["at"]) <= event.time:
            out[event.data.clock_id] = clock_entry(event)
    return out


def deadlines(record: dict[str, Any], now: datetime) -> list[Deadline]:
    """The appeal's clocks, oldest first, cancelled ones left out."""
    out = []
    for clock_id, clock in sorted(
        record.get("clocks", {}).items(), key=lambda kv: (kv[1]["started_at"], kv[1]["clock"])
    ):
        if clock["state"] == "cancelled":
            continue
        due = aware(clock.get("due_at"))
        remaining = None
        if clock["state"] == "running" and due is not None:
            remaining = round((due - now).total_seconds(), 1)
        elif clock["state"] == "paused":
            remaining = clock.get("remaining_seconds")
        overdue = clock["state"] == "breached" or (
            remaining is not None and clock["state"] == "running" and remaining < 0
        )
        out.append(
            Deadline(
                clock=clock["clock"],
                department=clock["department"],
                state=clock["state"],
                target=clock["target"],
                started_at=aware(clock["started_at"]),
                due_at=due,
                remaining_seconds=remaining,
                overdue=overdue,
                original_due_at=aware(clock.get("original_due_at")),
                clock_id=clock_id,
                urge_level=urge_level(clock) or None,
            )
        )
    return out


def urge_level(clock: dict[str, Any]) -> int:
    """The urging ladder's level a kept clock reached: sla's `urge_level`, 1 for a breach (the ladder's first
    level), 0 before."""
    return clock.get("urge_level") or (1 if clock["state"] == "breached" else 0)


def next_due(record: dict[str, Any]) -> datetime | None:
    """When the appeal's first running clock runs out; none when no clock runs."""
    dues = [aware(c["due_at"]) for c in record.get("clocks", {}).values() if c["state"] == "running" and c["due_at"]]
    return min(dues, default=None)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """MongoDB hands datetimes back naive; they are UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
