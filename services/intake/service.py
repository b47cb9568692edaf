"""Intake's rules: durable, idempotent submission; status tokens; the status read model."""

import asyncio
import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs.clock import Clock
from libs.config import City
from libs.events import AppealChanged, AppealSubmitted, CloudEvent, EventType
from libs.ids import new_id
from libs.kafka import encode, make_event, publish
from libs.topics import APPEALS_SUBMITTED
from services.intake.models import AppealIn

log = logging.getLogger(__name__)

SOURCE = "appeals/intake"
PENDING, ACCEPTED = "pending", "accepted"


class BrokerUnavailable(Exception):
    """The broker did not acknowledge the write in time; the caller must retry."""


@dataclass(frozen=True)
class Submission:
    appeal_id: str
    status: str
    created: bool


async def ensure_indexes(db: AsyncDatabase) -> None:
    """Idempotency is a unique index, not a check-then-insert."""
    await db.appeals.create_index([("channel", ASCENDING), ("channel_ref", ASCENDING)], unique=True,
                                  name="channel_ref_unique")


def status_token(secret: str, appeal_id: str) -> str:
    """A token that opens `appeal_id` and nothing else."""
    digest = hmac.new(secret.encode(), appeal_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def token_opens(secret: str, appeal_id: str, token: str | None) -> bool:
    """Whether `token` was issued for `appeal_id`."""
    return bool(token) and hmac.compare_digest(status_token(secret, appeal_id), token or "")


def build_submitted(appeal_id: str, channel: str, body: AppealIn, city: City, clock: Clock,
                    traceparent: str | None) -> CloudEvent[AppealSubmitted]:
    """The appeal.submitted.v1 event for a new appeal."""
    data = AppealSubmitted(
        appeal_id=appeal_id, channel=channel, channel_ref=body.channel_ref,
        enterprise=body.enterprise, contact=body.contact, category=body.category,
        size_band=city.size_band(body.enterprise.employees), title=body.title, description=body.description,
        attachments=body.attachments, flags=sorted(set(body.flags)), submitted_at=clock.now())
    return make_event(SOURCE, EventType.appeal_submitted, appeal_id, data, traceparent=traceparent)


async def submit(db: AsyncDatabase, broker: KafkaBroker, city: City, clock: Clock, channel: str,
                 body: AppealIn, *, publish_timeout: float, traceparent: str | None = None) -> Submission:
    """Make an appeal durable in Kafka exactly once per (channel, channel_ref).

    The record is written first as `pending` with the exact event bytes; the event
    is published with acks=all; only then is the record `accepted`. A retry of the
    same channel_ref finds the record and republishes the same event (same id),
    which every consumer deduplicates, so a timeout never makes a second appeal.
    """
    existing = await db.appeals.find_one({"channel": channel, "channel_ref": body.channel_ref})
    created = False
    if existing is None:
        appeal_id = new_id()
        event = build_submitted(appeal_id, channel, body, city, clock, traceparent)
        record = {
            "_id": appeal_id, "channel": channel, "channel_ref": body.channel_ref, "state": PENDING,
            "event": encode(event).decode(), "category": body.category.value, "title": body.title,
            "status": "submitted", "sequence": 0, "submitted_at": event.data.submitted_at,
            "updated_at": event.data.submitted_at, "timeline": [],
        }
        try:
            await db.appeals.insert_one(record)
            existing, created = record, True
        except DuplicateKeyError:
            existing = await db.appeals.find_one({"channel": channel, "channel_ref": body.channel_ref})
    if existing["state"] == PENDING:
        event = CloudEvent[AppealSubmitted].model_validate_json(existing["event"])
        try:
            await asyncio.wait_for(publish(broker, APPEALS_SUBMITTED, event), timeout=publish_timeout)
        except Exception as exc:  # any broker failure means the write is not acknowledged
            log.warning("broker did not acknowledge a submission", extra={"appeal_id": existing["_id"],
                                                                          "error": type(exc).__name__})
            raise BrokerUnavailable() from exc
        await db.appeals.update_one({"_id": existing["_id"], "state": PENDING}, {"$set": {"state": ACCEPTED}})
    return Submission(existing["_id"], existing.get("status", "submitted"), created)


async def find_appeal(db: AsyncDatabase, appeal_id: str) -> dict[str, Any] | None:
    """The read-model record of an appeal that was accepted (pending ones are not yet appeals)."""
    return await db.appeals.find_one({"_id": appeal_id, "state": ACCEPTED}, {"event": 0})


async def apply_lifecycle(db: AsyncDatabase, event: CloudEvent[AppealChanged]) -> None:
    """Fold a lifecycle event into the status read model; replays change nothing."""
    data = event.data
    entry = {"event_id": event.id, "type": event.type, "status": data.status.value, "time": event.time,
             "department": data.department, "note": data.note, "guidance": data.guidance,
             "resolution": data.resolution, "reason": data.reason}
    await db.appeals.update_one(
        {"_id": data.appeal_id, "timeline.event_id": {"$ne": event.id}},
        {"$push": {"timeline": {"$each": [entry], "$sort": {"time": 1}}},
         # A lifecycle event proves the submission reached Kafka, even if intake answered 503.
         "$set": {"state": ACCEPTED}})
    current: dict[str, Any] = {"status": data.status.value, "sequence": data.sequence,
                               "department": data.department, "cohandlers": data.cohandlers,
                               "updated_at": event.time}
    if data.policies:
        current["policies"] = [p.model_dump() for p in data.policies]
    for field in ("resolution", "guidance", "reason"):
        if getattr(data, field):
            current[field] = getattr(data, field)
    if data.policy_refs:
        current["policy_refs"] = data.policy_refs
    await db.appeals.update_one({"_id": data.appeal_id, "sequence": {"$lt": data.sequence}}, {"$set": current})
