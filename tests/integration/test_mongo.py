"""The database helpers on the real server: guarded updates, grouped inserts, statement counts, clock writes."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry
from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError
from secantus.server import SecantusDBServer

from devstack import servers
from libs.ids import new_id
from libs.kinds import EventType
from libs.mongo import GroupedInserts, apply_update, make_client, update_guarded
from libs.settings import ServiceSettings
from services.intake import read_model as intake
from tests.unit.test_stats import APPEAL, T0, clock_event

SHANGHAI = timezone(timedelta(hours=8))

UPDATES = {
    "set, inc, unset": {
        "$set": {
            "status": "accepted",
            "accepted_at": datetime(2026, 3, 3, 9, 0, 0, 123456, SHANGHAI),
            "declined_by": [],
            "resolution": {"at": datetime(2026, 3, 3, 1, 2, 3, 999999, UTC)},
        },
        "$inc": {"version": 1},
        "$unset": {"claim": "", "absent": ""},
    },
    "push each": {"$push": {"outbox": {"$each": [{"id": "b"}, {"id": "c"}]}}, "$inc": {"version": 1}},
    "push with slice": {"$push": {"seen": {"$each": ["e3", "e4"], "$slice": -3}}},
    "push to a new field": {"$push": {"fresh": {"$each": [1]}}, "$set": {"outbox_since": datetime.now(UTC)}},
}


@pytest.mark.parametrize("update", UPDATES.values(), ids=UPDATES.keys())
async def test_the_document_after_a_guarded_update_is_what_the_database_holds(real_servers, update):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    collection = client.mongo_test.docs
    doc = {
        "_id": new_id(),
        "version": 3,
        "status": "routed",
        "claim": "token",
        "outbox": [{"id": "a"}],
        "seen": ["e1", "e2"],
        "submitted_at": datetime(2026, 3, 3, 1, 0, tzinfo=UTC),
    }
    await collection.insert_one(doc)
    after = await update_guarded(collection, doc, {"version": 3}, update)
    assert after == await collection.find_one({"_id": doc["_id"]})
    if "version" in update.get("$inc", {}):
        assert await update_guarded(collection, doc, {"version": 3}, update) is None, "a stale version matches nothing"
    await client.close()


@pytest.mark.parametrize("update", [{"$set": {"a.b": 1}}, {"$addToSet": {"tags": "x"}}])
def test_apply_update_refuses_what_it_cannot_compute(update):
    with pytest.raises(ValueError):
        apply_update({"_id": "x"}, update)


class CountingCollection:
    """The real collection, counting the insert statements sent to the server."""

    def __init__(self, collection) -> None:
        self.collection = collection
        self.statements = 0

    async def insert_many(self, docs, **options):
        self.statements += 1
        return await self.collection.insert_many(docs, **options)


async def test_grouped_inserts_write_concurrent_documents_together_and_tell_each_caller_its_outcome(real_servers):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    collection = client.mongo_test[f"grouped_{new_id()}"]
    await collection.create_index([("ref", ASCENDING)], unique=True)
    await collection.insert_one({"_id": "taken", "ref": "ref-taken"})
    counting = CountingCollection(collection)
    inserts = GroupedInserts(counting)
    docs = [{"_id": f"doc-{n}", "ref": f"ref-{n}"} for n in range(60)]
    clashes = [{"_id": "again", "ref": "ref-taken"}, {"_id": "twin", "ref": "ref-7"}, {"_id": "doc-3", "ref": "x"}]

    outcomes = await asyncio.gather(*(inserts.insert(doc) for doc in docs + clashes), return_exceptions=True)

    assert outcomes[:60] == [None] * 60
    assert all(isinstance(o, DuplicateKeyError) for o in outcomes[60:]), outcomes[60:]
    assert await collection.count_documents({}) == 61
    assert counting.statements <= 3, "documents that arrive together go to the server together"
    await client.close()


async def test_a_cancelled_caller_does_not_cancel_the_others_in_its_batch(real_servers):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    collection = client.mongo_test[f"grouped_{new_id()}"]
    inserts = GroupedInserts(collection)
    first = asyncio.create_task(inserts.insert({"_id": "first"}))
    second = asyncio.create_task(inserts.insert({"_id": "second"}))
    await asyncio.sleep(0)
    first.cancel()
    await second
    assert await collection.find_one({"_id": "second"}) is not None
    await client.close()


async def test_the_driver_counts_each_statement_and_the_documents_it_writes(real_servers):
    registry = CollectorRegistry()
    client = make_client(ServiceSettings(mongodb_uri=real_servers.mongodb_uri), registry=registry)
    docs = client[f"counted_{new_id().lower()}"].counted
    await docs.insert_many([{"_id": n, "n": n} for n in range(3)])
    await docs.bulk_write([UpdateOne({"n": n}, {"$set": {"seen": True}}) for n in range(2)])
    await docs.update_many({}, {"$set": {"all": True}})
    await docs.find_one_and_update({"n": 2}, {"$set": {"seen": True}})
    with pytest.raises(BulkWriteError):
        await docs.insert_many([{"_id": 0}, {"_id": 3}], ordered=False)
    assert await docs.count_documents({"seen": True}) == 3

    def value(name: str, command: str) -> float | None:
        return registry.get_sample_value(name, {"command": command, "collection": "counted"})

    assert value("appeals_mongodb_commands_total", "insert") == 2
    assert value("appeals_mongodb_documents_written_total", "insert") == 4, "the duplicate was not written"
    assert value("appeals_mongodb_commands_total", "update") == 2
    assert value("appeals_mongodb_documents_written_total", "update") == 5, "two updates, then one of three documents"
    assert value("appeals_mongodb_documents_written_total", "findAndModify") == 1
    assert value("appeals_mongodb_documents_written_total", "find") is None, "a read writes nothing"
    timed = {
        c: registry.get_sample_value("appeals_mongodb_command_duration_seconds_count", {"command": c})
        for c in ("insert", "update", "findAndModify", "aggregate")
    }
    assert timed == {"insert": 2, "update": 2, "findAndModify": 1, "aggregate": 1}, "each command timed, failed too"
    await client.close()


async def test_intake_keeps_the_latest_report_of_each_clock_in_one_write_per_appeal(real_servers):
    registry = CollectorRegistry()
    client = make_client(ServiceSettings(mongodb_uri=real_servers.mongodb_uri), registry=registry)
    db = client[f"clocks_{new_id().lower()}"]
    await db.appeals.insert_one({"_id": APPEAL})
    later = T0 + timedelta(hours=1)
    scope, resolution = (
        clock_event(EventType.sla_started, "running", T0, clock=kind, due=T0 + timedelta(hours=6))
        for kind in ("scope", "resolution")
    )
    met = clock_event(EventType.sla_met, "met", later, clock="scope")
    await intake.apply_clocks(db, [scope, met, resolution])
    labels = {"command": "update", "collection": "appeals"}
    written = registry.get_sample_value("appeals_mongodb_documents_written_total", labels)
    assert written == 1, "three reports of one appeal, one document written"

    async def states() -> dict[str, str]:
        doc = await db.appeals.find_one({"_id": APPEAL})
        return {clock["clock"]: clock["state"] for clock in doc["clocks"].values()}

    assert await states() == {"scope": "met", "resolution": "running"}
    # A batch holding a stale report beside a new one: the new one lands, the stale one changes nothing.
    breached = clock_event(EventType.sla_breached, "breached", later, clock="resolution")
    await intake.apply_clocks(db, [scope, breached])
    assert await states() == {"scope": "met", "resolution": "breached"}
    await client.close()


async def test_a_write_after_the_server_dropped_an_idle_connection_goes_through(tmp_path):
    """SecantusDB drops a connection idle for 300 s (here 1 s); the client closes its own idle ones first."""
    port = servers.free_port()
    server = SecantusDBServer(port=port, storage_path=str(tmp_path), replica_set_name=None, client_idle_timeout_s=1.0)
    server.start()
    try:
        settings = ServiceSettings(mongodb_uri=servers.embedded_mongo_uri(port), mongodb_max_idle_seconds=0.5)
        client = make_client(settings)
        docs = client.idle.docs
        await docs.insert_one({"_id": "before"})
        await asyncio.sleep(2)  # the server has closed the pooled connection by now
        await docs.insert_one({"_id": "after"})  # without retries: on that connection, AutoReconnect
        assert await docs.count_documents({}) == 2
        await client.close()
    finally:
        server.stop()
