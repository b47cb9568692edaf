"""Router's store of the enterprise registry: companies, list memberships, the audit trail of changes."""

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs import outbox
from libs.contract import ENTERPRISES
from libs.events import EnterpriseChanged, ListMembership
from libs.ids import new_id
from libs.kinds import EventType
from libs.mongo import by_ids
from libs.outbox import Emit, outbox_items
from libs.paging import Key, bound, keyed, read_page
from services.router import registry
from services.router.transitions import SOURCE

log = logging.getLogger(__name__)


class RegistryConflict(RuntimeError):
    """Another edit or import changed one of the companies first; nothing of this one was written."""


async def companies(db: AsyncDatabase, usccs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The registry's documents of these companies, by credit code (the unknown ones left out)."""
    return await by_ids(db.enterprises, sorted(set(usccs)), {"outbox": 0})


async def members(db: AsyncDatabase, list_id: str) -> dict[str, dict[str, Any]]:
    """The companies on a list now (with no end to their membership), by credit code."""
    found = db.enterprises.find({"memberships.list": list_id}, {"outbox": 0})
    return {
        doc["_id"]: doc
        async for doc in found
        if any(m["list"] == list_id and m.get("until") is None for m in doc.get("memberships", []))
    }


async def record_changes(
    db: AsyncDatabase, broker: KafkaBroker, changes: list[registry.Change], actor: str, action: str, now: datetime
) -> None:
    """Write the changed companies, an audit entry for each, and their `enterprise.*.v1` events.

    Each document is written only if no one changed it since it was read (its version);
    otherwise RegistryConflict, and nothing is written.
    """
    if not changes:
        return
    writes, audits, after = [], [], []
    for change in changes:
        version = change.before["version"] if change.before else 0
        doc = {**change.after, "version": version + 1, "updated_at": now}
        doc.setdefault("registered_at", now)
        kind = EventType.enterprise_updated if change.before else EventType.enterprise_registered
        data = EnterpriseChanged(
            uscc=change.uscc,
            name=doc["name"],
            district=doc.get("district"),
            industry=doc.get("industry"),
            liaison=doc.get("liaison"),
            memberships=[ListMembership(**{k: m[k] for k in ("list", "since", "until")}) for m in doc["memberships"]],
            changed=sorted(change.fields),
            version=version + 1,
        )
        # Changes to the registry are made by people, not in any appeal's trace.
        items = outbox_items(SOURCE, [Emit(ENTERPRISES, kind, data, subject=change.uscc)], None, now)
        doc = outbox.stage({"$set": doc}, items, now)["$set"] | {
            "outbox": [*(change.before or {}).get("outbox", []), *items]
        }
        writes.append(ReplaceOne({"_id": change.uscc, "version": version}, doc, upsert=change.before is None))
        audits.append(
            {
                "_id": new_id(),
                "uscc": change.uscc,
                "at": now,
                "actor": actor,
                "action": action,
                "changes": {k: {"from": old, "to": new} for k, (old, new) in change.fields.items()},
            }
        )
        after.append(doc)
    with outbox.held(db.enterprises, [c.uscc for c in changes]):
        try:
            result = await db.enterprises.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            raise RegistryConflict(f"{len(exc.details.get('writeErrors', []))} companies changed meanwhile") from exc
        if result.matched_count + result.upserted_count != len(writes):
            raise RegistryConflict("a company changed meanwhile")
        await db.registry_audit.insert_many(audits, ordered=False)
        await outbox.flush_many(db.enterprises, broker, after)


async def audit_of(
    db: AsyncDatabase, uscc: str, *, limit: int, after: Key | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the changes made to a company, newest first (`audit_key`), after the key `after`, and whether
    more follow."""
    query = {"uscc": uscc, **bound("at", after, descending=True)}
    async with db.registry_audit.find(query).sort("at", -1).batch_size(limit + 2) as cursor:
        return await read_page(cursor, audit_key, after, limit, descending=True)


def audit_key(doc: dict[str, Any]) -> Key:
    """Where a change stands in a company's audit trail: when it was made, then its id (neither ever changes)."""
    return keyed(doc, "at")
