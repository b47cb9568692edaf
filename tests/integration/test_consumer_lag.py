"""The consumer-lag gauge that dashboards and the lag alert read, on the real broker."""

import asyncio

from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from libs.ids import new_id
from libs.kafka.broker import consumer_lag_gauge, record_consumer_lag
from libs.kafka.topics import ensure_topics


async def test_lag_counts_what_a_group_has_not_consumed_and_falls_to_zero(real_servers):
    topic, group = f"lag-test-{new_id().lower()}", f"lag-{new_id().lower()}"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    broker = KafkaBroker(real_servers.bootstrap)
    release, first = asyncio.Event(), asyncio.Event()

    @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest")
    async def slow(body: bytes) -> None:
        first.set()
        await release.wait()

    registry = CollectorRegistry()
    gauge = consumer_lag_gauge(registry)
    async with broker:
        await broker.start()
        for i in range(50):
            await broker.publish(f"record {i}".encode(), topic=topic)
        await asyncio.wait_for(first.wait(), 60)
        await record_consumer_lag(broker, gauge)
        behind = registry.get_sample_value("appeals_kafka_consumer_lag", {"group": group, "topic": topic})
        assert behind is not None and behind >= 45, "the group holds one message of fifty"
        release.set()
        for _ in range(100):
            await record_consumer_lag(broker, gauge)
            if registry.get_sample_value("appeals_kafka_consumer_lag", {"group": group, "topic": topic}) == 0:
                break
            await asyncio.sleep(0.2)
        assert registry.get_sample_value("appeals_kafka_consumer_lag", {"group": group, "topic": topic}) == 0
