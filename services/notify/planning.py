"""The planner: every notification an event owes, stored as its notice before the event is committed.

Who hears what is rules.py's; this module reads what the rules need (the appeal
as notify keeps it, staff and liaison addresses), renders each message, holds a
non-urgent staff message for office or quiet hours, and inserts one notice per
event. A redelivered event finds its notice there and adds nothing.
"""

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs.calendars import parse_target
from libs.config import City
from libs.contract import parse_event
from libs.envelopes import CloudEvent
from libs.kafka.publishing import encode
from libs.kinds import EventType
from services.notify import adopt, copies, rules
from services.notify.book import Memory, NotifyBook
from services.notify.notices import Ready, new_notice
from services.notify.rules import Address, Planned

E = EventType
WAIT_FOR_SUBMISSION = timedelta(minutes=5)


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
    await copies.remember_appeals(db, [e for e in events if e.type in submitted], memory)
    await copies.remember_contacts(db, [e for e in events if e.type == EventType.appeal_contact], memory)
    await copies.erase_contacts(db, [e.subject for e in events if e.type == EventType.appeal_contact_erased], memory)
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
    departments = {
        d
        for e in events
        for d in rules.departments_told(
            e.type, getattr(e.data, "department", None), book.city, getattr(e.data, "previous_department", None)
        )
    }
    staff = await _staff(db, book.city, departments, memory, city_supervisor=any(e.type == E.sla_urged for e in events))
    liaisons = await _liaisons(db, book, [e for e in events if e.type in rules.LIAISON_TEMPLATES], appeals, memory)
    staff.update({f"liaison:{liaison_id}": address for liaison_id, address in liaisons.values()})
    known = await adopt.recorded_before(db, events) if memory.records_left else set()
    notices, early = [], []
    for event in events:
        appeal = appeals.get(event.subject)
        if not _reachable(appeal) and event.type in rules.COMPANY_TEMPLATES and now - event.time < WAIT_FOR_SUBMISSION:
            early.append(event)
            continue
        if event.id in known:
            continue
        deliveries = deliveries_owed(book, event, appeal, staff, now, status_url, liaisons.get(event.subject))
        if deliveries:
            notices.append(
                new_notice(
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


def _expected(book: NotifyBook, profile: str | None, start: datetime, department: str | None) -> datetime:
    target = parse_target(book.sla.profile(profile).resolution)
    calendar = book.calendar_for(department)
    return calendar.add(target, start, calendar.budget(target))


def template_context(
    book: NotifyBook, event: CloudEvent, appeal: dict[str, Any] | None, status_url: str
) -> dict[str, Any]:
    """What every template may read of an event and its appeal."""
    data = event.data.model_dump(mode="python")
    department = data.get("department")
    submitted = data.get("submitted_at") or (appeal or {}).get("submitted_at") or event.time
    office = book.city.department(book.city.coordinating_office)
    contributed = event.type == E.appeal_contributed
    part, part_cut = rules.quoted(data.get("note")) if contributed else ("", False)

    def local(at: datetime | None) -> str:
        return rules.local_time(at, book.timezone) if at else ""

    def name(code: str | None) -> str:
        """A department's name as people read it ("" for none, the code for one the city does not know)."""
        dept = book.city.department(code) if code else None
        return dept.name if dept else (code or "")

    return {
        "appeal_id": event.subject,
        "title": (appeal or {}).get("title", ""),
        "company_name": (appeal or {}).get("company_name", ""),
        "category": data.get("category") or (appeal or {}).get("category", ""),
        "channel": (appeal or {}).get("channel", ""),
        "department_name": name(department),
        # The lead before a transfer or an overrule (the department withdrawn), and the department a transfer
        # request suggests or, on a send-back, the one the appeal went to.
        "previous_department_name": name(data.get("previous_department")),
        "target_department_name": name(data.get("target_department")),
        "role": "lead",
        "sla_profile": data.get("sla_profile") or "",
        "guidance": data.get("guidance") or "",
        "note": data.get("note") or "",
        "resolution": data.get("resolution") or "",
        "policies": [p["title"] for p in data.get("policies", [])],
        "expected_at": local(_expected(book, data.get("sla_profile"), submitted, department)),
        # The link intake made, with the token that opens the page; the configured page, without one, otherwise.
        "status_url": (appeal or {}).get("follow_url") or status_url.format(appeal_id=event.subject),
        "clock": data.get("clock", ""),
        "level": data.get("level", ""),
        "target": data.get("target", ""),
        # Formatted here, and None as "": the rules lay the event's own data (UTC datetimes, None) under this context.
        "due_at": local(data.get("due_at")),
        "previous_due_at": local(data.get("previous_due_at")),
        "reason": data.get("reason") or "",
        "clerk": data.get("clerk") or "",
        # An overrule: since when the department the appeal returns to has had it (its response clock runs from then).
        "since": local(data.get("since")),
        "office_name": office.name if office else book.city.coordinating_office,
        # An urging level (sla.urged.v1): which, the due time before an extension, and how long overdue.
        "urge_level": data.get("urge_level") or 0,
        "original_due_at": local(data.get("original_due_at")),
        **overdue(data.get("due_at"), data.get("fired_at") or event.time),
        # Whether the recipient is of the department held to account (the rules say, per recipient).
        "own": True,
        # A co-handler's part (appeal.contributed.v1): which co-handler (the event's actor; its department is the
        # lead), the part as quoted and whether it was cut, its https links, and the appeal's status then.
        "cohandler_name": name(data.get("actor")) if contributed else "",
        "part": part,
        "part_cut": part_cut,
        "links": rules.links(data.get("attachments")),
        "status": str(data.get("status") or ""),
        # A redo (appeal.reopened.v1): how many the appeal has had, and who found the answer unsatisfied.
        "redo_count": data.get("redo_count") or 0,
        "by_company": data.get("actor") == "company",
    }


def overdue(due_at: datetime | None, at: datetime) -> dict[str, int]:
    """How long past `due_at` it is at `at`, in calendar days, hours and minutes (all 0 without a due time).

    `at` is the event's (when sla fired the level), so a replay reads the same text."""
    late = max(at - due_at, timedelta(0)) if due_at else timedelta(0)
    minutes = int(late.total_seconds()) // 60
    return {
        "overdue_days": minutes // (24 * 60),
        "overdue_hours": minutes // 60 % 24,
        "overdue_minutes": minutes % 60,
    }


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


async def _staff(
    db: AsyncDatabase, city: City, departments: set[str], memory: Memory, city_supervisor: bool = False
) -> dict[str, rules.Address]:
    """The addresses of the departments' staff, and of the city's supervisor when an urging level may tell it."""
    recipients = [f"{code}:{role}" for code in departments for role in rules.STAFF_ROLES]
    if city_supervisor:
        recipients.append(rules.CITY_SUPERVISOR)
    if not recipients:
        return {}
    subs = await _subscriptions(db, recipients, memory)
    staff = {}
    for recipient in recipients:
        if recipient == rules.CITY_SUPERVISOR:
            staff[recipient] = rules.staff_address(city.city_supervisor, subs.get(recipient))
            continue
        code, role = recipient.split(":")
        dept = city.department(code)
        staff[recipient] = rules.staff_address(getattr(dept, role, None) if dept else None, subs.get(recipient))
    return staff


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


def deliveries_owed(
    book: NotifyBook,
    event: CloudEvent,
    appeal: dict[str, Any] | None,
    staff: dict[str, Address],
    now: datetime,
    status_url: str,
    liaison: tuple[str, Address] | None = None,
) -> list[dict[str, Any]]:
    """The deliveries one event owes, ids fixed by (event, recipient, channel); what it reads is read before."""
    company = None
    if appeal and appeal.get("contact"):
        contact = appeal["contact"]
        company = Address(
            email=contact.get("email"), phone=contact.get("phone"), wechat_openid=contact.get("wechat_openid")
        )
    data = event.data.model_dump(mode="python")
    context = template_context(book, event, appeal, status_url)
    planned = rules.plan(event.type, data, {"context": context}, book.city, staff, company, liaison, book.ladder)
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
