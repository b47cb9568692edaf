"""Router's store of contacts (appeals.contacts.v1): kept for the handling departments until erased."""

import logging
from collections.abc import Sequence

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs.envelopes import CloudEvent
from libs.events import AppealContact, Contact
from libs.mongo import by_ids, only_duplicates

log = logging.getLogger(__name__)


async def contacts_for(
    db: AsyncDatabase, events: Sequence[CloudEvent[AppealContact]], appeal_ids: Sequence[str]
) -> dict[str, Contact]:
    """The contacts of `appeal_ids`: from this batch's contact events, else as kept; the latest of each."""
    found = {
        doc["_id"]: Contact.model_validate(doc["contact"])
        for doc in (await by_ids(db.contacts, sorted(set(appeal_ids)))).values()
    }
    latest: dict[str, AppealContact] = {}
    for event in events:
        if event.subject not in latest or event.data.version >= latest[event.subject].version:
            latest[event.subject] = event.data
    return {**found, **{appeal_id: data.contact for appeal_id, data in latest.items()}}


async def keep_contacts(db: AsyncDatabase, events: Sequence[CloudEvent[AppealContact]]) -> None:
    """Keep each appeal's latest contact, in `contacts` and in the appeal; an older one changes nothing."""
    latest: dict[str, AppealContact] = {}
    for event in events:
        if event.subject not in latest or event.data.version >= latest[event.subject].version:
            latest[event.subject] = event.data
    if not latest:
        return
    kept = [
        UpdateOne(
            {"_id": appeal_id, "version": {"$lte": data.version}},
            {"$set": {"contact": data.contact.model_dump(), "version": data.version}},
            upsert=True,
        )
        for appeal_id, data in latest.items()
    ]
    try:
        await db.contacts.bulk_write(kept, ordered=False)
    except BulkWriteError as exc:
        if not only_duplicates(exc):  # a newer one kept already: its upsert found no match and clashed
            raise
    await db.appeals.bulk_write(
        [
            UpdateOne(
                {"_id": appeal_id, "contact_erased": {"$ne": True}}, {"$set": {"contact": data.contact.model_dump()}}
            )
            for appeal_id, data in latest.items()
        ],
        ordered=False,
    )


async def erase_contacts(db: AsyncDatabase, appeal_ids: Sequence[str]) -> None:
    """Drop the contacts of `appeal_ids` from router's database; the appeals say they were erased."""
    ids = sorted(set(appeal_ids))
    if not ids:
        return
    await db.contacts.delete_many({"_id": {"$in": ids}})
    await db.appeals.update_many({"_id": {"$in": ids}}, {"$set": {"contact": None, "contact_erased": True}})
