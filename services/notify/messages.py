"""One-time codes and lost links for companies: sent by SMS at once, outside the notices."""

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from libs.envelopes import CloudEvent
from libs.events import CompanyMessage
from libs.kinds import EventType
from services.notify import channels
from services.notify.book import NotifyBook

log = logging.getLogger(__name__)


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
