"""The in-document outbox on the real broker and database: what is published leaves, what came after stays."""

import json

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from libs import outbox
from libs.ids import new_id
from libs.kafka import ensure_topics


def item(topic: str, n: int) -> dict:
    event_id = new_id()
    return {"id": event_id, "topic": topic, "key": "A1", "payload": json.dumps({"id": event_id, "n": n})}


async def published(bootstrap: str, topic: str, count: int) -> list[int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=f"outbox-test-{new_id().lower()}")
    await consumer.start()
    seen: list[int] = []
    try:
        while len(seen) < count:
            batch = await consumer.getmany(timeout_ms=30_000)
            assert batch, f"only {len(seen)} of {count} events reached {topic}"
            seen += [json.loads(r.value)["n"] for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    return seen


async def test_flush_empties_what_it_published_and_keeps_what_was_added_meanwhile(real_servers):
    topic = f"outbox-test-{new_id().lower()}"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    docs = client[f"outbox_{new_id().lower()}"].docs
    broker = KafkaBroker(real_servers.bootstrap)
    async with broker:
        await broker.start()
        await docs.insert_one({"_id": "untouched", "outbox": [item(topic, 1), item(topic, 2)], "outbox_since": 1})
        await outbox.flush(docs, broker, await docs.find_one({"_id": "untouched"}))
        assert "outbox" not in await docs.find_one({"_id": "untouched"})

        await docs.insert_one({"_id": "grown", "outbox": [item(topic, 3)], "outbox_since": 1})
        read = await docs.find_one({"_id": "grown"})
        later = item(topic, 4)
        await docs.update_one({"_id": "grown"}, {"$push": {"outbox": later}})
        await outbox.flush(docs, broker, read)
        kept = await docs.find_one({"_id": "grown"})
        assert [i["id"] for i in kept["outbox"]] == [later["id"]], "an item added after the read is not lost"
        assert kept["outbox_since"] == 1, "the sweeper still finds the appeal with an unpublished item"

        await outbox.flush(docs, broker, kept)
        assert "outbox_since" not in await docs.find_one({"_id": "grown"})
    await client.close()
    assert sorted(await published(real_servers.bootstrap, topic, 4)) == [1, 2, 3, 4]
