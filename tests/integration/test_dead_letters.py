"""A record whose handler keeps failing goes to its topic's .dlq and the partition moves on; an outage never
sends anything there; `python -m libs.kafka redrive` puts dead letters back. On the real broker."""

import asyncio
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from pymongo.errors import AutoReconnect

from libs.contract import Consumer, dead_letter_topic
from libs.envelopes import ActionRejectedEvent, AssignmentCreatedEvent, AssignmentWithdrawnEvent, SlaAlertEvent
from libs.events import ActionRejected
from libs.ids import new_id
from libs.kafka.broker import make_broker
from libs.kafka.consuming import subscribe
from libs.kafka.publishing import encode, make_event
from libs.kafka.topics import ensure_topics
from libs.kafka_admin import redrive
from libs.kinds import EventType
from libs.settings import ServiceSettings

OnDepartmentTopic = AssignmentCreatedEvent | AssignmentWithdrawnEvent | ActionRejectedEvent | SlaAlertEvent
# What the failing record carries: it must never reach a header or a log line.
SECRET_DETAIL = "contact 13800138000 said so"


class DeadSettings(ServiceSettings):
    service_name: ClassVar[str] = "dead"


def an_event(detail: str = "test"):
    data = ActionRejected(appeal_id=new_id(), department="finance", action="accept", status=409, detail=detail)
    return make_event("appeals/router", EventType.action_rejected, data.appeal_id, data)


async def dead_letters(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    """The first `count` records of `topic`'s .dlq (fewer if they do not come within `timeout`)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(dead_letter_topic(topic), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found: list = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            found += batch.get(tp, [])
        return found
    finally:
        await consumer.stop()


async def a_topic(bootstrap: str) -> str:
    topic = f"dept.dead-{new_id().lower()}.v1"
    await ensure_topics(bootstrap, [topic, dead_letter_topic(topic)], partitions=1)
    return topic


def settings_for(bootstrap: str) -> DeadSettings:
    return DeadSettings(
        kafka_bootstrap_servers=bootstrap,
        consumer_group=f"dead-{new_id().lower()}",
        handler_attempts=3,
        handler_retry_seconds=0.1,
    )


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
async def test_a_record_failing_every_attempt_is_dead_lettered_and_the_next_ones_are_handled(real_servers, batched):
    topic = await a_topic(real_servers.bootstrap)
    settings = settings_for(real_servers.bootstrap)
    poison, *after = [an_event(SECRET_DETAIL), an_event(), an_event()]
    tries: list[str] = []
    handled: list[str] = []
    done = asyncio.Event()

    async def handle(events: list) -> None:
        for event in events:
            if event.id == poison.id:
                tries.append(event.id)
                raise KeyError(event.data.detail)  # a bug that quotes the record's values
        handled.extend(e.id for e in events)
        if all(e.id in handled for e in after):
            done.set()

    registry = CollectorRegistry()
    broker = make_broker(settings, registry)
    reader = Consumer("dead", "test", (topic,), "reads a department topic", batch=batched)
    if batched:

        async def on_records(events: list[OnDepartmentTopic]) -> None:
            await handle(events)
    else:

        async def on_records(event: OnDepartmentTopic) -> None:
            await handle([event])

    subscribe(broker, settings, reader, on_records)
    async with broker:
        await broker.start()
        for event in (poison, *after):
            await broker.publish(encode(event), topic=topic, key=event.subject.encode())
        await asyncio.wait_for(done.wait(), 60)
        letters = await dead_letters(real_servers.bootstrap, topic, 1)
    assert poison.id not in handled and set(handled) >= {e.id for e in after}, "the partition moved on"
    # In a batch with others it fails once more before it is tried alone; attempts count only alone.
    assert settings.handler_attempts <= len(tries) <= 2 * settings.handler_attempts
    assert len(letters) == 1 and letters[0].value == encode(poison), "the record's own bytes"
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["dlq-topic"] == topic and headers["dlq-offset"] == "0" and headers["dlq-group"].endswith(".test")
    assert headers["dlq-reason"].startswith("KeyError") and "after 3 attempts" in headers["dlq-reason"]
    assert "13800138000" not in headers["dlq-reason"], "the reason names what failed, never a value"
    counted = registry.get_sample_value(
        "appeals_consumer_dead_letters_total", {"group": headers["dlq-group"], "topic": topic, "kind": "failing"}
    )
    assert counted == 1


async def test_an_unreachable_database_never_dead_letters_a_record(real_servers):
    topic = await a_topic(real_servers.bootstrap)
    settings = settings_for(real_servers.bootstrap)
    event = an_event()
    outage = settings.handler_attempts * 2
    tries: list[str] = []
    done = asyncio.Event()

    async def on_record(received: OnDepartmentTopic) -> None:
        tries.append(received.id)
        if len(tries) <= outage:
            raise AutoReconnect("connection refused")
        done.set()

    broker = make_broker(settings, CollectorRegistry())
    subscribe(broker, settings, Consumer("dead", "outage", (topic,), "reads", batch=False), on_record)
    async with broker:
        await broker.start()
        await broker.publish(encode(event), topic=topic, key=event.subject.encode())
        await asyncio.wait_for(done.wait(), 60)
    assert len(tries) == outage + 1, "it waited through the outage, past the attempts a failing record gets"
    assert await dead_letters(real_servers.bootstrap, topic, 1, timeout=2) == []


async def test_redrive_puts_dead_letters_back_on_their_topic_once(real_servers):
    topic = await a_topic(real_servers.bootstrap)
    settings = settings_for(real_servers.bootstrap)
    events = [an_event(), an_event()]
    fixed = asyncio.Event()
    handled: list[str] = []
    every = asyncio.Event()

    async def on_record(received: OnDepartmentTopic) -> None:
        if not fixed.is_set():
            raise ValueError("a bug, since fixed")
        handled.append(received.id)
        if {e.id for e in events} <= set(handled):
            every.set()

    broker = make_broker(settings, CollectorRegistry())
    subscribe(broker, settings, Consumer("dead", "redrive", (topic,), "reads", batch=False), on_record)
    async with broker:
        await broker.start()
        for event in events:
            await broker.publish(encode(event), topic=topic, key=event.subject.encode())
        assert len(await dead_letters(real_servers.bootstrap, topic, 2)) == 2
        fixed.set()
        assert await redrive(real_servers.bootstrap, dead_letter_topic(topic)) == 2
        await asyncio.wait_for(every.wait(), 60)
        assert await redrive(real_servers.bootstrap, dead_letter_topic(topic)) == 0, "each letter is sent back once"
    assert sorted(handled) == sorted(e.id for e in events)
