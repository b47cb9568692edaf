"""SLA's scheduler on the real broker and database: a claimed threshold fires on its instant."""

from datetime import UTC, datetime, timedelta

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from libs.calendars import load_calendars
from libs.config import load_city, load_sla_config
from libs.contract import SLA_EVENTS
from libs.events import ClockKind
from libs.ids import new_id
from libs.mongo import as_stored
from libs.settings import PROJECT_ROOT
from services.sla import clocks, service
from tests.helpers import read_topic


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
    config = PROJECT_ROOT / "config"
    calendars = load_calendars(config)
    book = service.SlaBook(load_city(config), load_sla_config(config), calendars)
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
        await db.clocks.insert_one(doc)
        claimed = await service.claim_due(db, WakesEarlyClock([due]), lookahead=timedelta(seconds=1))
        assert [d["_id"] for d in claimed.docs] == [doc["_id"]]

        early = due - timedelta(microseconds=400)
        clock = WakesEarlyClock([due - timedelta(microseconds=900), early, due])
        fired = await service.fire_claimed(db, broker, book, clock, claimed)

        assert [(f.level, f.lag) for f in fired] == [(50, 0.0)], "fired once, on the instant, not a pass later"
        stored = await db.clocks.find_one({"_id": doc["_id"]})
        assert stored["levels_fired"] == [50] and stored["next_level"] == 80 and "claim" not in stored
        warnings = await read_topic(
            real_servers.bootstrap,
            SLA_EVENTS,
            lambda e: e.get("subject") == appeal_id and e["type"] == "sla.warning.v1",
        )
        assert warnings[0]["data"]["level"] == 50
    finally:
        await broker.stop()
        await client.drop_database(db.name)
        await client.close()
