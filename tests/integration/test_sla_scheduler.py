"""SLA on the real broker and database: each appeal's clocks in one document, and a threshold fired on its instant."""

import dataclasses
from datetime import UTC, datetime, timedelta

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from libs.contract import SLA_EVENTS, SLA_EVENTS_V2
from libs.ids import new_id
from libs.kinds import AppealStatus, ClockKind, EventType
from libs.mongo import as_stored
from libs.settings import PROJECT_ROOT
from services.sla import clocks, service
from services.sla.app import load_book
from tests.helpers import read_topic, sla_reports
from tests.unit.test_stats import DEPT, changed


class WakesEarlyClock:
    """The wall clock as a scheduler that asyncio wakes a fraction of a millisecond early sees it.

    Readings come from `times` in turn (the last one repeats): the claim, the check
    before sleeping, then what the scheduler reads when it wakes up.
    """

    def __init__(self, times: list[datetime]) -> None:
        self.times = times

    def now(self) -> datetime:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


async def test_a_threshold_fires_on_its_instant_when_the_scheduler_wakes_a_little_early(real_servers):
    book = sla_book()
    calendars = book.calendars
    started = datetime.now(UTC) - timedelta(seconds=3)
    appeal_id = new_id()
    doc, _ = clocks.start(
        appeal_id,
        ClockKind.response,
        1,
        "nanshan-finance",
        "standard",
        "10s",
        calendars["default"],
        started,
        started,
        {"category": "financing", "district": "nanshan"},
    )
    doc = as_stored(doc)
    due = doc["next_fire_at"]
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"sla_scheduler_{appeal_id.lower()}"]
    broker = KafkaBroker(real_servers.bootstrap)
    await broker.start()
    try:
        await db.appeals.insert_one(service.appeal_document(appeal_id, [doc]))
        claimed = await service.claim_due(db, WakesEarlyClock([due]), lookahead=timedelta(seconds=1))
        assert [d["_id"] for d in claimed.docs] == [appeal_id]

        early = due - timedelta(microseconds=400)
        clock = WakesEarlyClock([due - timedelta(microseconds=900), early, due])
        fired = await service.fire_claimed(db, broker, book, clock, claimed)

        assert [(f.level, f.lag) for f in fired] == [(50, 0.0)], "fired once, on the instant, not a pass later"
        stored = await db.appeals.find_one({"_id": appeal_id})
        assert stored["clocks"][0]["levels_fired"] == [50] and stored["clocks"][0]["next_level"] == 80
        assert stored["next_fire_at"] == stored["clocks"][0]["next_fire_at"] and "claim" not in stored
        warnings = await read_topic(
            real_servers.bootstrap,
            SLA_EVENTS_V2,
            lambda e: e.get("subject") == appeal_id and e["type"] == "sla.warning.v1",
            unpack=True,
        )
        assert warnings[0]["data"]["level"] == 50
    finally:
        await broker.stop()
        await client.drop_database(db.name)
        await client.close()


def sla_book() -> service.SlaBook:
    return load_book(PROJECT_ROOT / "config")


async def test_a_batch_of_lifecycle_events_writes_each_appeal_once_with_its_clocks_inside(real_servers):
    book = sla_book()
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"sla_lifecycle_{new_id().lower()}"]
    broker = KafkaBroker(real_servers.bootstrap)
    await broker.start()
    answered, waiting = new_id(), new_id()
    at = datetime.now(UTC).replace(microsecond=0)
    batch = [
        changed(EventType.appeal_routed, AppealStatus.routed, 1, at, appeal_id=answered, submitted_at=at),
        changed(EventType.appeal_routed, AppealStatus.routed, 1, at, appeal_id=waiting, submitted_at=at),
        changed(
            EventType.appeal_accepted,
            AppealStatus.accepted,
            2,
            at + timedelta(minutes=5),
            appeal_id=answered,
            note="a plan",
        ),
    ]
    try:
        await service.ensure_indexes(db)
        await service.apply_lifecycle(db, broker, book, batch, at)

        docs = {d["_id"]: d async for d in db.appeals.find({})}
        assert set(docs) == {answered, waiting}, "one document per appeal"
        states = {c["clock"]: c["state"] for c in docs[answered]["clocks"]}
        assert states == {"resolution": "running", "scope": "met", "response": "met"}
        resolution = next(c for c in docs[answered]["clocks"] if c["clock"] == "resolution")
        assert docs[answered]["live_due"] == resolution["due_at"]
        assert docs[answered]["next_fire_at"] == resolution["next_fire_at"]
        assert docs[answered]["sequence"] == 2 and docs[answered]["version"] == 1, "inserted once, not updated"
        assert {c["state"] for c in docs[waiting]["clocks"]} == {"running"}
        assert docs[waiting]["live_due"] == min(c["due_at"] for c in docs[waiting]["clocks"])
        assert not any("outbox" in d or "outbox_since" in d for d in docs.values()), "outboxes published and emptied"
        assert await service.running_counts(db) == {"scope": 1, "response": 1, "resolution": 2, "contribution": 0}
        packed = await read_topic(
            real_servers.bootstrap, SLA_EVENTS_V2, lambda e: e.get("subject") in (answered, waiting), count=3
        )
        assert len(packed) == 3, "one event per change: two routings, one acceptance"
        events = [report for e in packed for report in sla_reports(e)]
        assert sorted((e["subject"] == answered, e["type"]) for e in events) == sorted(
            [(True, "sla.started.v1")] * 3 + [(True, "sla.met.v1")] * 2 + [(False, "sla.started.v1")] * 3
        )

        at_risk, more = await service.at_risk(db, None, at + timedelta(days=30), limit=10)
        assert [c["due_at"] for c in at_risk] == sorted(c["due_at"] for c in at_risk) and len(at_risk) == 4
        assert not more
        first, more = await service.at_risk(db, None, at + timedelta(days=30), limit=2)
        assert len(first) == 2 and more
        rest, more = await service.at_risk(
            db, None, at + timedelta(days=30), limit=2, after=service.clock_key(first[-1])
        )
        assert first + rest == at_risk and not more, "the second page starts after the first's last clock"

        # Redelivered, the batch changes nothing: the documents remember the sequence applied.
        await service.apply_lifecycle(db, broker, book, batch, at)
        assert {d["_id"]: d["version"] async for d in db.appeals.find({})} == {answered: 1, waiting: 1}
    finally:
        await broker.stop()
        await client.drop_database(db.name)
        await client.close()


async def test_during_an_upgrade_sla_writes_each_report_on_both_versions_under_one_id(real_servers):
    book = dataclasses.replace(sla_book(), publish_v1=True)
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"sla_both_{new_id().lower()}"]
    broker = KafkaBroker(real_servers.bootstrap)
    await broker.start()
    appeal_id, at = new_id(), datetime.now(UTC).replace(microsecond=0)
    try:
        routed = changed(EventType.appeal_routed, AppealStatus.routed, 1, at, appeal_id=appeal_id, submitted_at=at)
        await service.apply_lifecycle(db, broker, book, [routed], at)
        mine = lambda e: e.get("subject") == appeal_id  # noqa: E731
        v1 = await read_topic(real_servers.bootstrap, SLA_EVENTS, mine, count=3)
        v2 = await read_topic(real_servers.bootstrap, SLA_EVENTS_V2, mine, unpack=True, count=3)
        assert sorted((e["id"], e["type"], e["data"]["clock"]) for e in v1) == sorted(
            (e["id"], e["type"], e["data"]["clock"]) for e in v2
        )
        assert len(v1) == 3 and {e["type"] for e in v1} == {"sla.started.v1"}
    finally:
        await broker.stop()
        await client.drop_database(db.name)
        await client.close()


async def test_clocks_kept_apart_by_an_earlier_version_join_their_appeals_with_what_they_owed(real_servers):
    book = sla_book()
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"sla_adopt_{new_id().lower()}"]
    appeal_id = new_id()
    at = datetime.now(UTC).replace(microsecond=0)
    scope, _ = clocks.start(
        appeal_id, ClockKind.scope, 1, DEPT, "standard", "10m", book.calendars["default"], at, at, {}
    )
    resolution, _ = clocks.start(
        appeal_id, ClockKind.resolution, 1, DEPT, "standard", "72h", book.calendars["default"], at, at, {}
    )
    owed = {"id": new_id(), "topic": SLA_EVENTS, "key": appeal_id, "payload": "{}"}
    try:
        # The earlier layout: one document per clock with its own outbox and claim, the sequence apart.
        await db.clocks.insert_many(
            [
                as_stored({**scope, "outbox": [owed], "outbox_since": at, "claim": "x", "claim_until": at}),
                as_stored(resolution),
            ]
        )
        await db.appeals.insert_one({"_id": appeal_id, "sequence": 1, "generation": {"scope": 1, "resolution": 1}})

        await service.ensure_indexes(db)
        assert "clocks" not in await db.list_collection_names()
        doc = await db.appeals.find_one({"_id": appeal_id})
        assert sorted(c["_id"] for c in doc["clocks"]) == sorted([scope["_id"], resolution["_id"]])
        assert doc["sequence"] == 1 and doc["outbox"] == [owed] and doc["live_due"] == as_stored(scope["due_at"])
        assert not any("claim" in c or "outbox" in c for c in doc["clocks"]), "the document's fields left the clocks"
        assert await service.adopt_clock_documents(db) == 0, "adopted once"

        # The adopted appeal goes on: the accepted event meets its scope clock, guarded by the version given.
        broker = KafkaBroker(real_servers.bootstrap)
        await broker.start()
        try:
            accepted = changed(EventType.appeal_accepted, AppealStatus.accepted, 2, at, appeal_id=appeal_id)
            await service.apply_lifecycle(db, broker, book, [accepted], at + timedelta(minutes=1))
        finally:
            await broker.stop()
        doc = await db.appeals.find_one({"_id": appeal_id})
        assert {c["clock"]: c["state"] for c in doc["clocks"]} == {"scope": "met", "resolution": "running"}
        assert doc["sequence"] == 2 and doc["live_due"] == as_stored(resolution["due_at"])
    finally:
        await client.drop_database(db.name)
        await client.close()
