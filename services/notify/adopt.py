"""One-off move of notify's earlier layout (one record per delivery, `notifications`) into notices.

Delete this module, with `Memory.records_left`, the sweep's two calls and the
one at start (scheduled.py, app.py), once every deployment's `notifications`
collection is empty: the sweep runs every 5 s and at every start, and finds
nothing to do once done (docs/production.md, "Upgrading to one document per
appeal or event").
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs import outbox
from libs.deadlines import aware
from libs.envelopes import CloudEvent
from services.notify.book import Memory
from services.notify.notices import new_notice


async def adopt_records(db: AsyncDatabase, memory: Memory, now: datetime, limit: int = 1000) -> int:
    """Move records of earlier versions (one document per delivery) into notices, all of an event's at once.

    An event is left for a later pass while one of its records is claimed by a
    dispatcher of an earlier version or holds an outbox. A notice already there (a
    pass that died before deleting) keeps what it has, and the records go.
    Returns how many records were moved.
    """
    appeal_ids = {d["appeal_id"] async for d in db.notifications.find({}, {"appeal_id": 1}).limit(limit)}
    if not appeal_ids:
        memory.records_left = False
        return 0
    memory.records_left = True
    events: dict[str, list[dict[str, Any]]] = {}
    async for record in db.notifications.find({"appeal_id": {"$in": list(appeal_ids)}}):
        events.setdefault(record["event_id"], []).append(record)
    notices, adopted = [], []
    for event_id, records in events.items():
        if any(r.get("outbox_since") or (r.get("claim") and aware(r["claim_until"]) > now) for r in records):
            continue
        deliveries = [{"id": r["_id"], **{k: r[k] for k in _DELIVERY_FIELDS if k in r}} for r in records]
        earliest = min(records, key=lambda r: r["created_at"])
        notices.append(
            new_notice(
                event_id,
                earliest["appeal_id"],
                earliest["event_type"],
                earliest["payload"]["event"],
                earliest["created_at"],
                earliest.get("traceparent"),
                deliveries,
            )
        )
        adopted += [r["_id"] for r in records]
    if notices:
        try:
            await db.notices.insert_many(notices, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
        await db.notifications.delete_many({"_id": {"$in": adopted}})
    return len(adopted)


async def recorded_before(db: AsyncDatabase, events: Sequence[CloudEvent[Any]]) -> set[str]:
    """The events an earlier version already recorded deliveries of, not yet adopted into notices."""
    found = db.notifications.find(
        {"appeal_id": {"$in": list({e.subject for e in events})}, "event_id": {"$in": [e.id for e in events]}},
        {"event_id": 1},
    )
    return {d["event_id"] async for d in found}


async def flush_stale_outboxes(db: AsyncDatabase, broker: KafkaBroker, now: datetime) -> int:
    """Publish what records of earlier versions still hold in their outboxes; they are adopted after."""
    return await outbox.flush_stale(db.notifications, broker, now)


# What a delivery keeps of a record of an earlier version.
_DELIVERY_FIELDS = (
    "recipient",
    "audience",
    "channel",
    "to",
    "secret",
    "urgent",
    "template",
    "language",
    "subject",
    "body",
    "status",
    "attempts",
    "due_at",
    "delivered_at",
    "failed_at",
    "last_error",
)
