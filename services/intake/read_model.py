"""The status read model: each appeal as companies and channels read it, its status, timeline and deadlines folded
in from the lifecycle and the SLA clocks."""

from collections.abc import Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from libs.deadlines import clock_writes
from libs.envelopes import CloudEvent
from libs.events import AppealChanged, SlaClockChanged
from libs.kinds import AppealStatus, EventType

# The mark of a submission Kafka acknowledged: service.py sets it at the 202, a lifecycle event proves it too.
ACCEPTED = "accepted"


async def find_appeal(db: AsyncDatabase, appeal_id: str) -> dict[str, Any] | None:
    """The read-model record of an appeal.

    Pending and unsent records count too: their id is only ever given out with a 202,
    which comes after Kafka acknowledged the event, and the `accepted` mark trails it
    until the appeal is routed. An appeal that got a 503 was never named to anyone.
    """
    return await db.appeals.find_one({"_id": appeal_id}, {"event": 0, "contact_event": 0})


def _lifecycle_writes(event: CloudEvent[AppealChanged]) -> tuple[UpdateOne, list[UpdateOne]]:
    """One write folding an in-order event in, and the guarded pair that takes what is new of any event."""
    data = event.data
    # The office's return visit is on the company's timeline, not who called nor what the visitor noted.
    internal = event.type == EventType.appeal_visited
    entry = {
        "event_id": event.id,
        "type": event.type,
        "status": data.status.value,
        "time": event.time,
        "department": data.department,
        "clerk": None if internal else data.clerk,
        "note": None if internal else data.note,
        "guidance": data.guidance,
        "resolution": data.resolution,
        "reason": data.reason,
    }
    timeline: dict[str, dict[str, Any]] = {
        "$push": {"timeline": {"$each": [entry], "$sort": {"time": 1}}},
        # A lifecycle event proves the submission reached Kafka, even if intake answered 503.
        "$set": {"state": ACCEPTED},
    }
    current: dict[str, Any] = {
        "status": data.status.value,
        "sequence": data.sequence,
        "department": data.department,
        "cohandlers": data.cohandlers,
        "updated_at": event.time,
    }
    if data.policies:
        current["policies"] = [p.model_dump() for p in data.policies]
    for field in ("resolution", "guidance", "reason"):
        if getattr(data, field):
            current[field] = getattr(data, field)
    if data.status in (AppealStatus.closed, AppealStatus.rejected):
        current["closed_at"] = event.time  # the contact's retention runs from here (privacy.erasure_due)
    if data.policy_refs:
        current["policy_refs"] = data.policy_refs
    new: dict[str, Any] = {"timeline.event_id": {"$ne": event.id}}
    later: dict[str, Any] = {"sequence": {"$lt": data.sequence}}
    combined = UpdateOne({"_id": data.appeal_id, **later, **new}, {**timeline, "$set": {**timeline["$set"], **current}})
    return combined, [
        UpdateOne({"_id": data.appeal_id, **new}, timeline),
        UpdateOne({"_id": data.appeal_id, **later}, {"$set": current}),
    ]


async def apply_lifecycle(db: AsyncDatabase, events: Sequence[CloudEvent[AppealChanged]]) -> None:
    """Fold lifecycle events into the status read model, in order; replays change nothing."""
    writes = [_lifecycle_writes(event) for event in events]
    # In order (the usual case) each event is new on both counts and one write folds it in.
    folded = await db.appeals.bulk_write([combined for combined, _ in writes], ordered=True)
    if folded.matched_count < len(writes):
        # A replay or an event out of order: the guarded pairs take what is still new, and are no-ops for the rest.
        await db.appeals.bulk_write([op for _, pair in writes for op in pair], ordered=True)


async def apply_clocks(db: AsyncDatabase, events: Sequence[CloudEvent[SlaClockChanged]]) -> None:
    """Keep the last reported state of each SLA clock; an older event never overwrites a newer one.

    Usually one write per appeal of the batch: sla reports an appeal's clocks together
    (the three started on routing, two met on resolution).
    """
    writes = clock_writes(events)
    merged = await db.appeals.bulk_write(writes, ordered=False)
    if merged.matched_count < len(writes):
        # Some clock holds a newer report (a replay, or another replica during a rebalance): each report on
        # its own then, so the others still land and the stale ones match nothing.
        await db.appeals.bulk_write(clock_writes(events, each=True), ordered=True)
