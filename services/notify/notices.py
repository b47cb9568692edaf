"""The notice: one document per event (collection `notices`, `_id` the event's id), holding its deliveries.

Each delivery is one (recipient, channel) of the event, and its id, the
notification id, is `<event id>:<recipient>:<channel>`; a redelivered event
inserts nothing new. One document per event rather than one per delivery: the
database's cost follows the documents written, and an event's deliveries are
planned, and mostly sent, together. The planner (planning.py) writes notices and
the dispatcher (dispatch.py) sends them; this module is what both read of one.
"""

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from libs import claims
from libs.ids import new_id
from libs.paging import Key, bound, keyed, read_page

# A delivery still to be sent: held for office hours, due now, or to be tried again.
UNSETTLED = ("held", "pending", "retrying")


async def ensure_indexes(db: AsyncDatabase) -> None:
    """The dispatcher reads only notices due for an attempt; the log is read per appeal."""
    await db.notices.create_index([("due_at", ASCENDING)], sparse=True)
    await db.notices.create_index([("appeal_id", ASCENDING), ("created_at", ASCENDING)])
    await db.notices.create_index([("claim_until", ASCENDING)], sparse=True)
    # The records of earlier versions (`notifications`) are read by appeal and by outbox: every version that
    # wrote them made those indexes.


def new_notice(
    event_id: str,
    appeal_id: str,
    event_type: str,
    event: dict[str, Any],
    created_at: datetime,
    traceparent: str | None,
    deliveries: list[dict[str, Any]],
) -> dict[str, Any]:
    """The one document an event's deliveries live in; `event` is the event as JSON, as receivers get it."""
    return {
        "_id": event_id,
        "appeal_id": appeal_id,
        "event_type": event_type,
        "event": event,
        "created_at": created_at,
        "traceparent": traceparent,
        "deliveries": deliveries,
        **schedule(deliveries),
        "version": 1,
    }


def schedule(deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """A notice's status and due time, from its deliveries still to be sent.

    `sending` while one of them is due or to be tried again, `held` while all wait
    for office hours, `done` once none is left; due at the soonest one's time.
    """
    unsettled = [d for d in deliveries if d["status"] in UNSETTLED]
    if not unsettled:
        return {"status": "done"}
    status = "held" if all(d["status"] == "held" for d in unsettled) else "sending"
    return {"status": status, "due_at": min(d["due_at"] for d in unsettled)}


@dataclass
class Ready:
    """Notices this replica's planner stored already claimed, for its next send pass to take as they are.

    Claiming them as they are inserted spares the claim's own statements (a find, an
    update of every notice, a find again) for the usual notification, due at once. A
    replica that dies holding them leaves the claims to expire, like any other. One
    token for all of them, so a send pass takes what several batches planned.
    """

    hold: timedelta
    token: str = field(default_factory=new_id)
    docs: list[dict[str, Any]] = field(default_factory=list)

    def claim(self, notices: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Mark the notices with a delivery due now as claimed, before they are inserted; returns them."""
        due = [n for n in notices if n["status"] == "sending"]
        for notice in due:
            notice.update(claim=self.token, claim_until=now + self.hold)
        return due

    def take(self, now: datetime, limit: int) -> claims.Claimed | None:
        """Up to `limit` notices still well inside their claim; those near its end are left to expire."""
        self.docs = [d for d in self.docs if d["claim_until"] - now > self.hold / 2]
        taken, self.docs = self.docs[:limit], self.docs[limit:]
        return claims.Claimed(self.token, taken) if taken else None


async def delivery_log(
    db: AsyncDatabase,
    appeal_id: str,
    *,
    limit: int,
    after: Key | None = None,
    shown: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the deliveries of an appeal (those `shown` lets through), oldest first (`delivery_key`), after the key
    `after`, and whether more follow; each with its event's type and time, without secrets."""
    projection = {"event": 0, "claim": 0, "deliveries.secret": 0}
    query = {"appeal_id": appeal_id, **bound("created_at", after)}

    async def deliveries() -> AsyncGenerator[dict[str, Any]]:
        async with db.notices.find(query, projection).sort("created_at", ASCENDING).batch_size(limit + 2) as found:
            async for n in found:
                for d in n["deliveries"]:
                    entry = {**d, "_id": d["id"], "event_type": n["event_type"], "created_at": n["created_at"]}
                    if shown is None or shown(entry):
                        yield entry

    async with aclosing(deliveries()) as stream:
        return await read_page(stream, delivery_key, after, limit)


def delivery_key(entry: dict[str, Any]) -> Key:
    """Where a delivery stands in an appeal's log: when its event's notice was made, then its id (neither changes)."""
    return keyed(entry, "created_at")
