"""What notify keeps of other services' facts: appeals as submitted, their contacts, companies' liaisons.

The planner reads these copies instead of asking intake or the registry at send
time. Contacts are personal data with an end: `erase_contacts` drops every copy
notify holds, its notices' included (docs/privacy.md).
"""

import contextlib
from collections.abc import Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs.envelopes import CloudEvent
from libs.events import AppealContact, AppealSubmitted, EnterpriseChanged
from services.notify.book import Memory
from services.notify.notices import schedule


async def remember_appeals(db: AsyncDatabase, events: Sequence[CloudEvent[Any]], memory: Memory) -> None:
    """Keep what notify needs of submitted appeals: which company, its name and the title (the facts, the same in
    every copy); an appeal.submitted.v1 also brings its contact and link, which a later contact event replaces."""
    writes = []
    for event in events:
        d = event.data
        facts = {
            "channel": d.channel.value,
            "uscc": d.enterprise.uscc,
            "company_name": d.enterprise.name,
            "title": d.title,
            "category": d.category.value,
            "submitted_at": d.submitted_at,
        }
        if isinstance(d, AppealSubmitted):
            first = {"contact": d.contact.model_dump(), "follow_url": d.follow_url, "contact_version": 0}
        else:
            first = {"contact_version": -1}  # any contact event is newer
        writes.append(UpdateOne({"_id": d.appeal_id}, {"$set": facts, "$setOnInsert": first}, upsert=True))
        memory.appeals.pop(d.appeal_id, None)  # read again when needed, with what came before it
    if writes:
        await db.appeals.bulk_write(writes, ordered=False)


async def remember_contacts(db: AsyncDatabase, events: Sequence[CloudEvent[AppealContact]], memory: Memory) -> None:
    """Keep each appeal's latest contact and link (appeals.contacts.v1); an older one changes nothing."""
    latest: dict[str, AppealContact] = {}
    for event in events:
        if event.subject not in latest or event.data.version >= latest[event.subject].version:
            latest[event.subject] = event.data
    for appeal_id, data in latest.items():
        kept = {"contact": data.contact.model_dump(), "follow_url": data.follow_url, "contact_version": data.version}
        result = await db.appeals.update_one(
            {"_id": appeal_id, "contact_version": {"$lte": data.version}, "contact_erased": {"$ne": True}},
            {"$set": kept},
        )
        if not result.matched_count:  # an appeal kept before contacts were versioned
            result = await db.appeals.update_one(
                {"_id": appeal_id, "contact_version": {"$exists": False}, "contact_erased": {"$ne": True}},
                {"$set": kept},
            )
        if not result.matched_count:
            # The contact came before its submission, whose facts join it; or a newer one is kept, or it was erased.
            with contextlib.suppress(DuplicateKeyError):
                await db.appeals.insert_one({"_id": appeal_id, **kept})
        memory.appeals.pop(appeal_id, None)


async def erase_contacts(db: AsyncDatabase, appeal_ids: Sequence[str], memory: Memory) -> None:
    """Drop every copy notify keeps of these appeals' contacts: the appeal's, and each company message's address,
    text (it carries the link) and the event it was for; what was still to be sent to the company is not sent."""
    ids = sorted(set(appeal_ids))
    if not ids:
        return
    await db.appeals.update_many(
        {"_id": {"$in": ids}}, {"$unset": {"contact": "", "follow_url": ""}, "$set": {"contact_erased": True}}
    )
    for appeal_id in ids:
        memory.appeals.pop(appeal_id, None)
    writes = []
    async for notice in db.notices.find({"appeal_id": {"$in": ids}}, {"deliveries": 1, "event": 1}):
        deliveries = [_erased(d) for d in notice["deliveries"]]
        event = notice.get("event") or {}
        for field_name in ("contact", "follow_url"):
            (event.get("data") or {}).pop(field_name, None)
        changes = {"deliveries": deliveries, "event": event, **schedule(deliveries)}
        writes.append(UpdateOne({"_id": notice["_id"]}, {"$set": changes}))
    if writes:
        await db.notices.bulk_write(writes, ordered=False)


def _erased(delivery: dict[str, Any]) -> dict[str, Any]:
    """A company delivery without its address and text; one not yet made will not be."""
    if delivery.get("audience") != "company":
        return delivery
    out = {**delivery, "to": None, "body": "", "subject": ""}
    if out.get("status") not in ("delivered", "failed"):
        out.update(status="failed", reason="the contact was erased")
    return out


async def remember_companies(db: AsyncDatabase, events: Sequence[CloudEvent[EnterpriseChanged]]) -> None:
    """Keep the liaison of each company the registry tells of; a replayed or older change changes nothing."""
    latest: dict[str, EnterpriseChanged] = {}
    for event in events:
        data = event.data
        if data.uscc not in latest or data.version > latest[data.uscc].version:
            latest[data.uscc] = data
    writes = [
        UpdateOne(
            {"_id": uscc, "version": {"$lt": data.version}},
            {"$set": {"liaison": data.liaison, "version": data.version}},
        )
        for uscc, data in latest.items()
    ]
    inserts = [
        UpdateOne({"_id": uscc}, {"$setOnInsert": {"liaison": data.liaison, "version": data.version}}, upsert=True)
        for uscc, data in latest.items()
    ]
    if writes:
        await db.companies.bulk_write(inserts, ordered=False)
        await db.companies.bulk_write(writes, ordered=False)
