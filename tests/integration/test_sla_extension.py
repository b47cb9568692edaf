"""An approved extension (延期) on the real broker and database: the resolution clock falls due on the new time.

The scheduler runs on a clock the test sets, so hours of SLA time pass without waiting.
"""

from datetime import UTC, datetime, timedelta

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from libs.contract import SLA_EVENTS_V2, department_topic
from libs.ids import new_id
from libs.kinds import AppealStatus, EventType
from libs.settings import PROJECT_ROOT
from services.sla import service
from services.sla.app import load_book
from tests.helpers import read_topic
from tests.unit.test_stats import DEPT, changed

H = timedelta(hours=1)


class At:
    """The scheduler's clock, standing still at one instant."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


async def fire_at(db, broker, book, now: datetime) -> list[int]:
    """One scheduler pass at `now`: the levels it fired."""
    claimed = await service.claim_due(db, At(now))
    return [f.level for f in await service.fire_claimed(db, broker, book, At(now), claimed)]


async def test_an_approved_extension_moves_the_due_time_and_the_breach_comes_then(real_servers):
    config = PROJECT_ROOT / "config"
    book = load_book(config)
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"sla_extension_{new_id().lower()}"]
    broker = KafkaBroker(real_servers.bootstrap)
    await broker.start()
    appeal_id = new_id()
    # policy_24h: the resolution clock runs 24 h from submission; the office grants 24 h more.
    at = datetime.now(UTC).replace(microsecond=0)
    old_due, until = at + 24 * H, at + 48 * H
    mine = lambda e: e.get("subject") == appeal_id  # noqa: E731

    async def resolution() -> tuple[dict, dict]:
        doc = await db.appeals.find_one({"_id": appeal_id})
        return doc, next(c for c in doc["clocks"] if c["clock"] == "resolution")

    try:
        await service.ensure_indexes(db)
        routed = changed(EventType.appeal_routed, AppealStatus.routed, 1, at, appeal_id=appeal_id, submitted_at=at)
        accepted = changed(
            EventType.appeal_accepted, AppealStatus.accepted, 2, at + H, appeal_id=appeal_id, note="a plan"
        )
        await service.apply_lifecycle(db, broker, book, [routed, accepted], at + H)
        assert (await resolution())[1]["due_at"] == old_due
        assert await fire_at(db, broker, book, at + 12 * H) == [50]

        approval = changed(
            EventType.appeal_extension_approved,
            AppealStatus.accepted,
            3,
            at + 13 * H,
            appeal_id=appeal_id,
            due_at=until,
            previous_due_at=old_due,
            reason="an expert's report is due",
            note="granted",
        )
        await service.apply_lifecycle(db, broker, book, [approval], at + 13 * H)
        doc, clock = await resolution()
        assert clock["due_at"] == until and clock["original_due_at"] == old_due
        assert clock["levels_fired"] == [50] and clock["next_level"] == 80
        assert clock["next_fire_at"] == at + timedelta(hours=48 * 0.8)
        assert doc["live_due"] == until and doc["next_fire_at"] == clock["next_fire_at"]
        extended = await read_topic(
            real_servers.bootstrap, SLA_EVENTS_V2, lambda e: mine(e) and e["type"] == "sla.extended.v1", unpack=True
        )
        assert len(extended) == 1
        assert extended[0]["data"]["clock"] == "resolution" and extended[0]["data"]["state"] == "running"
        assert datetime.fromisoformat(extended[0]["data"]["due_at"]) == until
        assert datetime.fromisoformat(extended[0]["data"]["original_due_at"]) == old_due
        assert extended[0]["data"]["remaining_seconds"] == 35 * 3600

        # Redelivered, the approval changes nothing: the document remembers the sequence applied.
        await service.apply_lifecycle(db, broker, book, [approval], at + 14 * H)
        assert (await db.appeals.find_one({"_id": appeal_id}))["version"] == doc["version"]

        assert await fire_at(db, broker, book, old_due) == [], "nothing is due at the old due time"
        assert await fire_at(db, broker, book, until - timedelta(seconds=1)) == [80]
        assert await fire_at(db, broker, book, until) == [100]
        doc, clock = await resolution()
        assert clock["state"] == "breached" and clock["breached_at"] == until and clock["levels_fired"] == [50, 80, 100]

        breached = await read_topic(
            real_servers.bootstrap, SLA_EVENTS_V2, lambda e: mine(e) and e["type"] == "sla.breached.v1", unpack=True
        )
        on_department = await read_topic(
            real_servers.bootstrap, department_topic(DEPT), lambda e: mine(e) and e["type"] == "sla.breached.v1"
        )
        for breach in (*breached, *on_department):
            assert datetime.fromisoformat(breach["data"]["due_at"]) == until
            assert datetime.fromisoformat(breach["data"]["original_due_at"]) == old_due
            assert datetime.fromisoformat(breach["data"]["fired_at"]) == until
        assert len(breached) == len(on_department) == 1
        extended = await read_topic(
            real_servers.bootstrap, SLA_EVENTS_V2, lambda e: mine(e) and e["type"] == "sla.extended.v1", unpack=True
        )
        assert len(extended) == 1, "the replayed approval reported nothing"
    finally:
        await broker.stop()
        await client.drop_database(db.name)
        await client.close()
