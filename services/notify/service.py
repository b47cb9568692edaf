"""Notify persistence: one notice per event, holding its deliveries, sent by a claiming dispatcher.

An event is turned into one notice (collection `notices`, `_id` the event's id)
holding a delivery for each (recipient, channel), whose id, the notification id,
is `<event id>:<recipient>:<channel>`; a redelivered event inserts nothing new.
One document per event rather than one per delivery: the database's cost follows
the documents written, and an event's deliveries are planned, and mostly sent,
together. The dispatcher claims due notices (like sla's scheduler), sends their
due deliveries, publishes each final outcome's `notification.delivered/failed.v1`
event, then records the outcomes in one write of the notice. A crash before that
write leaves the claim to expire and the delivery is sent again under the same
notification id (webhook `X-Appeals-Delivery`, e-mail Message-ID, provider
`client_ref`), which receivers use to drop the copy; its outcome event keeps its id
too (`outcome_event_id`), so consumers drop that copy as well. The send itself is
at least once, so the event needs no outbox of its own.

Earlier versions kept one record per delivery in `notifications`; `adopt_records`
moves them into notices, an event at a time, and the planner leaves alone an
event that still has records there.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cachetools import LRUCache, TTLCache
from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from libs import claims, outbox, tracing
from libs.calendars import BusinessCalendar, Calendars, parse_target
from libs.config import City, RegistryConfig, SlaConfig
from libs.contract import NOTIFY_DELIVERIES, dead_letter_topic, parse_event
from libs.deadlines import aware
from libs.events import (
    AppealContact,
    AppealSubmitted,
    CloudEvent,
    CompanyMessage,
    EnterpriseChanged,
    EventType,
    NotificationOutcome,
)
from libs.ids import new_id, stable_id
from libs.kafka import encode
from libs.outbox import Emit, outbox_items
from services.notify import channels, rules
from services.notify.rules import Address, Planned, Renderer

log = logging.getLogger(__name__)

SOURCE = "appeals/notify"
WAIT_FOR_SUBMISSION = timedelta(minutes=5)
# A subscription changed through another replica is seen within this many seconds.
SUBSCRIPTIONS_KEPT_SECONDS = 10.0


@dataclass
class NotifyBook:
    city: City
    sla: SlaConfig
    calendars: Calendars
    renderer: Renderer
    registry: RegistryConfig

    def calendar_for(self, department: str | None) -> BusinessCalendar:
        """The calendar a department works by (the default one for none or an unknown one)."""
        return self.calendars.of_department(self.city, department)


# A delivery still to be sent: held for office hours, due now, or to be tried again.
UNSETTLED = ("held", "pending", "retrying")


async def ensure_indexes(db: AsyncDatabase) -> None:
    """The dispatcher reads only notices due for an attempt; the log is read per appeal."""
    await db.notices.create_index([("due_at", ASCENDING)], sparse=True)
    await db.notices.create_index([("appeal_id", ASCENDING), ("created_at", ASCENDING)])
    await db.notices.create_index([("claim_until", ASCENDING)], sparse=True)
    # The records of earlier versions (`notifications`) are read by appeal and by outbox: every version that
    # wrote them made those indexes.


def _expected(book: NotifyBook, profile: str | None, start: datetime, department: str | None) -> datetime:
    target = parse_target(book.sla.profile(profile).resolution)
    calendar = book.calendar_for(department)
    return calendar.add(target, start, calendar.budget(target))


def _context(book: NotifyBook, event: CloudEvent, appeal: dict[str, Any] | None, status_url: str) -> dict[str, Any]:
    data = event.data.model_dump(mode="python")
    department = data.get("department")
    dept = book.city.department(department) if department else None
    submitted = data.get("submitted_at") or (appeal or {}).get("submitted_at") or event.time
    return {
        "appeal_id": event.subject,
        "title": (appeal or {}).get("title", ""),
        "company_name": (appeal or {}).get("company_name", ""),
        "category": data.get("category") or (appeal or {}).get("category", ""),
        "channel": (appeal or {}).get("channel", ""),
        "department_name": dept.name if dept else (department or ""),
        "role": "lead",
        "sla_profile": data.get("sla_profile") or "",
        "guidance": data.get("guidance") or "",
        "note": data.get("note") or "",
        "resolution": data.get("resolution") or "",
        "policies": [p["title"] for p in data.get("policies", [])],
        "expected_at": rules.local_time(_expected(book, data.get("sla_profile"), submitted, department)),
        # The link intake made, with the token that opens the page; the configured page, without one, otherwise.
        "status_url": (appeal or {}).get("follow_url") or status_url.format(appeal_id=event.subject),
        "clock": data.get("clock", ""),
        "level": data.get("level", ""),
        "target": data.get("target", ""),
        "due_at": rules.local_time(data.get("due_at")) if data.get("due_at") else "",
    }


@dataclass
class Memory:
    """What notify read before and may read again without the database.

    An appeal as notify keeps it never changes after submission, so it is safe to
    keep; subscriptions can change (through any replica), so they are kept briefly.
    """

    appeals: LRUCache = field(default_factory=lambda: LRUCache(maxsize=20_000))
    subscriptions: TTLCache = field(default_factory=lambda: TTLCache(maxsize=5_000, ttl=SUBSCRIPTIONS_KEPT_SECONDS))
    # Until adoption finds no record of an earlier version left, the planner checks there first.
    records_left: bool = True


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


async def _appeals(db: AsyncDatabase, appeal_ids: set[str], memory: Memory) -> dict[str, dict[str, Any]]:
    missing = [a for a in appeal_ids if a not in memory.appeals]
    if missing:
        async for appeal in db.appeals.find({"_id": {"$in": missing}}):
            memory.appeals[appeal["_id"]] = appeal
    return {a: memory.appeals[a] for a in appeal_ids if a in memory.appeals}


async def _subscriptions(db: AsyncDatabase, recipients: list[str], memory: Memory) -> dict[str, dict | None]:
    missing = [r for r in recipients if r not in memory.subscriptions]
    if missing:
        found = {s["_id"]: s async for s in db.subscriptions.find({"_id": {"$in": missing}})}
        for recipient in missing:
            memory.subscriptions[recipient] = found.get(recipient)
    return {r: memory.subscriptions.get(r) for r in recipients}


async def _staff(db: AsyncDatabase, city: City, departments: set[str], memory: Memory) -> dict[str, rules.Address]:
    recipients = [f"{code}:{role}" for code in departments for role in ("handler", "head", "supervisor")]
    if not recipients:
        return {}
    subs = await _subscriptions(db, recipients, memory)
    staff = {}
    for recipient in recipients:
        code, role = recipient.split(":")
        dept = city.department(code)
        staff[recipient] = rules.staff_address(getattr(dept, role, None) if dept else None, subs.get(recipient))
    return staff


def _not_before(book: NotifyBook, item: Planned, address: Address, now: datetime) -> datetime:
    """Non-urgent staff messages wait for office hours (or the end of the recipient's quiet hours)."""
    if item.audience == "company" or item.urgent:
        return now
    calendar = book.calendar_for(item.department)
    if address.quiet_hours:
        start, end = (time.fromisoformat(t) for t in address.quiet_hours)
        local = now.astimezone(ZoneInfo(calendar.config.timezone))
        inside = (start <= local.time() < end) if start < end else (local.time() >= start or local.time() < end)
        if not inside:
            return now
        release = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        return (release + timedelta(days=1) if release <= local else release).astimezone(now.tzinfo)
    return calendar.next_opening(now)


def _destination(item: Planned, address: Address) -> str | None:
    return {
        "email": address.email,
        "sms": address.phone,
        "wechat": address.wechat_openid,
        "webhook": address.webhook_url,
    }.get(item.channel)


async def plan_events(
    db: AsyncDatabase,
    book: NotifyBook,
    events: Sequence[CloudEvent[Any]],
    now: datetime,
    status_url: str,
    memory: Memory,
    ready: Ready | None = None,
) -> int:
    """Record every notification a batch of events owes; a replayed event records nothing new.

    With `ready`, those due now are stored claimed and handed to this replica's next send pass.

    Topics are consumed side by side, so an event can come before its appeal's
    submission: it waits in `waiting` (stored before the batch is committed) and
    `plan_waiting` plans it once the submission is read.
    """
    submitted = (EventType.appeal_submitted, EventType.appeal_submitted_v2)
    await remember_appeals(db, [e for e in events if e.type in submitted], memory)
    await remember_contacts(db, [e for e in events if e.type == EventType.appeal_contact], memory)
    await erase_contacts(db, [e.subject for e in events if e.type == EventType.appeal_contact_erased], memory)
    kept = (EventType.appeal_contact, EventType.appeal_contact_erased)
    events = [e for e in events if e.type not in kept]
    planned, early = await _plan(db, book, events, now, status_url, memory, ready)
    if early:
        await db.waiting.bulk_write(
            [
                UpdateOne(
                    {"_id": e.id},
                    {"$setOnInsert": {"appeal_id": e.subject, "event": encode(e).decode(), "since": now}},
                    upsert=True,
                )
                for e in early
            ],
            ordered=False,
        )
    return planned


async def plan_waiting(db: AsyncDatabase, book: NotifyBook, now: datetime, status_url: str, memory: Memory) -> int:
    """Plan the events that came before their submission: once it is read, or without the company after a while."""
    docs = [d async for d in db.waiting.find().limit(500)]
    if not docs:
        return 0
    events = [parse_event(d["event"].encode()) for d in docs]
    planned, early = await _plan(db, book, events, now, status_url, memory)
    still = {e.id for e in early}
    done = [e.id for e in events if e.id not in still]
    if done:
        await db.waiting.delete_many({"_id": {"$in": done}})
    return planned


async def _plan(
    db: AsyncDatabase,
    book: NotifyBook,
    events: Sequence[CloudEvent[Any]],
    now: datetime,
    status_url: str,
    memory: Memory,
    ready: Ready | None = None,
) -> tuple[int, list[CloudEvent]]:
    """Store the records the events owe; returns how many, and the events whose appeal is not known yet."""
    appeals = await _appeals(db, {e.subject for e in events}, memory)
    departments = {e.data.department for e in events if getattr(e.data, "department", None)}
    staff = await _staff(db, book.city, departments, memory)
    liaisons = await _liaisons(db, book, [e for e in events if e.type in rules.LIAISON_TEMPLATES], appeals, memory)
    staff.update({f"liaison:{liaison_id}": address for liaison_id, address in liaisons.values()})
    known = await _recorded_before(db, events) if memory.records_left else set()
    notices, early = [], []
    for event in events:
        appeal = appeals.get(event.subject)
        if not _reachable(appeal) and event.type in rules.COMPANY_TEMPLATES and now - event.time < WAIT_FOR_SUBMISSION:
            early.append(event)
            continue
        if event.id in known:
            continue
        deliveries = _deliveries(book, event, appeal, staff, now, status_url, liaisons.get(event.subject))
        if deliveries:
            notices.append(
                _notice(
                    event.id,
                    event.subject,
                    event.type,
                    event.model_dump(mode="json"),
                    now,
                    event.traceparent,
                    deliveries,
                )
            )
    if not notices:
        return 0, early
    claimed = ready.claim(notices, now) if ready else []
    refused: set[int] = set()
    try:
        await db.notices.insert_many(notices, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        refused = {e["index"] for e in errors}  # stored by an earlier delivery of the event, not claimed by us
    if ready and claimed:
        stored = {id(n) for i, n in enumerate(notices) if i not in refused}
        ready.docs += [n for n in claimed if id(n) in stored]
    return sum(len(n["deliveries"]) for n in notices), early


def _reachable(appeal: dict[str, Any] | None) -> bool:
    """Whether notify knows the appeal well enough to write to its company: its submission read, and its contact
    with it (published first, on another topic) unless it was erased."""
    if appeal is None or "submitted_at" not in appeal:
        return False
    return bool(appeal.get("contact")) or bool(appeal.get("contact_erased"))


async def _recorded_before(db: AsyncDatabase, events: Sequence[CloudEvent[Any]]) -> set[str]:
    """The events an earlier version already recorded deliveries of, not yet adopted into notices."""
    found = db.notifications.find(
        {"appeal_id": {"$in": list({e.subject for e in events})}, "event_id": {"$in": [e.id for e in events]}},
        {"event_id": 1},
    )
    return {d["event_id"] async for d in found}


async def _liaisons(
    db: AsyncDatabase,
    book: NotifyBook,
    events: Sequence[CloudEvent[Any]],
    appeals: dict[str, dict[str, Any]],
    memory: Memory,
) -> dict[str, tuple[str, Address]]:
    """The liaison (id and address) of each appeal's company, for the appeals of `events` that have one."""
    uscc_of = {e.subject: appeals[e.subject]["uscc"] for e in events if appeals.get(e.subject, {}).get("uscc")}
    if not uscc_of:
        return {}
    liaison_of = {
        c["_id"]: c["liaison"]
        async for c in db.companies.find({"_id": {"$in": sorted(set(uscc_of.values()))}, "liaison": {"$ne": None}})
    }
    people = {lid: book.registry.find_liaison(lid) for lid in set(liaison_of.values())}
    subs = await _subscriptions(db, [f"liaison:{lid}" for lid in people], memory)
    addresses = {
        lid: rules.staff_address(person, subs.get(f"liaison:{lid}"), person.language if person else "zh")
        for lid, person in people.items()
    }
    return {
        appeal_id: (liaison_of[uscc], addresses[liaison_of[uscc]])
        for appeal_id, uscc in uscc_of.items()
        if uscc in liaison_of
    }


def _deliveries(
    book: NotifyBook,
    event: CloudEvent,
    appeal: dict[str, Any] | None,
    staff: dict[str, Address],
    now: datetime,
    status_url: str,
    liaison: tuple[str, Address] | None = None,
) -> list[dict[str, Any]]:
    """The deliveries one event owes, ids fixed by (event, recipient, channel)."""
    company = None
    if appeal and appeal.get("contact"):
        contact = appeal["contact"]
        company = Address(
            email=contact.get("email"), phone=contact.get("phone"), wechat_openid=contact.get("wechat_openid")
        )
    data = event.data.model_dump(mode="python")
    context = _context(book, event, appeal, status_url)
    planned = rules.plan(event.type, data, {"context": context}, book.city, staff, company, liaison)
    deliveries: list[dict[str, Any]] = []
    for item in planned:
        address = company if item.audience == "company" else staff[item.recipient]
        destination = _destination(item, address) if address is not None else None
        if address is None or not destination:
            continue
        subject, body = book.renderer.render(item.template, item.language, item.context)
        due_at = _not_before(book, item, address, now)
        deliveries.append(
            {
                "id": f"{event.id}:{item.recipient}:{item.channel}",
                "recipient": item.recipient,
                "audience": item.audience,
                "channel": item.channel,
                "to": destination,
                "secret": address.webhook_secret,
                "urgent": item.urgent,
                "template": item.template,
                "language": item.language,
                "subject": subject,
                "body": body,
                "status": "held" if due_at > now else "pending",
                "attempts": 0,
                "due_at": due_at,
            }
        )
    return deliveries


def _notice(
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


def _record_of(notice: dict[str, Any], delivery: dict[str, Any]) -> dict[str, Any]:
    """One delivery with what it needs of its notice: the form a send and its outcome read."""
    return {
        **delivery,
        "_id": delivery["id"],
        "appeal_id": notice["appeal_id"],
        "event_id": notice["_id"],
        "event_type": notice["event_type"],
        "created_at": notice["created_at"],
        "traceparent": notice.get("traceparent"),
        "payload": {
            "notification_id": delivery["id"],
            "audience": delivery["audience"],
            "subject": delivery["subject"],
            "text": delivery["body"],
            "event": notice["event"],
        },
    }


@dataclass
class AttemptResult:
    channel: str
    audience: str
    outcome: str


async def _attempt(doc: dict[str, Any], senders: channels.Senders, settings) -> None:
    message = channels.Message(
        doc["_id"],
        doc["to"],
        doc["subject"],
        doc["body"],
        doc["template"],
        doc["language"],
        doc["payload"],
        doc.get("secret"),
    )
    if doc["channel"] == "webhook":
        await channels.send_webhook(senders.webhooks, message)
    elif doc["channel"] == "email":
        await channels.send_email(senders.mailer, settings.smtp_sender, message)
    elif doc["channel"] == "sms":
        await channels.send_provider(senders.http, settings.sms_endpoint, settings.provider_api_key, "sms", message)
    else:
        await channels.send_provider(
            senders.http, settings.wechat_endpoint, settings.provider_api_key, "wechat", message
        )


def backoff(attempts: int, base: float, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2^(attempts-1), capped."""
    return random.uniform(0, min(cap, base * 2 ** (attempts - 1)))


def _outcome_emits(doc: dict[str, Any], delivered: bool, attempts: int, reason: str | None) -> list[Emit]:
    data = NotificationOutcome(
        appeal_id=doc["appeal_id"],
        notification_id=doc["_id"],
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        recipient=doc["recipient"],
        audience=doc["audience"],
        channel=doc["channel"],
        attempts=attempts,
        reason=reason,
    )
    kind = EventType.notification_delivered if delivered else EventType.notification_failed
    emits = [Emit(NOTIFY_DELIVERIES, kind, data)]
    if not delivered:
        emits.append(Emit(dead_letter_topic(NOTIFY_DELIVERIES), kind, data))
    return emits


async def dispatch(
    db: AsyncDatabase,
    broker: KafkaBroker,
    senders: channels.Senders,
    settings: Any,
    now: datetime,
    batch: int = 100,
    on_outcome: Callable[[AttemptResult], None] = lambda _: None,
    ready: Ready | None = None,
) -> list[AttemptResult]:
    """Claim the notices due for an attempt, send their due deliveries side by side, then record all in one write.

    What this replica's planner stored claimed (`ready`) goes first, without claiming.

    One bulk write rather than a hundred concurrent ones: the database serialises the
    writes to a collection, and those queued behind each other (and behind the
    planner's inserts) for seconds. A send waits `send_timeout_seconds` at most, well
    inside the claim, so a batch is recorded before its claim expires.
    """
    held = (ready and ready.take(now, batch)) or await claims.claim_due(
        db.notices,
        "due_at",
        now,
        limit=batch,
        skip=batch,
        hold_until=now + timedelta(seconds=settings.claim_seconds),
    )
    if not held.docs:
        return []
    due = [
        (notice, n, _record_of(notice, d))
        for notice in held.docs
        for n, d in enumerate(notice["deliveries"])
        if d["status"] in UNSETTLED and d["due_at"] <= now
    ]
    errors = await asyncio.gather(*(_send(record, senders, settings) for _, _, record in due))
    settled = [
        settle(record, error, now, settings.max_attempts, settings.retry_base_seconds)
        for (_, _, record), error in zip(due, errors, strict=True)
    ]
    for (notice, n, _), outcome in zip(due, settled, strict=True):
        notice["deliveries"][n] = outcome.applied(notice["deliveries"][n])
    await _record(db, broker, held, [s.events for s in settled])
    results = [s.result for s in settled]
    for result in results:
        on_outcome(result)
    return results


async def _send(doc: dict[str, Any], senders: channels.Senders, settings: Any) -> channels.DeliveryError | None:
    """One attempt to send a delivery; the error it met, if any."""
    tracing.current.set(doc.get("traceparent"))  # this task's own context: its log lines name the trace
    try:
        await _attempt(doc, senders, settings)
    except channels.DeliveryError as error:
        return error
    except Exception as raised:  # an unforeseen client error is one failed attempt, not a lost batch
        return channels.DeliveryError(f"{doc['channel']} send failed: {type(raised).__name__}")
    return None


@dataclass
class Settled:
    """What one attempt comes to: the delivery's changed fields, the outcome events it owes, and the result."""

    update: dict[str, Any]
    events: list[dict[str, Any]]
    result: AttemptResult

    def applied(self, delivery: dict[str, Any]) -> dict[str, Any]:
        """The delivery with the attempt's outcome; a field set to None is dropped."""
        return {k: v for k, v in {**delivery, **self.update}.items() if v is not None}


def settle(
    record: dict[str, Any],
    error: channels.DeliveryError | None,
    now: datetime,
    max_attempts: int,
    retry_base_seconds: float,
) -> Settled:
    """What one attempt comes to: delivered, tried again later, or failed for good.

    A final outcome owes its `notification.*.v1` event; a failure that gives up goes
    to `notify.deliveries.v1.dlq` too, for operators.
    """
    attempts = record["attempts"] + 1
    if error is None:
        fields = {"attempts": attempts, "status": "delivered", "delivered_at": now, "due_at": None}
        return _settled(record, fields, _outcome_emits(record, True, attempts, None), "delivered", now)
    fields = {"attempts": attempts, "last_error": error.reason}
    if error.permanent or attempts >= max_attempts:
        fields.update(status="failed", failed_at=now, due_at=None)
        return _settled(record, fields, _outcome_emits(record, False, attempts, error.reason), "failed", now)
    fields.update(status="retrying", due_at=now + timedelta(seconds=backoff(attempts, retry_base_seconds)))
    return _settled(record, fields, [], "retried", now)


def outcome_event_id(record: dict[str, Any]) -> str:
    """The one id of a delivery's outcome event, whichever attempt or replica publishes it."""
    return stable_id(f"{record['_id']}:outcome", aware(record["created_at"]))


def _settled(record: dict[str, Any], fields: dict[str, Any], emits: list[Emit], outcome: str, now: datetime) -> Settled:
    # Deliveries run on a timer, outside the event's handler: the trace travels with the notice.
    ids = [outcome_event_id(record)] * len(emits)
    events = outbox_items(SOURCE, emits, record.get("traceparent"), now, ids=ids)
    return Settled(fields, events, AttemptResult(record["channel"], record["audience"], outcome))


async def _record(
    db: AsyncDatabase, broker: KafkaBroker, held: claims.Claimed, events: list[list[dict[str, Any]]]
) -> None:
    """Publish the pass's outcome events, then write every claimed notice, as it now stands, in one bulk write."""
    await asyncio.gather(*(outbox.publish_items(broker, items) for items in events if items))
    writes = []
    for notice in held.docs:
        state = schedule(notice["deliveries"])
        unset = {**claims.UNCLAIM, **({} if "due_at" in state else {"due_at": ""})}
        change = {"$set": {"deliveries": notice["deliveries"], **state}, "$unset": unset, "$inc": {"version": 1}}
        writes.append(UpdateOne({"_id": notice["_id"], "claim": held.token}, change))
    written = await db.notices.bulk_write(writes, ordered=False)
    if written.matched_count < len(held.docs):
        # A claim ran out under a slow batch and another dispatcher took the notice: it sends again, and
        # publishes each outcome under the same id.
        log.info("some claims ran out before their outcome was written", extra={"claimed": len(held.docs)})


async def release_expired_claims(db: AsyncDatabase, now: datetime) -> None:
    """Notices a crashed dispatcher had claimed become due again."""
    await claims.release_expired(db.notices, now)


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
            _notice(
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


async def delivery_log(db: AsyncDatabase, appeal_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """The deliveries of an appeal, oldest first, each with its event's type and time, without secrets."""
    projection = {"event": 0, "claim": 0, "deliveries.secret": 0}
    found = db.notices.find({"appeal_id": appeal_id}, projection).sort("created_at", ASCENDING).limit(limit)
    log_ = [
        {**d, "_id": d["id"], "event_type": n["event_type"], "created_at": n["created_at"]}
        async for n in found
        for d in n["deliveries"]
    ]
    return log_[:limit]


async def send_messages(
    db: AsyncDatabase,
    senders: channels.Senders,
    settings: Any,
    book: NotifyBook,
    events: Sequence[CloudEvent[CompanyMessage]],
    now: datetime,
) -> None:
    """Send each one-time code or lost link by SMS straight away, once; an expired code is not sent.

    A failed send raises, so the batch comes again; what was sent before is noted and skipped.
    These messages bypass the notices: they concern no appeal's history and are void in minutes.
    """
    sent = {doc["_id"] async for doc in db.messages.find({"_id": {"$in": [e.id for e in events]}})}
    for event in events:
        data = event.data
        if event.id in sent or (data.expires_at is not None and data.expires_at < now):
            continue
        template = "code" if event.type == EventType.company_code_issued else "link"
        context = {"code": data.code, "minutes": 10, "appeal_id": data.appeal_id, "status_url": data.follow_url}
        subject, body = book.renderer.render(template, data.language, context)
        message = channels.Message(
            f"{event.id}:company:sms", data.phone, subject, body, template, data.language, {"text": body}
        )
        try:
            await channels.send_provider(senders.http, settings.sms_endpoint, settings.provider_api_key, "sms", message)
        except channels.DeliveryError as exc:
            if not exc.permanent:
                raise
            log.warning("a company message cannot be sent", extra={"event_id": event.id, "reason": exc.reason})
        await db.messages.update_one({"_id": event.id}, {"$setOnInsert": {"at": now}}, upsert=True)
