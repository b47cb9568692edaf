"""The urging ladder (催办/督办) on the real broker and database: each level once, with its id, after the breach.

The scheduler runs on a clock the test sets. The ladder is the configured one with seconds for working
days (level 2 two seconds after the breach, level 3 four), so the levels come without waiting a week.
"""

import dataclasses
from datetime import UTC, datetime, timedelta

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from libs.config import UrgingLevel, UrgingRules
from libs.contract import SLA_EVENTS_V2, department_topic
from libs.ids import new_id
from libs.kinds import AppealStatus, EventType
from libs.settings import PROJECT_ROOT
from services.sla import service
from services.sla.app import load_book
from tests.helpers import read_topic
from tests.unit.test_stats import DEPT, changed

H, S = timedelta(hours=1), timedelta(seconds=1)


class At:
    """The scheduler's clock, standing still at one instant."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class CrashesOnRecord:
    """The database as a replica sees it that dies after publishing a pass and before recording it."""

    def __init__(self, db) -> None:
        self.db = db

    def __getattr__(self, name: str):
        return getattr(self.db, name)

    @property
    def appeals(self):
        real = self.db.appeals

        class Appeals:
            def __getattr__(self, name: str):
                return getattr(real, name)

            async def bulk_write(self, *args, **kwargs):
                raise RuntimeError("the replica died before recording")

        return Appeals()


def fast_ladder_book():
    """The configured book, its ladder in seconds: level 2 two seconds after the breach, level 3 four."""
    book = load_book(PROJECT_ROOT / "config")
    levels = [
        UrgingLevel(level=rung.level, after_breach=after, audiences=rung.audiences)
        for rung, after in zip(book.ladder, ("2s", "4s"), strict=True)
    ]
    urging = UrgingRules(levels=levels)
    return dataclasses.replace(book, supervision=book.supervision.model_copy(update={"urging": urging}))


async def fire_at(db, broker, book, now: datetime) -> list[tuple[str, int, bool]]:
    """One scheduler pass at `now`: (appeal's clock, level, urging level or not) of what it fired."""
    claimed = await service.claim_due(db, At(now))
    return sorted((f.clock, f.level, f.urge) for f in await service.fire_claimed(db, broker, book, At(now), claimed))


async def test_each_level_fires_once_under_its_id_and_an_answer_stops_the_rest(real_servers):
    book = fast_ladder_book()
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"sla_urging_{new_id().lower()}"]
    broker = KafkaBroker(real_servers.bootstrap)
    await broker.start()
    # Three appeals, routed and accepted with a plan: only the resolution clock runs (policy_24h: 24 h from
    # submission). `climbs` is never answered; `answered` is resolved between levels 2 and 3; `raced` is resolved
    # after a pass claimed it for level 3 and before that pass fires.
    climbs, answered, raced = new_id(), new_id(), new_id()
    at = datetime.now(UTC).replace(microsecond=0)
    breach, level_2, level_3 = at + 24 * H, at + 24 * H + 2 * S, at + 24 * H + 4 * S
    ours = {climbs, answered, raced}

    async def events(topic: str, type_: str, count: int = 1, unpack: bool = False) -> list[dict]:
        wanted = lambda e: e.get("subject") in ours and e["type"] == type_  # noqa: E731
        return await read_topic(real_servers.bootstrap, topic, wanted, count=count, unpack=unpack, timeout=5)

    def resolved(appeal_id: str, when: datetime):
        return changed(
            EventType.appeal_resolved, AppealStatus.resolved, 3, when, appeal_id=appeal_id, resolution="done"
        )

    try:
        await service.ensure_indexes(db)
        started = [
            changed(t, s, seq, at + seq * S, appeal_id=a, submitted_at=at, note="a plan")
            for a in (climbs, answered, raced)
            for t, s, seq in (
                (EventType.appeal_routed, AppealStatus.routed, 1),
                (EventType.appeal_accepted, "accepted", 2),
            )
        ]
        await service.apply_lifecycle(db, broker, book, started, at + 3 * S)

        thresholds = [("resolution", level, False) for level in (50, 80, 100)]
        assert await fire_at(db, broker, book, breach) == sorted(thresholds * 3)
        docs = {d["_id"]: d async for d in db.appeals.find({})}
        assert {d["next_fire_at"] for d in docs.values()} == {level_2}, "each breached clock waits for level 2"
        assert all(c["next_urge"] == 2 for d in docs.values() for c in d["clocks"] if c["clock"] == "resolution")

        assert await fire_at(db, broker, book, level_2 - timedelta(milliseconds=1)) == []
        # The first pass at level 2 publishes and dies before recording: its claims expire, and the level is
        # fired again under the same ids, so readers see each level of each clock once (perhaps twice delivered).
        claimed = await service.claim_due(db, At(level_2))
        try:
            await service.fire_claimed(CrashesOnRecord(db), broker, book, At(level_2), claimed)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the pass should have died")
        assert await fire_at(db, broker, book, level_2) == [], "claimed by the dead replica"
        await service.release_expired_claims(db, level_2 + service.CLAIM_TTL + S)
        assert await fire_at(db, broker, book, level_2) == [("resolution", 2, True)] * 3

        # sla restarts between the levels: a new book, broker and database client find nothing due, and level 2
        # does not fire again.
        await broker.stop()
        await client.close()
        book = fast_ladder_book()
        client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
        db = client[db.name]
        broker = KafkaBroker(real_servers.bootstrap)
        await broker.start()
        assert await fire_at(db, broker, book, level_2 + S) == []

        await service.apply_lifecycle(db, broker, book, [resolved(answered, level_2 + S)], level_2 + S)
        # A pass claims ahead of the instant (lookahead); the answer to `raced` comes after the claim.
        claimed = await service.claim_due(db, At(level_3 - timedelta(milliseconds=300)), lookahead=0.5 * S)
        assert {d["_id"] for d in claimed.docs} == {climbs, raced}, "an answered clock is urged no more"
        await service.apply_lifecycle(db, broker, book, [resolved(raced, level_3 - 0.1 * S)], level_3 - 0.1 * S)
        fired = await service.fire_claimed(db, broker, book, At(level_3), claimed)
        assert [(f.clock, f.level, f.urge) for f in fired] == [("resolution", 3, True)], "only `climbs`"
        for _ in range(2):
            assert await fire_at(db, broker, book, level_3 + H) == []

        docs = {d["_id"]: d async for d in db.appeals.find({})}
        assert not any("next_fire_at" in d or "claim" in d for d in docs.values()), "nothing left to fire"
        resolution = {a: next(c for c in d["clocks"] if c["clock"] == "resolution") for a, d in docs.items()}
        assert resolution[climbs]["urges_fired"] == [2, 3] and resolution[climbs]["state"] == "breached"
        assert resolution[answered]["urges_fired"] == [2] == resolution[raced]["urges_fired"]
        assert resolution[answered]["ended_at"] and resolution[raced]["ended_at"]

        # On sla.events.v2 and on the department's topic: each level of each clock under one id.
        expected = {
            (appeal_id, level): service.urge_event_id(f"{appeal_id}:resolution:1", level, instant)
            for appeal_id in ours
            for level, instant in ((2, level_2), (3, level_3))
            if level == 2 or appeal_id == climbs
        }
        for topic, unpack in ((SLA_EVENTS_V2, True), (department_topic(DEPT), False)):
            urged = await events(topic, "sla.urged.v1", count=len(expected) + 3, unpack=unpack)
            assert {(e["subject"], e["data"]["urge_level"]): e["id"] for e in urged} == expected, topic
            assert len({e["id"] for e in urged}) == len(expected), "a refire carries the id of the first"
            for e in urged:
                assert e["data"]["state"] == "breached" and e["data"].get("level") is None
                assert datetime.fromisoformat(e["data"]["due_at"]) == breach
                assert e["data"]["department"] == DEPT and e["data"]["clock"] == "resolution"
        breaches = await events(SLA_EVENTS_V2, "sla.breached.v1", count=4, unpack=True)
        assert len(breaches) == 3, "the breach is level 1, once per clock"
    finally:
        await broker.stop()
        await client.drop_database(db.name)
        await client.close()
