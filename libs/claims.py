"""Claims: how one of several replicas takes the records that are due, so that only it acts on them.

A claim is one conditional update: the due records still unclaimed get this pass's
`claim` token and a `claim_until`. Only the holder of the token acts on a record and
clears the claim when it writes the outcome; a replica that dies holding claims
leaves them to expire (`release_expired`), and another one takes the records then.
sla fires clocks this way and notify sends notifications.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.ids import new_id
from libs.mongo import Collection, due_by

# Cleared with the outcome, in the same write.
UNCLAIM = {"claim": "", "claim_until": ""}


@dataclass
class Claimed:
    """Records one pass holds: only the holder of `token` acts on them."""

    token: str
    docs: list[dict[str, Any]]


async def claim_due(
    collection: Collection,
    field: str,
    until: datetime,
    *,
    limit: int,
    hold_until: datetime,
    skip: int = 0,
    projection: dict[str, Any] | None = None,
) -> Claimed:
    """Claim up to `limit` records whose `field` is due by `until`, soonest first in the index.

    `skip` is how many due records other passes of this replica may still hold: they
    come first in the index and are passed over. `field` needs an index.
    """
    token = new_id()
    due = collection.find({field: due_by(until)}, {"_id": 1, "claim": 1}).limit(limit + skip)
    ids = [d["_id"] async for d in due if d.get("claim") is None][:limit]
    if not ids:
        return Claimed(token, [])
    await collection.update_many(
        {"_id": {"$in": ids}, "claim": None}, {"$set": {"claim": token, "claim_until": hold_until}}
    )
    docs = [d async for d in collection.find({"_id": {"$in": ids}, "claim": token}, projection)]
    return Claimed(token, docs)


async def release_expired(collection: Collection, now: datetime) -> int:
    """Free what a replica that died had claimed, so that another one takes it."""
    result = await collection.update_many({"claim_until": due_by(now)}, {"$unset": UNCLAIM})
    return result.modified_count
