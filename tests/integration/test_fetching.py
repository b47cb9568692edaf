"""How the services' consumers read, on the real broker: nothing waits behind a quiet partition or an idle pause."""

import asyncio

from faststream.kafka import KafkaBroker

from libs.ids import new_id
from libs.kafka.consuming import read_without_pause
from libs.kafka.topics import ensure_topics


async def test_a_busy_partitions_next_record_does_not_wait_behind_a_read_of_a_quiet_one(real_servers):
    """With aiokafka's own default, the third record waited for the quiet partition's read to time out."""
    topic, group = f"fetching-{new_id().lower()}", f"fetching-{new_id().lower()}"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=2)
    broker = KafkaBroker(real_servers.bootstrap)
    started, release, third = asyncio.Event(), asyncio.Event(), asyncio.Event()
    handled: list[bytes] = []

    # A read waits at the broker for a minute when nothing comes: longer than the test waits for the third record.
    @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest", fetch_max_wait_ms=60_000)
    async def handle(body: bytes) -> None:
        handled.append(body)
        if body == b"first":
            started.set()
            await release.wait()
        if body == b"third":
            third.set()

    async with broker:
        # Both arrive in one read; the handler takes the first, the second waits in the consumer.
        await broker.publish(b"first", topic=topic, partition=0)
        await broker.publish(b"second", topic=topic, partition=0)
        await broker.start()
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(0.5)  # a handler busy past aiokafka's 0.1 s, while partition 1 stays quiet
        release.set()
        await broker.publish(b"third", topic=topic, partition=0)
        await asyncio.wait_for(third.wait(), 20)
    assert handled == [b"first", b"second", b"third"]


async def test_a_record_arriving_while_a_batch_consumer_is_idle_is_handled_at_once(real_servers):
    """FastStream pauses as long as its read waited after an empty one; a record arriving then waited for the end."""
    topic, group = f"idle-read-{new_id().lower()}", f"idle-read-{new_id().lower()}"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    broker = KafkaBroker(real_servers.bootstrap)
    got = asyncio.Event()
    handled: list[bytes] = []

    # Reads of 4 s make the pause after an empty one 4 s too: long enough to tell apart from a record read at once.
    subscriber = broker.subscriber(
        topic, group_id=group, auto_offset_reset="earliest", batch=True, batch_timeout_ms=4_000
    )

    @subscriber
    async def handle(bodies: list[bytes]) -> None:
        handled.extend(bodies)
        got.set()

    read_without_pause(subscriber)
    async with broker:
        await broker.start()
        await broker.publish(b"first", topic=topic)
        await asyncio.wait_for(got.wait(), 60)
        got.clear()
        await asyncio.sleep(5)  # the read after it came back empty at 4 s: FastStream's loop would pause until 8 s
        await broker.publish(b"second", topic=topic)
        await asyncio.wait_for(got.wait(), 2)
    assert handled == [b"first", b"second"]
