"""Kafka wiring: broker factory, CloudEvent publishing, consumers that dead-letter bad input."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from libs.events import CloudEvent, parse_event
from libs.settings import ServiceSettings
from libs.topics import dead_letter_topic

log = logging.getLogger(__name__)

EventHandler = Callable[[CloudEvent[Any]], Awaitable[None]]

# After a failed effect (database down, broker hiccup) the message is rewound and
# retried; this pause keeps a dead dependency from turning into a busy loop.
RETRY_PAUSE_SECONDS = 1.0


def make_broker(settings: ServiceSettings, registry: CollectorRegistry) -> KafkaBroker:
    """A broker whose publishes wait for every in-sync replica (acks=all), with Prometheus metrics."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        client_id=f"appeals-{settings.service_name}",
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name)],
        graceful_timeout=10.0,
        logger=logging.getLogger(f"faststream.{settings.service_name}"),
    )


def encode(event: CloudEvent[Any]) -> bytes:
    """The structured-mode JSON bytes of an event."""
    return event.model_dump_json(exclude_none=True).encode()


async def publish(broker: KafkaBroker, topic: str, event: CloudEvent[Any]) -> None:
    """Publish an event keyed by its subject (the appeal id), so one appeal's events stay in order."""
    await broker.publish(
        encode(event),
        topic=topic,
        key=event.subject.encode(),
        headers={"content-type": "application/cloudevents+json", "ce_type": event.type},
    )


def make_event(source: str, type_: str, subject: str, data: BaseModel,
               traceparent: str | None = None, **kwargs: Any) -> CloudEvent[Any]:
    """Wrap `data` in a CloudEvent from `source` (e.g. "appeals/router")."""
    return CloudEvent[type(data)](source=source, type=type_, subject=subject, data=data,  # type: ignore[misc]
                                  traceparent=traceparent, **kwargs)


async def dead_letter(broker: KafkaBroker, message: KafkaMessage, reason: str) -> None:
    """Copy the original bytes to the topic's `.dlq`, with the reason in headers."""
    record = message.raw_message
    log.warning("dead-lettered a message", extra={"topic": record.topic, "offset": record.offset,
                                                   "reason": reason[:500]})
    await broker.publish(
        record.value,
        topic=dead_letter_topic(record.topic),
        key=record.key,
        headers={
            "dlq-reason": reason[:2000],
            "dlq-topic": record.topic,
            "dlq-partition": str(record.partition),
            "dlq-offset": str(record.offset),
        },
    )


def subscribe(broker: KafkaBroker, settings: ServiceSettings, topics: Iterable[str], handler: EventHandler) -> None:
    """Feed validated events of `topics` to `handler`; commit only after it returns.

    A message that cannot be parsed or validated goes to `<topic>.dlq` and is
    committed. An exception from `handler` rewinds the partition so the message is
    redelivered: handlers must be idempotent. Each handler has its own consumer
    group (`router.submitted`), so a slow handler never stalls another's rebalance.
    """
    group = f"{settings.consumer_group}.{handler.__name__.removeprefix('on_')}"

    @broker.subscriber(*topics, group_id=group, auto_offset_reset="earliest",
                       ack_policy=AckPolicy.NACK_ON_ERROR, title=f"{group}:{handler.__name__}",
                       description=handler.__doc__)
    async def consume(message: KafkaMessage = Context("message")) -> None:
        try:
            event = parse_event(message.body)
        except (ValidationError, ValueError) as exc:
            await dead_letter(broker, message, str(exc))
            return
        try:
            await handler(event)
        except Exception:
            log.exception("handler failed; the message will be retried",
                          extra={"event_type": event.type, "event_id": event.id})
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
            raise


async def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int = 4) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name in dict.fromkeys(topics) if name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()
