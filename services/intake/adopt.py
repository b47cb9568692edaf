"""One-off moves of intake's data to a newer layout, each saying when it can go.

`appeals.submitted.v1` carried each appeal's contact and the company's link on a topic kept for
good. Its events move to `appeals.submitted.v2` (the same event ids, so no reader counts or sends
anything twice) with each contact on `appeals.contacts.v1`, and the old topic is emptied. Delete
this module once every deployment has run `python -m services.intake adopt-submitted` (the
embedded stack runs it at every start, and it finds nothing to do once done).
"""

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from libs.contract import APPEALS_CONTACTS, APPEALS_SUBMITTED, APPEALS_SUBMITTED_V2, parse_event
from libs.envelopes import CloudEvent
from libs.events import AppealContact, AppealFiled, AppealSubmitted
from libs.kafka.access import KafkaAccess
from libs.kafka.publishing import encode, envelope_of
from libs.kafka_admin import partitions_of
from libs.kinds import EventType

log = logging.getLogger(__name__)


def split(event: CloudEvent[AppealSubmitted]) -> tuple[CloudEvent[AppealFiled], CloudEvent[AppealContact]]:
    """An appeal.submitted.v1 as what now says the same: the v2 submission under the same id, and the contact
    with the link it carried (its own id, derived, so moving twice publishes nothing new)."""
    data = event.data
    facts = {name: getattr(data, name) for name in AppealFiled.model_fields}
    common: dict[str, Any] = {"source": event.source, "subject": event.subject, "time": event.time}
    filed = envelope_of(AppealFiled)(
        **common,
        id=event.id,
        type=EventType.appeal_submitted_v2,
        traceparent=event.traceparent,
        data=AppealFiled(**facts),
    )
    contact = envelope_of(AppealContact)(
        **common,
        id=f"{event.id}-contact",
        type=EventType.appeal_contact,
        traceparent=event.traceparent,
        data=AppealContact(appeal_id=data.appeal_id, contact=data.contact, follow_url=data.follow_url, version=0),
    )
    return filed, contact


async def adopt_submitted(admin: KafkaAccess) -> int:
    """Move every event of appeals.submitted.v1 to appeals.submitted.v2 and appeals.contacts.v1, then empty it; how
    many moved. As Kafka's admin: no service may delete records. (No contact was ever erased before: erasure
    came with the move.)"""
    partitions = await partitions_of(admin, [APPEALS_SUBMITTED])
    consumer = AIOKafkaConsumer(**admin.client_options(), enable_auto_commit=False, client_id="appeals-adopt")
    producer = AIOKafkaProducer(**admin.producer_options("appeals-adopt"))
    await consumer.start()
    await producer.start()
    moved = 0
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        todo = [tp for tp in partitions if starts[tp] < ends[tp]]
        if not todo:
            return 0
        for tp in todo:
            consumer.seek(tp, starts[tp])
        while any([await consumer.position(tp) < ends[tp] for tp in todo]):
            for records in (await consumer.getmany(*todo, timeout_ms=1000)).values():
                for record in records:
                    moved += await _move(producer, record.value)
        deleting = AIOKafkaAdminClient(**admin.client_options(), client_id="appeals-adopt")
        await deleting.start()
        try:
            await deleting.delete_records({tp: RecordsToDelete(ends[tp]) for tp in todo})
        finally:
            await deleting.close()
        log.info("appeals.submitted.v1 moved and emptied", extra={"events": moved})
        return moved
    finally:
        await producer.stop()
        await consumer.stop()


async def _move(producer: AIOKafkaProducer, value: bytes | None) -> int:
    try:
        event = parse_event(value or b"", APPEALS_SUBMITTED)
    except ValueError:
        return 0  # unreadable: its consumers put it on the .dlq long ago
    filed, contact = split(event)
    await producer.send_and_wait(APPEALS_CONTACTS, encode(contact), key=event.subject.encode())
    await producer.send_and_wait(APPEALS_SUBMITTED_V2, encode(filed), key=event.subject.encode())
    return 1
