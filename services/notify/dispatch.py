"""The dispatcher: claims due notices, sends their due deliveries, and records every outcome.

Like sla's scheduler, it claims the notices due for an attempt, sends their due
deliveries side by side, publishes each final outcome's
`notification.delivered/failed.v1` event, then records the outcomes in one write
of the notice. A crash before that write leaves the claim to expire and the
delivery is sent again under the same notification id (webhook
`X-Appeals-Delivery`, e-mail Message-ID, provider `client_ref`), which receivers
use to drop the copy; its outcome event keeps its id too (`outcome_event_id`), so
consumers drop that copy as well. The send itself is at least once, so the event
needs no outbox of its own.
"""

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from libs import claims, outbox, tracing
from libs.contract import NOTIFY_DELIVERIES, dead_letter_topic
from libs.deadlines import aware
from libs.events import NotificationOutcome
from libs.ids import stable_id
from libs.kinds import EventType
from libs.outbox import Emit, outbox_items
from services.notify import channels
from services.notify.notices import UNSETTLED, Ready, schedule

log = logging.getLogger(__name__)

SOURCE = "appeals/notify"


@dataclass
class AttemptResult:
    channel: str
    audience: str
    outcome: str


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
