"""Notify persistence: one delivery record per (event, recipient, channel), sent by a claiming dispatcher.

An event is turned into delivery records whose `_id` is `<event id>:<recipient>:
<channel>`; a redelivered event inserts nothing new. The dispatcher claims due
records (like sla's scheduler), sends, and records the outcome with the
`notification.delivered/failed.v1` event in the record's outbox. A crash mid-send
leaves the claim to expire and the record is sent again under the same
notification id (webhook `X-Appeals-Delivery`, e-mail Message-ID, provider
`client_ref`), which receivers use to drop the copy.
"""

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from cachetools import LRUCache, TTLCache
from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs import outbox, tracing
from libs.calendars import BusinessCalendar, parse_target
from libs.config import City, SlaConfig
from libs.contract import NOTIFY_DELIVERIES, dead_letter_topic, parse_event
from libs.events import CloudEvent, EventType, NotificationOutcome
from libs.ids import new_id
from libs.kafka import encode
from libs.mongo import apply_update
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
    calendars: dict[str, BusinessCalendar]
    renderer: Renderer

    def calendar_for(self, department: str | None) -> BusinessCalendar:
        dept = self.city.department(department) if department else None
        return self.calendars.get(dept.calendar if dept else "default", self.calendars["default"])


async def ensure_indexes(db: AsyncDatabase) -> None:
    """The dispatcher reads only records due for an attempt; the log is read per appeal."""
    await db.notifications.create_index([("due_at", ASCENDING)], sparse=True)
    await db.notifications.create_index([("appeal_id", ASCENDING), ("created_at", ASCENDING)])
    await db.notifications.create_index([("claim_until", ASCENDING)], sparse=True)
    await db.notifications.create_index([("outbox_since", ASCENDING)], sparse=True)


def _expected(book: NotifyBook, profile: str | None, start: datetime, department: str | None) -> datetime:
    sla = book.sla
    p = sla.profiles.get(profile or "") or sla.profiles[sla.selection[-1].profile]
    target = parse_target(p.resolution)
    calendar = book.calendar_for(department)
    return calendar.add(target, start, calendar.budget(target))


def _context(book: NotifyBook, event: CloudEvent, appeal: dict[str, Any] | None, status_url: str) -> dict[str, Any]:
    data = event.data.model_dump(mode="python")
    department = data.get("department")
    dept = book.city.department(department) if department else None
    submitted = data.get("submitted_at") or (appeal or {}).get("submitted_at") or event.time
    return {
        "appeal_id": event.subject, "title": (appeal or {}).get("title", ""),
        "category": data.get("category") or (appeal or {}).get("category", ""),
        "channel": (appeal or {}).get("channel", ""),
        "department_name": dept.name if dept else (department or ""), "role": "lead",
        "sla_profile": data.get("sla_profile") or "", "guidance": data.get("guidance") or "",
        "note": data.get("note") or "", "resolution": data.get("resolution") or "",
        "policies": [p["title"] for p in data.get("policies", [])],
        "expected_at": rules.local_time(_expected(book, data.get("sla_profile"), submitted, department)),
        "status_url": status_url.format(appeal_id=event.subject),
        "clock": data.get("clock", ""), "level": data.get("level", ""), "target": data.get("target", ""),
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


async def remember_appeals(db: AsyncDatabase, events: list[CloudEvent], memory: Memory) -> None:
    """Keep what notify needs of submitted appeals: how to reach the company, and the title."""
    writes = []
    for event in events:
        d = event.data
        kept = {"contact": d.contact.model_dump(), "channel": d.channel.value, "title": d.title,
                "category": d.category.value, "submitted_at": d.submitted_at}
        writes.append(UpdateOne({"_id": d.appeal_id}, {"$setOnInsert": kept}, upsert=True))
        # What the database kept may be an earlier copy; both say the same, the submission being immutable.
        memory.appeals[d.appeal_id] = {"_id": d.appeal_id, **kept}
    if writes:
        await db.appeals.bulk_write(writes, ordered=False)


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
    return {"email": address.email, "sms": address.phone, "wechat": address.wechat_openid,
            "webhook": address.webhook_url}.get(item.channel)


async def plan_events(db: AsyncDatabase, book: NotifyBook, events: list[CloudEvent], now: datetime,
                      status_url: str, memory: Memory) -> int:
    """Record every notification a batch of events owes; a replayed event records nothing new.

    Topics are consumed side by side, so an event can come before its appeal's
    submission: it waits in `waiting` (stored before the batch is committed) and
    `plan_waiting` plans it once the submission is read.
    """
    await remember_appeals(db, [e for e in events if e.type == EventType.appeal_submitted], memory)
    planned, early = await _plan(db, book, events, now, status_url, memory)
    if early:
        await db.waiting.bulk_write([UpdateOne({"_id": e.id}, {"$setOnInsert": {
            "appeal_id": e.subject, "event": encode(e).decode(), "since": now}}, upsert=True) for e in early],
            ordered=False)
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


async def _plan(db: AsyncDatabase, book: NotifyBook, events: list[CloudEvent], now: datetime, status_url: str,
                memory: Memory) -> tuple[int, list[CloudEvent]]:
    """Store the records the events owe; returns how many, and the events whose appeal is not known yet."""
    appeals = await _appeals(db, {e.subject for e in events}, memory)
    departments = {e.data.department for e in events if getattr(e.data, "department", None)}
    staff = await _staff(db, book.city, departments, memory)
    records, early = [], []
    for event in events:
        appeal = appeals.get(event.subject)
        if appeal is None and event.type in rules.COMPANY_TEMPLATES and now - event.time < WAIT_FOR_SUBMISSION:
            early.append(event)
            continue
        records += _records(book, event, appeal, staff, now, status_url)
    if records:
        try:
            await db.notifications.insert_many(records, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
    return len(records), early


def _records(book: NotifyBook, event: CloudEvent, appeal: dict[str, Any] | None, staff: dict[str, Address],
             now: datetime, status_url: str) -> list[dict[str, Any]]:
    """The delivery records one event owes, ids fixed by (event, recipient, channel)."""
    company = None
    if appeal:
        contact = appeal["contact"]
        company = Address(email=contact.get("email"), phone=contact.get("phone"),
                          wechat_openid=contact.get("wechat_openid"))
    data = event.data.model_dump(mode="python")
    context = _context(book, event, appeal, status_url)
    planned = rules.plan(event.type, data, {"context": context}, book.city, staff, company)
    records = []
    for item in planned:
        address = company if item.audience == "company" else staff[item.recipient]
        destination = _destination(item, address)
        if not destination:
            continue
        subject, body = book.renderer.render(item.template, item.language, item.context)
        records.append({
            "_id": f"{event.id}:{item.recipient}:{item.channel}", "appeal_id": event.subject, "event_id": event.id,
            "event_type": event.type, "recipient": item.recipient, "audience": item.audience,
            "channel": item.channel, "to": destination, "secret": address.webhook_secret, "urgent": item.urgent,
            "template": item.template, "language": item.language, "subject": subject, "body": body,
            "payload": {"notification_id": f"{event.id}:{item.recipient}:{item.channel}", "audience": item.audience,
                        "subject": subject, "text": body, "event": event.model_dump(mode="json")},
            "status": "pending", "attempts": 0, "created_at": now, "traceparent": event.traceparent,
            "due_at": _not_before(book, item, address, now), "version": 1,
        })
        if records[-1]["due_at"] > now:
            records[-1]["status"] = "held"
    return records


@dataclass
class Outcome:
    channel: str
    audience: str
    outcome: str


async def _attempt(doc: dict[str, Any], http: httpx.AsyncClient, settings) -> None:
    message = channels.Message(doc["_id"], doc["to"], doc["subject"], doc["body"], doc["template"],
                               doc["language"], doc["payload"], doc.get("secret"))
    if doc["channel"] == "webhook":
        await channels.send_webhook(http, message)
    elif doc["channel"] == "email":
        await channels.send_email(settings.smtp_host, settings.smtp_port, settings.smtp_sender, message,
                                  settings.send_timeout_seconds)
    elif doc["channel"] == "sms":
        await channels.send_provider(http, settings.sms_endpoint, settings.provider_api_key, "sms", message)
    else:
        await channels.send_provider(http, settings.wechat_endpoint, settings.provider_api_key, "wechat", message)


def backoff(attempts: int, base: float, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2^(attempts-1), capped."""
    return random.uniform(0, min(cap, base * 2 ** (attempts - 1)))


def _outcome_emits(doc: dict[str, Any], delivered: bool, attempts: int, reason: str | None) -> list[Emit]:
    data = NotificationOutcome(appeal_id=doc["appeal_id"], notification_id=doc["_id"], event_id=doc["event_id"],
                               event_type=doc["event_type"], recipient=doc["recipient"], audience=doc["audience"],
                               channel=doc["channel"], attempts=attempts, reason=reason)
    kind = EventType.notification_delivered if delivered else EventType.notification_failed
    emits = [Emit(NOTIFY_DELIVERIES, kind, data)]
    if not delivered:
        emits.append(Emit(dead_letter_topic(NOTIFY_DELIVERIES), kind, data))
    return emits


async def dispatch(db: AsyncDatabase, broker: KafkaBroker, http: httpx.AsyncClient, settings, now: datetime,
                   batch: int = 100, on_outcome: Callable[[Outcome], None] = lambda _: None) -> list[Outcome]:
    """Claim records due for an attempt, send them side by side, then record every outcome in one write.

    One bulk request rather than a hundred concurrent writes: the database
    serialises the writes to a collection, and those queued behind each other (and
    behind the planner's inserts) for seconds. A send waits `send_timeout_seconds`
    at most, well inside the claim, so a batch is recorded before its claim expires.
    """
    token = new_id()
    due = db.notifications.find({"due_at": {"$lte": now}}, {"_id": 1, "claim": 1}).limit(batch * 2)
    ids = [d["_id"] async for d in due if d.get("claim") is None][:batch]
    if not ids:
        return []
    await db.notifications.update_many({"_id": {"$in": ids}, "claim": None},
                                       {"$set": {"claim": token,
                                                 "claim_until": now + timedelta(seconds=settings.claim_seconds)}})
    claimed = [d async for d in db.notifications.find({"_id": {"$in": ids}, "claim": token})]

    async def attempt(doc: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
        tracing.current.set(doc.get("traceparent"))  # this task's own context: its log lines name the trace
        attempts = doc["attempts"] + 1
        try:
            await _attempt(doc, http, settings)
        except Exception as raised:  # an unforeseen client error is one failed attempt, not a lost batch
            exc = raised if isinstance(raised, channels.DeliveryError) else channels.DeliveryError(
                f"{doc['channel']} send failed: {type(raised).__name__}")
            final = exc.permanent or attempts >= settings.max_attempts
            fields: dict[str, Any] = {"attempts": attempts, "last_error": exc.reason}
            emits: list[Emit] = []
            if final:
                fields.update(status="failed", failed_at=now)
                emits = _outcome_emits(doc, False, attempts, exc.reason)
                unset = {"claim": "", "claim_until": "", "due_at": ""}
            else:
                fields.update(status="retrying",
                              due_at=now + timedelta(seconds=backoff(attempts, settings.retry_base_seconds)))
                unset = {"claim": "", "claim_until": ""}
            return _outcome_update(doc, fields, unset, emits, now), Outcome(
                doc["channel"], doc["audience"], "failed" if final else "retried")
        fields = {"attempts": attempts, "status": "delivered", "delivered_at": now}
        return (_outcome_update(doc, fields, {"claim": "", "claim_until": "", "due_at": ""},
                                _outcome_emits(doc, True, attempts, None), now),
                Outcome(doc["channel"], doc["audience"], "delivered"))

    results = await asyncio.gather(*(attempt(doc) for doc in claimed))
    updates = [update for update, _ in results]
    with outbox.held(db.notifications, [doc["_id"] for doc in claimed]):
        written = await db.notifications.bulk_write(
            [UpdateOne({"_id": doc["_id"], "claim": token}, update)
             for doc, update in zip(claimed, updates, strict=True)], ordered=False)
        if written.matched_count == len(claimed):
            after = [apply_update(doc, update) for doc, update in zip(claimed, updates, strict=True)]
        else:
            # A claim expired under a slow batch and another dispatcher took the record: publish only what is stored.
            after = [d async for d in db.notifications.find({"_id": {"$in": [d["_id"] for d in claimed]},
                                                              "outbox.0": {"$exists": True}})]
        await outbox.flush_many(db.notifications, broker, after)
    outcomes = [outcome for _, outcome in results]
    for outcome in outcomes:
        on_outcome(outcome)
    return outcomes


def _outcome_update(doc: dict[str, Any], fields: dict[str, Any], unset: dict[str, str], emits: list[Emit],
                    now: datetime) -> dict[str, Any]:
    """The write recording one attempt, with the outcome event (if final) in the record's outbox."""
    # Deliveries run on a timer, outside the event's handler: the trace travels with the record.
    return outbox.stage({"$set": fields, "$unset": unset, "$inc": {"version": 1}},
                        outbox_items(SOURCE, emits, doc.get("traceparent"), now), now)


async def release_expired_claims(db: AsyncDatabase, now: datetime) -> None:
    """Records a crashed dispatcher had claimed become due again."""
    await db.notifications.update_many({"claim_until": {"$lt": now}}, {"$unset": {"claim": "", "claim_until": ""}})


async def flush_stale_outboxes(db: AsyncDatabase, broker: KafkaBroker, now: datetime) -> int:
    return await outbox.flush_stale(db.notifications, broker, now)


async def delivery_log(db: AsyncDatabase, appeal_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """The notifications of an appeal, oldest first, without message bodies' addresses."""
    projection = {"outbox": 0, "secret": 0, "payload": 0, "claim": 0}
    return [d async for d in db.notifications.find({"appeal_id": appeal_id}, projection)
            .sort("created_at", ASCENDING).limit(limit)]
