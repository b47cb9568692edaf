"""How the services' consumers read ahead, on the real broker (libs.kafka.PREFETCH_BACKOFF_SECONDS)."""

import asyncio

from faststream.kafka import KafkaBroker

from libs.ids import new_id
from libs.kafka import ensure_topics


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
