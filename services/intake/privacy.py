"""An appeal's contact in intake: where it travels, how the company corrects it, and its end (PIPL).

The contact travels on `appeals.contacts.v1` (compacted, key: the appeal; only router and notify
may read it) together with the company's link; the submission, on `appeals.submitted.v2`, carries
neither. Intake keeps the contact in the appeal's record for the company's own page and the
lost-link check until it is erased: `contact_retention` after the appeal closed, or when an admin
erases a company's contacts. An erasure publishes `appeal.contact_erased.v1`, then a tombstone that
compaction turns into nothing, and every service that kept a copy drops it.
"""

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from libs.contract import APPEALS_CONTACTS, parse_event
from libs.envelopes import CloudEvent
from libs.events import AppealContact, AppealContactErased, AppealSubmitted, Contact
from libs.ids import new_id
from libs.kafka.access import DURABLE_WRITES
from libs.kafka.publishing import encode, make_event
from libs.kinds import EventType
from services.intake import adopt

log = logging.getLogger(__name__)

SOURCE = "appeals/intake"
Reason = Literal["retention", "request"]
# What of a record is the contact: erased together.
CONTACT_FIELDS = ("contact", "contact_event")
# Records closed this long ago whose contacts are erased per run of the job; it runs again until none is left.
ERASE_BATCH = 200


def contact_event(
    appeal_id: str, contact: Contact, follow_url: str | None, version: int, traceparent: str | None = None
) -> CloudEvent[AppealContact]:
    """The appeal.contact.v1 event: the contact and the company's current link, at its change counter."""
    data = AppealContact(appeal_id=appeal_id, contact=contact, follow_url=follow_url, version=version)
    return make_event(SOURCE, EventType.appeal_contact, appeal_id, data, traceparent=traceparent)


def stored_contact(record: Mapping[str, Any]) -> Contact | None:
    """The contact intake keeps for an appeal; for one stored before contacts had a topic, from its submission."""
    if record.get("contact"):
        return Contact.model_validate(record["contact"])
    if record.get("contact_erased_at") or "event" not in record:
        return None
    event = parse_event(record["event"].encode())
    return event.data.contact if isinstance(event.data, AppealSubmitted) else None


def erasure_due(now: datetime, retention: timedelta) -> list[tuple[dict[str, Any], Reason]]:
    """The records whose contact's time is up, and why: their appeal closed `retention` ago, or it closed after an
    erasure was asked for while the departments still needed the contact to answer."""
    return [
        ({"closed_at": {"$lte": now - retention}, "contact_erased_at": None}, "retention"),
        ({"erase_on_close": True, "closed_at": {"$lte": now}, "contact_erased_at": None}, "request"),
    ]


async def next_contact_event(
    db: AsyncDatabase, appeal_id: str, link: Callable[[str, int], str | None], contact: Contact | None = None
) -> CloudEvent[AppealContact] | None:
    """The appeal's contact as it now is (`contact`, a correction, replacing it), with the link of its current
    token, under the next change counter; None once it is erased. For a new link, and for a correction."""
    changes: dict[str, Any] = {"$inc": {"contact_version": 1}}
    if contact is not None:
        changes["$set"] = {"contact": contact.model_dump()}
    result = await db.appeals.update_one({"_id": appeal_id, "contact_erased_at": None}, changes)
    record = await db.appeals.find_one({"_id": appeal_id}, {"contact_event": 0, "timeline": 0})
    current = stored_contact(record) if record and result.matched_count else None
    if record is None or current is None:
        return None
    version = int(record.get("token_version") or 0)
    return contact_event(appeal_id, current, link(appeal_id, version), int(record["contact_version"]))


class Eraser:
    """Erases contacts: the event every copy's keeper reads, the tombstone compaction needs, intake's own copy.

    FastStream publishes no null value, so tombstones go through a producer of the service's own,
    opened at the first erasure.
    """

    def __init__(self, broker: KafkaBroker, client_options: Mapping[str, Any]) -> None:
        self._broker = broker
        self._options = dict(client_options)
        self._producer: AIOKafkaProducer | None = None

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def erase(self, db: AsyncDatabase, appeal_ids: list[str], reason: Reason, now: datetime) -> int:
        """Erase the contacts of `appeal_ids` everywhere; how many there were. Again for an erased one: nothing."""
        if not appeal_ids:
            return 0
        if self._producer is None:
            self._producer = AIOKafkaProducer(**self._options, **DURABLE_WRITES, client_id="appeals-intake-erasure")
            await self._producer.start()
        for appeal_id in appeal_ids:
            erased = make_event(
                SOURCE,
                EventType.appeal_contact_erased,
                appeal_id,
                AppealContactErased(appeal_id=appeal_id, reason=reason),
            )
            await self._broker.publish(encode(erased), topic=APPEALS_CONTACTS, key=appeal_id.encode())
            await self._producer.send_and_wait(APPEALS_CONTACTS, None, key=appeal_id.encode())
        # A record from before contacts had a topic of their own holds its appeal.submitted.v1, contact and all:
        # it keeps what that event says of the appeal, as appeals.submitted.v2 does.
        legacy = db.appeals.find({"_id": {"$in": appeal_ids}, "contact_erased_at": None}, {"event": 1})
        rewrites = [
            UpdateOne({"_id": r["_id"]}, {"$set": {"event": encode(adopt.split(event)[0]).decode()}})
            async for r in legacy
            if isinstance((event := parse_event(r["event"].encode())).data, AppealSubmitted)
        ]
        if rewrites:
            await db.appeals.bulk_write(rewrites, ordered=False)
        result = await db.appeals.update_many(
            {"_id": {"$in": appeal_ids}, "contact_erased_at": None},
            {
                "$unset": dict.fromkeys(CONTACT_FIELDS, ""),
                "$set": {"contact_erased_at": now, "contact_erased_why": reason},
            },
        )
        return result.modified_count

    async def erase_due(self, db: AsyncDatabase, now: datetime, retention: timedelta) -> int:
        """Erase the contacts whose retention ended, a batch at a time; how many."""
        total = 0
        for due, reason in erasure_due(now, retention):
            while ids := [d["_id"] async for d in db.appeals.find(due, {"_id": 1}).limit(ERASE_BATCH)]:
                total += await self.erase(db, ids, reason, now)
                if len(ids) < ERASE_BATCH:
                    break
        if total:
            log.info("contacts erased at the end of their retention", extra={"appeals": total})
        return total

    async def erase_company(self, db: AsyncDatabase, uscc: str, who: str, now: datetime) -> dict[str, Any]:
        """Erase every contact of a company's appeals, as `who` asked; the audit entry, kept in `erasures`.

        A closed appeal's contact goes now; an open one's when it closes, for the departments answer through it.
        """
        found = [d async for d in db.appeals.find({"uscc": uscc, "contact_erased_at": None}, {"closed_at": 1})]
        closed = [d["_id"] for d in found if d.get("closed_at")]
        still_open = [d["_id"] for d in found if not d.get("closed_at")]
        erased = await self.erase(db, closed, "request", now)
        if still_open:
            await db.appeals.update_many({"_id": {"$in": still_open}}, {"$set": {"erase_on_close": True}})
        entry = {
            "_id": new_id(),
            "at": now,
            "by": who,
            "uscc": uscc,
            "appeals": closed,
            "erased": erased,
            "at_close": still_open,
        }
        await db.erasures.insert_one(entry)
        # The log names who and how many, never the company: its credit code stays in the audit collection.
        log.warning("contacts erased on request", extra={"erasure": entry["_id"], "by": who, "appeals": erased})
        return entry
