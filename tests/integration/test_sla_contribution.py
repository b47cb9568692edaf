"""Co-handlers' contribution clocks on the real broker and database: each co-handler's own, held against it.

The scheduler runs on a clock the test sets. The supervision config gives a co-handler three seconds to
contribute and urges two seconds after a breach, so a late contribution breaches within the test.
"""

import dataclasses
from datetime import UTC, datetime, timedelta

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from libs.config import CohandlingRules, UrgingLevel, UrgingRules
from libs.contract import SLA_EVENTS_V2, department_topic
from libs.ids import new_id
from libs.kinds import AppealStatus, EventType
from libs.settings import PROJECT_ROOT
from services.sla import service
from services.sla.app import load_book
from services.sla.fold import SlaBook
from tests.helpers import read_topic
from tests.integration.test_sla_urging import fire_at
from tests.unit.test_stats import DEPT, changed

S = timedelta(seconds=1)
# The lead is DEPT (nanshan-finance); one co-handler contributes late, the other in time.
LATE, PROMPT = "nanshan-tax", "nanshan-hrss"


def fast_cohandling_book() -> SlaBook:
    """The configured book with a contribution of 3 s and the ladder in seconds (level 2 two after the breach)."""
    book = load_book(PROJECT_ROOT / "config")
    levels = [
        UrgingLevel(level=rung.level, after_breach=after, audiences=rung.audiences)
        for rung, after in zip(book.ladder, ("2s", "4s"), strict=True)
    ]
    supervision = book.supervision.model_copy(
        update={"urging": UrgingRules(levels=levels), "cohandling": CohandlingRules(contribution="3s")}
    )
    return dataclasses.replace(book, supervision=supervision)


async def test_a_late_contribution_breaches_against_its_cohandler_and_one_in_time_is_met(real_servers):
    book = fast_cohandling_book()
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"sla_contribution_{new_id().lower()}"]
    broker = KafkaBroker(real_servers.bootstrap)
    await broker.start()
    appeal_id = new_id()
    at = datetime.now(UTC).replace(microsecond=0)
    due, level_2 = at + 3 * S, at + 5 * S

    def event(type_: str, status: str, seq: int, when: datetime, **extra):
        return changed(
            type_, status, seq, when, appeal_id=appeal_id, submitted_at=at, cohandlers=[LATE, PROMPT], **extra
        )

    def contribution(by: str, seq: int, when: datetime):
        return event(EventType.appeal_contributed, AppealStatus.resolved, seq, when, actor=by, note="our part")

    async def events(topic: str, type_: str, count: int = 1, unpack: bool = False, timeout: float = 5) -> list:
        wanted = lambda e: e.get("subject") == appeal_id and e["type"] == type_  # noqa: E731
        return await read_topic(real_servers.bootstrap, topic, wanted, count=count, unpack=unpack, timeout=timeout)

    try:
        await service.ensure_indexes(db)
        routed = event(EventType.appeal_routed, AppealStatus.routed, 1, at)
        await service.apply_lifecycle(db, broker, book, [routed], at)
        doc = await db.appeals.find_one({"_id": appeal_id})
        ids = {c["department"]: c["_id"] for c in doc["clocks"] if c["clock"] == "contribution"}
        assert ids == {LATE: f"{appeal_id}:contribution:1", PROMPT: f"{appeal_id}:contribution:2"}
        assert {c["due_at"] for c in doc["clocks"] if c["clock"] == "contribution"} == {due}
        assert doc["next_fire_at"] == at + 1.5 * S, "the contributions' 50 % comes first"

        # One co-handler contributes in time; the lead accepts with a plan and resolves before the other has.
        await service.apply_lifecycle(
            db,
            broker,
            book,
            [
                contribution(PROMPT, 2, at + S),
                event(EventType.appeal_accepted, AppealStatus.accepted, 3, at + 2 * S, note="a plan"),
                event(EventType.appeal_resolved, AppealStatus.resolved, 4, at + 2 * S, resolution="done"),
            ],
            at + 2 * S,
        )

        # The late one's clock warns, breaches, then climbs the ladder; nothing else fires.
        assert await fire_at(db, broker, book, due) == [("contribution", level, False) for level in (50, 80, 100)]
        assert await fire_at(db, broker, book, level_2) == [("contribution", 2, True)]
        # Its part comes at last: the breach stands, and is urged no more.
        await service.apply_lifecycle(db, broker, book, [contribution(LATE, 5, level_2 + S)], level_2 + S)
        assert await fire_at(db, broker, book, at + 60 * S) == []

        doc = await db.appeals.find_one({"_id": appeal_id})
        states = {(c["clock"], c["department"]): c["state"] for c in doc["clocks"]}
        assert states == {
            ("scope", DEPT): "met",
            ("response", DEPT): "met",
            ("resolution", DEPT): "met",
            ("contribution", PROMPT): "met",
            ("contribution", LATE): "breached",
        }, "the lead's clocks met at its resolution, unaffected by the missing contribution"
        late = next(c for c in doc["clocks"] if c["_id"] == ids[LATE])
        assert late["ended_at"] == level_2 + S and late["urges_fired"] == [2]
        assert "next_fire_at" not in doc and "live_due" not in doc, "nothing left to fire or to run"

        # The breach is the co-handler's: on sla.events.v2 and on its own department's topic, once.
        for topic, unpack in ((SLA_EVENTS_V2, True), (department_topic(LATE), False)):
            breaches = await events(topic, "sla.breached.v1", count=2, unpack=unpack, timeout=3)
            assert [(e["data"]["clock_id"], e["data"]["department"]) for e in breaches] == [(ids[LATE], LATE)], topic
            assert breaches[0]["data"]["clock"] == "contribution" and breaches[0]["data"]["level"] == 100
            urged = await events(topic, "sla.urged.v1", count=2, unpack=unpack, timeout=3)
            assert [(e["data"]["clock_id"], e["data"]["urge_level"]) for e in urged] == [(ids[LATE], 2)], topic
        met = await events(SLA_EVENTS_V2, "sla.met.v1", count=5, unpack=True)
        assert sorted((e["data"]["clock"], e["data"]["department"]) for e in met) == [
            ("contribution", PROMPT),
            ("resolution", DEPT),
            ("response", DEPT),
            ("scope", DEPT),
        ]
        # Neither the lead nor the co-handler in time hears of a warning or a breach.
        for dept in (DEPT, PROMPT):
            for type_ in ("sla.warning.v1", "sla.breached.v1"):
                assert await events(department_topic(dept), type_, timeout=1) == [], (dept, type_)
    finally:
        await broker.stop()
        await client.drop_database(db.name)
        await client.close()
