"""Intake's rules: durable, idempotent submission; status tokens; the company's answers. What companies and
channels read of an appeal is `read_model.py`'s."""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException
from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs.clock import Clock
from libs.config import City, RegistryConfig
from libs.contract import APPEALS_COMPANY, APPEALS_CONTACTS, APPEALS_SUBMITTED_V2, parse_event
from libs.deadlines import aware
from libs.envelopes import CloudEvent
from libs.events import AppealFiled, CompanyFeedback, CompanyInfoProvided
from libs.ids import new_id
from libs.kafka.publishing import encode, make_event, publish
from libs.kinds import AppealStatus, Channel, EventType
from libs.mongo import GroupedInserts
from services.intake import adopt, privacy, read_model
from services.intake.models import AppealIn
from services.intake.read_model import ACCEPTED

log = logging.getLogger(__name__)

SOURCE = "appeals/intake"
PENDING, SENT = "pending", "sent"
# An appeal record whose publish was not acknowledged: its caller got a 503, so nobody has its id yet.
UNSENT = "unsent"


@dataclass
class Backlog:
    """A consumer group's backlog as last measured, and how fast it drained since the measure before."""

    records: int | None = None
    drained_per_second: float = 0.0
    measured_at: float | None = None

    def measured(self, records: int | None, at: float) -> None:
        """Take a new measure at monotonic time `at` (None: none could be taken)."""
        if records is not None and self.records is not None and self.measured_at is not None and at > self.measured_at:
            # What the group read meanwhile is the fall in its backlog plus what arrived, unknown here: the fall
            # alone is a lower bound, which makes the wait asked of clients a generous one.
            self.drained_per_second = max(0.0, (self.records - records) / (at - self.measured_at))
        self.records, self.measured_at = records, at


def shed_wait(backlog: Backlog, limit: int, default_wait: int) -> int | None:
    """Seconds a channel should wait before submitting again, or None while the group keeps up.

    The wait is the time the group needs, at the rate it last drained, to get back to half the
    limit; between 1 s and a minute, and `default_wait` while it is not draining.
    """
    if not limit or backlog.records is None or backlog.records <= limit:
        return None
    if backlog.drained_per_second <= 0:
        return default_wait
    return min(60, max(1, math.ceil((backlog.records - limit / 2) / backlog.drained_per_second)))


def longest_wait(backlogs: Mapping[str, Backlog], limit: int, default_wait: int) -> tuple[int, str] | None:
    """The longest wait any group's backlog asks for, with that group; None while every group keeps up."""
    waits = [(wait, group) for group, backlog in backlogs.items() if (wait := shed_wait(backlog, limit, default_wait))]
    return max(waits) if waits else None


def busy_detail(group: str, records: int | None) -> str:
    """What a shed submission is told."""
    return (
        f"the platform is behind ({group} has {records} events to read); nothing was accepted, "
        "retry after Retry-After seconds"
    )


class BrokerUnavailable(Exception):
    """The broker did not acknowledge the write in time; the caller must retry."""


class AnswerRefused(Exception):
    """The appeal is not waiting for this answer (409); `detail` says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ChannelRefReused(HTTPException):
    """The channel_ref names an earlier appeal whose body was another (409): that appeal and its token stay its own.

    An HTTPException, so that every door that submits (the API, Open311) answers 409 and never 500.
    """

    def __init__(self) -> None:
        super().__init__(409, "channel_ref was already used for another appeal with a different body; use a new one")


@dataclass(frozen=True)
class Submission:
    appeal_id: str
    status: str
    created: bool
    token_version: int = 0  # a repeat of an appeal whose link was sent again gets the token of the current version


async def ensure_indexes(db: AsyncDatabase) -> None:
    """Idempotency is a unique index, not a check-then-insert."""
    await db.appeals.create_index(
        [("channel", ASCENDING), ("channel_ref", ASCENDING)], unique=True, name="channel_ref_unique"
    )
    await db.appeals.create_index([("submitted_at", ASCENDING)], name="submitted_at")
    # The erasure job's query, and an admin's erasure of one company's contacts.
    await db.appeals.create_index([("closed_at", ASCENDING)], name="closed_at", sparse=True)
    await db.appeals.create_index([("uscc", ASCENDING)], name="uscc", sparse=True)


def status_token(secret: str, appeal_id: str, *, version: int) -> str:
    """A token that opens `appeal_id` while its token version is `version`, and nothing else.

    HMAC over the appeal id and the version. Version 0 signs the id alone, as every token was made before appeals
    had versions, so the links already sent for an appeal that has none keep working until its first lost-link
    request (bump_token) moves it to 1.
    """
    message = appeal_id if version == 0 else f"{appeal_id}\x00{version}"
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def token_version(record: Mapping[str, Any]) -> int:
    """The token version of an appeal's record; 0 for one written before records kept it."""
    return int(record.get("token_version") or 0)


def token_opens(secret: str, record: Mapping[str, Any], token: str | None) -> bool:
    """Whether `token` opens the appeal of `record` now: issued for its id at its current token version."""
    expected = status_token(secret, record["_id"], version=token_version(record))
    return bool(token) and hmac.compare_digest(expected, token or "")


async def bump_token(db: AsyncDatabase, appeal_id: str) -> int:
    """Move the appeal to its next token version, voiding every token and link issued before; the version now.

    Two statements, no findAndModify: of concurrent bumps each reads a version at least its own, so every link
    sent after a bump is one of the newest version and works.
    """
    await db.appeals.update_one({"_id": appeal_id}, {"$inc": {"token_version": 1}})
    record = await db.appeals.find_one({"_id": appeal_id}, {"token_version": 1})
    return token_version(record or {})


def refusals(body: AppealIn, city: City, registry: RegistryConfig) -> dict[str, str]:
    """What the city's configuration refuses in an appeal, by field (dotted path): a district, department or liaison
    it does not have (the OpenAPI document lists those it has). The district becomes a label and a counter's name
    downstream, so free text stops here."""
    out = {}
    if problem := city.unknown_district(body.enterprise.district):
        out["enterprise.district"] = problem
    if body.department and city.cannot_choose(body.department):
        out["department"] = city.cannot_choose(body.department) or ""
    if body.taken_by is not None and registry.find_liaison(body.taken_by) is None:
        out["taken_by"] = f"{body.taken_by!r} is not a liaison of config/registry.yaml"
    return out


def beyond_scope(body: AppealIn, channel: str) -> str | None:
    """What in an appeal the channel's key may not say (a 403: another channel's key could), or None."""
    if body.taken_by is not None and channel != Channel.staff_visit.value:
        return f"only a staff visit names the liaison who took it (taken_by), not a {channel} appeal"
    return None


def follow_link(template: str, secret: str, appeal_id: str, *, version: int = 0) -> str | None:
    """The company's page of its appeal, with the token that opens it at `version` (a new appeal's is 0); None when
    no page is configured."""
    if not template:
        return None
    return template.format(appeal_id=appeal_id, token=status_token(secret, appeal_id, version=version))


def build_submitted(appeal_id: str, channel: str, body: AppealIn, city: City, clock: Clock) -> CloudEvent[AppealFiled]:
    """The appeal.submitted.v2 event for a new appeal, in the request's trace: no contact, nothing that opens it."""
    data = AppealFiled(
        appeal_id=appeal_id,
        channel=Channel(channel),
        channel_ref=body.channel_ref,
        enterprise=body.enterprise,
        category=body.category,
        size_band=city.size_band(body.enterprise.employees),
        title=body.title,
        description=body.description,
        attachments=body.attachments,
        flags=sorted(set(body.flags)),
        department=body.department,
        taken_by=body.taken_by,
        submitted_at=clock.now(),
    )
    return make_event(SOURCE, EventType.appeal_submitted_v2, appeal_id, data)


def stored_events(record: Mapping[str, Any]) -> list[tuple[str, CloudEvent[Any]]]:
    """What a record says to publish, in order: its contact, then its submission (one written before contacts had a
    topic of their own holds its appeal.submitted.v1, split the way adopt.py moves the topic)."""
    event = parse_event(record["event"].encode())
    if event.type == EventType.appeal_submitted:
        filed, contact = adopt.split(event)
        return [(APPEALS_CONTACTS, contact), (APPEALS_SUBMITTED_V2, filed)]
    out: list[tuple[str, CloudEvent[Any]]] = []
    if record.get("contact_event"):
        out.append((APPEALS_CONTACTS, parse_event(record["contact_event"].encode())))
    return [*out, (APPEALS_SUBMITTED_V2, event)]


async def publish_acknowledged(broker: KafkaBroker, topic: str, event: CloudEvent, timeout: float) -> None:
    """Publish with acks=all within `timeout`, or raise BrokerUnavailable."""
    try:
        await asyncio.wait_for(publish(broker, topic, event), timeout=timeout)
    except Exception as exc:  # any broker failure means the write is not acknowledged
        log.warning(
            "broker did not acknowledge an event", extra={"appeal_id": event.subject, "error": type(exc).__name__}
        )
        raise BrokerUnavailable() from exc


def body_digest(key: str, body: AppealIn) -> str:
    """A keyed digest of what an appeal says: the same for a retry of the same body, whatever the order of its keys,
    its flags or the form of its phone; another for any other body.

    Keyed, so that a record whose contact was erased does not keep it guessable from the digest.
    """
    content = body.model_dump(mode="json", exclude={"channel_ref"})
    content["flags"] = sorted(set(content["flags"]))
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def stored_digest(key: str, record: dict[str, Any]) -> str | None:
    """The body digest of a stored appeal; for one stored before digests were kept, rebuilt from its event."""
    if "body_digest" in record:
        return str(record["body_digest"])
    try:
        data = json.loads(record["event"])["data"]
        return body_digest(key, AppealIn.model_validate({k: data.get(k) for k in AppealIn.model_fields if k in data}))
    except (KeyError, TypeError, ValueError, ValidationError):  # no longer a valid body: no retry can be it
        return None


async def submit(
    db: AsyncDatabase,
    broker: KafkaBroker,
    city: City,
    clock: Clock,
    channel: str,
    body: AppealIn,
    *,
    publish_timeout: float,
    inserts: GroupedInserts,
    body_key: str,
    link: Callable[[str], str | None] | None = None,
) -> Submission:
    """Make an appeal durable in Kafka exactly once per (channel, channel_ref).

    The record is written first as `pending` with the exact event bytes (together
    with concurrent ones, through `inserts`), then the event is published with
    acks=all; if that fails the record is marked `unsent` and the caller gets 503.
    A retry of the same channel_ref finds the record and, until it is `accepted`,
    republishes the same event (same id), which every consumer deduplicates, so a
    timeout never makes a second appeal. An intake that dies between the insert and
    the publish leaves a `pending` record; `publish_stranded` sends it at the next
    start. The record turns `accepted` with the appeal's first lifecycle event (see
    apply_lifecycle). Marking success here instead cost the database a second write
    per appeal, as much as the insert itself; a failure is rare, so marking that
    costs nothing in the usual case.

    A repeat is a retry only if its body is the first one's (the record keeps a digest of it, keyed with
    `body_key`): a channel_ref replayed with another body raises ChannelRefReused, and gets neither the
    earlier appeal nor its token, nor a new appeal in its place.
    """
    digest = body_digest(body_key, body)
    appeal_id = new_id()
    event = build_submitted(appeal_id, channel, body, city, clock)
    contact = privacy.contact_event(
        appeal_id, body.contact, link(appeal_id) if link else None, version=0, traceparent=event.traceparent
    )
    record: dict[str, Any] = {
        "_id": appeal_id,
        "channel": channel,
        "channel_ref": body.channel_ref,
        "body_digest": digest,
        "state": PENDING,
        "event": encode(event).decode(),
        "contact_event": encode(contact).decode(),
        "contact": body.contact.model_dump(),
        "contact_version": 0,
        "uscc": body.enterprise.uscc,
        "category": body.category.value,
        "title": body.title,
        "description": body.description,
        "attachments": body.attachments,
        "traceparent": event.traceparent,
        "status": "submitted",
        "sequence": 0,
        "submitted_at": event.data.submitted_at,
        "updated_at": event.data.submitted_at,
        "timeline": [],
        "token_version": 0,
    }
    try:
        # Insert first and let the unique index find repeats: a new appeal costs one write, no read.
        await inserts.insert(record)
        existing, created = record, True
    except DuplicateKeyError:
        found = await db.appeals.find_one({"channel": channel, "channel_ref": body.channel_ref})
        created = False
        if found is None:  # the clash was on another index; nothing to retry into
            raise
        if not hmac.compare_digest(stored_digest(body_key, found) or "", digest):
            raise ChannelRefReused() from None
        existing = found
    if existing["state"] != ACCEPTED:
        try:
            # The contact first: whoever reads the submission finds its contact there before it.
            for topic, owed in stored_events(existing):
                await publish_acknowledged(broker, topic, owed, publish_timeout)
        except BrokerUnavailable:
            await db.appeals.update_one({"_id": existing["_id"], "state": PENDING}, {"$set": {"state": UNSENT}})
            raise
        if existing["state"] == UNSENT:
            await db.appeals.update_one({"_id": existing["_id"], "state": UNSENT}, {"$set": {"state": PENDING}})
    return Submission(existing["_id"], existing.get("status", "submitted"), created, token_version(existing))


async def publish_stranded(
    db: AsyncDatabase, broker: KafkaBroker, since: datetime, before: datetime, publish_timeout: float, batch: int = 100
) -> int:
    """Publish the `pending` appeals submitted in [since, before) again; returns how many.

    A pending record may be one whose intake died between the insert and the publish:
    durable here, unknown to Kafka, and no 202 named it. Run at start, this publishes
    them, so a company whose channel never retried still has its appeal routed. The
    rest were published already; their copies keep the event id and consumers drop
    them. `unsent` records stay as they are: their caller was told nothing was accepted.
    """
    query = {"submitted_at": {"$gte": since, "$lt": before}, "state": PENDING}
    cursor = db.appeals.find(query, {"event": 1, "contact_event": 1}, batch_size=batch)
    published = 0
    while records := await cursor.to_list(batch):

        async def publish_record(record: dict[str, Any]) -> None:
            for topic, owed in stored_events(record):
                await publish_acknowledged(broker, topic, owed, publish_timeout)

        await asyncio.gather(*[publish_record(r) for r in records])
        published += len(records)
    if published:
        log.info("stranded appeals published", extra={"count": published})
    return published


# What each company answer needs the appeal to be waiting for, and the event it becomes.
_ANSWERS = {
    "info": (
        AppealStatus.info_requested,
        EventType.company_info_provided,
        "no information was requested; the appeal is {status}",
        "the information for this request was already sent; the department has it",
    ),
    "feedback": (
        AppealStatus.resolved,
        EventType.company_feedback,
        "feedback is taken once the appeal is resolved; it is {status}",
        "feedback on this resolution was already given",
    ),
}


async def answer(
    db: AsyncDatabase,
    broker: KafkaBroker,
    clock: Clock,
    record: dict[str, Any],
    kind: str,
    data: CompanyInfoProvided | CompanyFeedback,
    *,
    publish_timeout: float,
) -> str:
    """Publish the company's answer once per request (info) or per resolution (feedback); its event id.

    The answer is tied to the lifecycle sequence it answers. A slot in the record is
    claimed first with the event's bytes (of concurrent answers one wins, the others
    get 409), then the event is published with acks=all, then the slot is marked sent.
    If that publish was never acknowledged, the next answer first finishes the earlier
    one, as it was and under its id (it may have reached Kafka after all), so the
    department gets exactly one answer and a 202 never covers words that were dropped.
    """
    expected, event_type, wrong_status, already = _ANSWERS[kind]
    appeal_id, sequence = record["_id"], record.get("sequence", 0)
    if record["status"] != expected:
        raise AnswerRefused(wrong_status.format(status=record["status"]))
    path, now = f"answers.{kind}", clock.now()
    slot = record.get("answers", {}).get(kind) or {}
    if slot.get("seq") == sequence:
        if slot["state"] == SENT:
            raise AnswerRefused(already)
        if now - aware(slot["claimed_at"]) < timedelta(seconds=2 * publish_timeout):
            raise AnswerRefused("an answer is being sent right now; read the status in a few seconds")
        taken = await db.appeals.update_one(
            {
                "_id": appeal_id,
                f"{path}.id": slot["id"],
                f"{path}.state": PENDING,
                f"{path}.claimed_at": slot["claimed_at"],
            },
            {"$set": {f"{path}.claimed_at": now}},
        )
        if taken.matched_count == 0:
            raise AnswerRefused("an answer is being sent right now; read the status in a few seconds")
        earlier = parse_event(slot["event"].encode())
        await _send(db, broker, path, earlier, publish_timeout)
        if earlier.data.model_dump() == data.model_dump():
            return earlier.id  # this was a retry of the same answer
        raise AnswerRefused(already)
    event = make_event(SOURCE, event_type, appeal_id, data, traceparent=record.get("traceparent"))
    claimed = await db.appeals.update_one(
        {"_id": appeal_id, "status": expected.value, "sequence": sequence, f"{path}.seq": {"$ne": sequence}},
        {
            "$set": {
                path: {
                    "id": event.id,
                    "seq": sequence,
                    "state": PENDING,
                    "claimed_at": now,
                    "event": encode(event).decode(),
                }
            }
        },
    )
    if claimed.matched_count == 0:  # another answer took the slot, or the appeal moved on meanwhile
        latest = await read_model.find_appeal(db, appeal_id) or record
        raise AnswerRefused(wrong_status.format(status=latest["status"]) if latest["status"] != expected else already)
    await _send(db, broker, path, event, publish_timeout)
    return event.id


async def _send(db: AsyncDatabase, broker: KafkaBroker, path: str, event: CloudEvent, publish_timeout: float) -> None:
    await publish_acknowledged(broker, APPEALS_COMPANY, event, publish_timeout)
    await db.appeals.update_one({"_id": event.subject, f"{path}.id": event.id}, {"$set": {f"{path}.state": SENT}})
