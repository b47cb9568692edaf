"""The in-document outbox on the real broker and database: what is published leaves, what came after stays."""

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from libs import outbox
from libs.ids import new_id
from libs.kafka.topics import ensure_topics
from libs.mongo import CommandCounter


def item(topic: str, n: int) -> dict:
    event_id = new_id()
    return {"id": event_id, "topic": topic, "key": "A1", "payload": json.dumps({"id": event_id, "n": n})}


async def published(bootstrap: str, topic: str, count: int, wait_ms: int = 30_000) -> list[int]:
    """What reached `topic`, in order: `count` events, or all there are if `wait_ms` passes without more."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"outbox-test-{new_id().lower()}",
    )
    await consumer.start()
    seen: list[int] = []
    try:
        while len(seen) < count:
            batch = await consumer.getmany(timeout_ms=wait_ms)
            if not batch and wait_ms < 30_000:
                break
            assert batch, f"only {len(seen)} of {count} events reached {topic}"
            seen += [json.loads(r.value)["n"] for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    return seen


@dataclass
class Place:
    """What a test of the outbox works on."""

    bootstrap: str
    topic: str
    docs: AsyncCollection
    broker: KafkaBroker


@pytest.fixture
async def place(real_servers):
    """A topic and a collection of its own for each test, and a started broker."""
    topic = f"outbox-test-{new_id().lower()}"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    broker = KafkaBroker(real_servers.bootstrap)
    async with broker:
        await broker.start()
        yield Place(real_servers.bootstrap, topic, client[f"outbox_{new_id().lower()}"].docs, broker)
    await client.close()


async def test_flush_empties_what_it_published_and_keeps_what_was_added_meanwhile(place):
    topic, docs, broker = place.topic, place.docs, place.broker
    await docs.insert_one({"_id": "untouched", "outbox": [item(topic, 1), item(topic, 2)], "outbox_since": 1})
    await outbox.flush_many(docs, broker, [await docs.find_one({"_id": "untouched"})])
    assert "outbox" not in await docs.find_one({"_id": "untouched"})

    await docs.insert_one({"_id": "grown", "outbox": [item(topic, 3)], "outbox_since": 1})
    read = await docs.find_one({"_id": "grown"})
    later = item(topic, 4)
    await docs.update_one({"_id": "grown"}, {"$push": {"outbox": later}})
    await outbox.flush_many(docs, broker, [read])
    kept = await docs.find_one({"_id": "grown"})
    assert [i["id"] for i in kept["outbox"]] == [later["id"]], "an item added after the read is not lost"
    assert kept["outbox_since"] == 1, "the sweeper still finds the appeal with an unpublished item"

    await outbox.flush_many(docs, broker, [kept])
    assert "outbox_since" not in await docs.find_one({"_id": "grown"})
    assert sorted(await published(place.bootstrap, topic, 4)) == [1, 2, 3, 4]


async def test_the_sweep_leaves_an_outbox_to_the_writer_holding_it_and_takes_it_once_the_writer_failed(place):
    topic, docs, broker = place.topic, place.docs, place.broker
    now = datetime.now(UTC)
    long_ago = now - 10 * outbox.STALE_AFTER
    await docs.insert_many(
        [
            {"_id": doc_id, "outbox": [item(topic, n)], "outbox_since": long_ago}
            for n, doc_id in enumerate(["slow writer", "crashed", "failed writer"], start=1)
        ]
    )
    with outbox.held(docs, ["slow writer"]):
        assert await outbox.flush_stale(docs, broker, now) == 2, "only what no writer holds is swept"
        assert "outbox" in await docs.find_one({"_id": "slow writer"})
        await outbox.flush_many(docs, broker, [await docs.find_one({"_id": "slow writer"})])
    assert await outbox.flush_stale(docs, broker, now) == 0

    await docs.insert_one({"_id": "failing", "outbox": [item(topic, 4)], "outbox_since": long_ago})
    with pytest.raises(ConnectionError), outbox.held(docs, ["failing"]):
        raise ConnectionError("the writer's publish failed")
    assert await outbox.flush_stale(docs, broker, now) == 1, "a writer that failed leaves its outbox to the sweep"
    assert sorted(await published(place.bootstrap, topic, 5, wait_ms=3000)) == [1, 2, 3, 4], "each item once"


async def test_a_stale_mark_with_nothing_behind_it_is_cleared_and_not_swept_again(place):
    topic, docs, broker = place.topic, place.docs, place.broker
    now = datetime.now(UTC)
    long_ago = now - 10 * outbox.STALE_AFTER
    await docs.insert_many(
        [
            {"_id": "no outbox", "outbox_since": long_ago},
            {"_id": "empty outbox", "outbox": [], "outbox_since": long_ago},
            {"_id": "owes one", "outbox": [item(topic, 1)], "outbox_since": long_ago},
        ]
    )
    assert await outbox.flush_stale(docs, broker, now) == 1, "only the document that owes an event is published"
    assert await docs.count_documents({"outbox_since": {"$exists": True}}) == 0, "no mark is left to sweep"
    assert await outbox.flush_stale(docs, broker, now) == 0
    assert await published(place.bootstrap, topic, 1, wait_ms=3000) == [1]


async def test_a_flush_of_a_document_read_before_an_earlier_flush_emptied_it_sends_only_new_items(place):
    topic, docs, broker = place.topic, place.docs, place.broker
    await docs.insert_one({"_id": "appeal", "outbox": [item(topic, 1)], "outbox_since": 1})
    routed = await docs.find_one({"_id": "appeal"})
    # A department acts on the appeal while routing's flush is still under way: its transition read
    # the outbox with item 1 still in it and adds item 2.
    accepted = {**routed, "outbox": [*routed["outbox"], item(topic, 2)]}
    await docs.update_one({"_id": "appeal"}, {"$push": {"outbox": accepted["outbox"][-1]}})
    await outbox.flush_many(docs, broker, [routed])
    await outbox.flush_many(docs, broker, [accepted])
    left = await docs.find_one({"_id": "appeal"})
    assert not left.get("outbox") and "outbox_since" not in left, "nothing is left for the sweep"
    assert await published(place.bootstrap, topic, 3, wait_ms=3000) == [1, 2], "each item once, in order"


async def test_flush_soon_publishes_at_once_and_empties_the_outboxes_of_a_moment_in_one_statement(real_servers):
    topic = f"outbox-test-{new_id().lower()}"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    counted = CommandCounter(CollectorRegistry())
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True, event_listeners=[counted])
    docs = client[f"outbox_{new_id().lower()}"].docs
    broker = KafkaBroker(real_servers.bootstrap)
    try:
        async with broker:
            await broker.start()
            await docs.insert_many(
                [{"_id": f"appeal {n}", "outbox": [item(topic, n)], "outbox_since": 1} for n in range(1, 6)]
            )
            read = [doc async for doc in docs.find().sort("_id", 1)]
            later = item(topic, 6)
            await docs.update_one({"_id": "appeal 5"}, {"$push": {"outbox": later}})  # another writer, meanwhile
            updates_before = counted.total.labels("update", "docs")._value.get()

            await asyncio.gather(*(outbox.flush_soon(docs, broker, doc) for doc in read))
            assert sorted(await published(real_servers.bootstrap, topic, 5)) == [1, 2, 3, 4, 5], "published at once"
            await outbox.drain()

            assert counted.total.labels("update", "docs")._value.get() - updates_before <= 3, "not one per document"
            left = {doc["_id"]: doc async for doc in docs.find({"outbox.0": {"$exists": True}})}
            assert list(left) == ["appeal 5"], "every published outbox is emptied"
            assert [i["id"] for i in left["appeal 5"]["outbox"]] == [later["id"]], "what came after stays"
            assert left["appeal 5"]["outbox_since"] == 1, "and the sweep still finds it"
    finally:
        await client.close()


async def test_the_sweep_reports_the_age_of_the_oldest_outbox_it_owes_growing_while_it_cannot_publish(
    place, monkeypatch
):
    topic, docs, broker = place.topic, place.docs, place.broker
    registry = CollectorRegistry()
    outbox.measure_outboxes(broker, registry)

    def oldest() -> float | None:
        return registry.get_sample_value("appeals_outbox_oldest_seconds", {"collection": docs.name})

    now = datetime.now(UTC)
    await docs.insert_many(
        [
            {"_id": "left", "outbox": [item(topic, 1)], "outbox_since": now - timedelta(seconds=100)},
            {"_id": "newer", "outbox": [item(topic, 2)], "outbox_since": now - timedelta(seconds=30)},
        ]
    )

    async def broker_away(*_: object) -> None:
        raise ConnectionError("the broker does not answer")

    monkeypatch.setattr(outbox, "publish_items", broker_away)
    for later in (0, 60):
        with pytest.raises(ConnectionError):
            await outbox.flush_stale(docs, broker, now + timedelta(seconds=later))
        assert oldest() == pytest.approx(100 + later, abs=0.01), "the oldest owed outbox, older at each pass"
    monkeypatch.undo()
    assert await outbox.flush_stale(docs, broker, now + timedelta(seconds=60)) == 2
    assert await outbox.flush_stale(docs, broker, now + timedelta(seconds=61)) == 0
    assert oldest() == 0, "nothing left behind"
