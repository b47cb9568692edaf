"""SLA persistence: clocks driven by the lifecycle, and a scheduler that fires each threshold once.

Firing is claim, publish, record: a replica claims a batch of due clocks with one
conditional update (a `claim` token that expires), publishes what is due, then
records it in one bulk write. Only the claimant fires a clock, however many
replicas run. Each threshold's event id is derived from the clock and the level,
so if a crash comes between publishing and recording, the clock is fired again
once the claim expires under the same id: consumers see one event, perhaps
delivered twice, never two warnings. Lifecycle changes use the per-clock outbox.
"""

import asyncio
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from ulid import ULID

from libs import outbox
from libs.calendars import BusinessCalendar
from libs.clock import Clock
from libs.config import City, SlaConfig
from libs.events import AppealChanged, ClockKind, ClockState, CloudEvent, EventType
from libs.ids import new_id
from libs.mongo import update_then_read
from libs.outbox import outbox_items
from services.sla import clocks

log = logging.getLogger(__name__)

SOURCE = "appeals/sla"
CLAIM_TTL = timedelta(seconds=10)
E = EventType


@dataclass(frozen=True)
class SlaBook:
    """Profiles, calendars and who uses which calendar."""

    city: City
    sla: SlaConfig
    calendars: dict[str, BusinessCalendar]

    def calendar_for(self, department: str) -> BusinessCalendar:
        dept = self.city.department(department)
        return self.calendars.get(dept.calendar if dept else "default", self.calendars["default"])

    def target(self, profile: str, kind: ClockKind, cohandlers: bool) -> str:
        p = self.sla.profiles.get(profile) or self.sla.profiles[self.sla.selection[-1].profile]
        if kind == ClockKind.response and cohandlers and p.response_with_cohandlers:
            return p.response_with_cohandlers
        return getattr(p, kind.value)


async def ensure_indexes(db: AsyncDatabase) -> None:
    """The scheduler reads only due clocks; queries never scan running ones."""
    # Few indexes on purpose: every one of them costs each fired threshold a write.
    await db.clocks.create_index([("next_fire_at", ASCENDING)], sparse=True)
    await db.clocks.create_index([("appeal_id", ASCENDING)])
    await db.clocks.create_index([("state", ASCENDING), ("due_at", ASCENDING)])
    await db.clocks.create_index([("outbox_since", ASCENDING)], sparse=True)
    await db.clocks.create_index([("claim_until", ASCENDING)], sparse=True)


async def _write(db: AsyncDatabase, broker: KafkaBroker, doc: dict[str, Any], change: clocks.Change,
                 now: datetime, traceparent: str | None) -> None:
    if not change.set and not change.emits:
        return
    items = outbox_items(SOURCE, change.emits, traceparent, now)
    # Unsetting the claim lets the scheduler look at the changed clock at once.
    update: dict[str, Any] = {"$set": {**change.set, "updated_at": now}, "$inc": {"version": 1},
                              "$unset": {"claim": "", "claim_until": ""}}
    if items:
        update["$set"]["outbox_since"] = now
        update["$push"] = {"outbox": {"$each": items}}
    after = await update_then_read(db.clocks, {"_id": doc["_id"], "version": doc["version"]}, update)
    if after is None:
        raise RuntimeError(f"clock {doc['_id']} changed concurrently; the event will be retried")
    was, now_running = doc["state"] == ClockState.running, after["state"] == ClockState.running
    await _count_running(db, {doc["clock"]: int(now_running) - int(was)})
    await outbox.flush(db.clocks, broker, after)


@dataclass(frozen=True)
class Start:
    """A clock an event starts: which kind, its generation, for which department, from when."""

    kind: ClockKind
    generation: int
    department: str
    started_at: datetime


async def _start(db: AsyncDatabase, broker: KafkaBroker, book: SlaBook, data: AppealChanged, starts: list[Start],
                 now: datetime, traceparent: str | None) -> None:
    """Insert the clocks an event starts in one write, count them, and publish their first events."""
    docs = []
    for start in starts:
        calendar = book.calendar_for(start.department)
        target = book.target(data.sla_profile or "", start.kind, bool(data.cohandlers))
        facts = {"category": data.category.value, "district": data.district}
        doc, emits = clocks.start(data.appeal_id, start.kind, start.generation, start.department,
                                  data.sla_profile or "", target, calendar, start.started_at, now, facts)
        # Warnings and breaches fire on a timer, outside any event's handler: the trace travels with the clock.
        doc.update({"outbox": outbox_items(SOURCE, emits, traceparent, now), "outbox_since": now,
                    "updated_at": now, "traceparent": traceparent})
        docs.append(doc)
    refused: set[int] = set()
    try:
        await db.clocks.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        refused = {e["index"] for e in errors}  # a redelivery: started already
    await _count_running(db, Counter(doc["clock"] for n, doc in enumerate(docs) if n not in refused))
    if refused:
        again = {d["_id"]: d async for d in db.clocks.find({"_id": {"$in": [docs[n]["_id"] for n in refused]}})}
        docs = [again.get(doc["_id"], doc) if n in refused else doc for n, doc in enumerate(docs)]
    await outbox.flush_many(db.clocks, broker, docs)


async def apply_lifecycle(db: AsyncDatabase, broker: KafkaBroker, book: SlaBook, event: CloudEvent[AppealChanged],
                          now: datetime) -> None:
    """Start, stop, pause, resume or cancel the appeal's clocks; a replayed event changes nothing."""
    data = event.data
    state = await db.appeals.find_one({"_id": data.appeal_id}) or {"_id": data.appeal_id, "sequence": 0,
                                                                      "generation": {}}
    if data.sequence <= state["sequence"]:
        return
    generation: dict[str, int] = dict(state.get("generation", {}))
    live = [c async for c in db.clocks.find({"appeal_id": data.appeal_id,
                                              "state": {"$in": [*clocks.LIVE, ClockState.breached.value]}})]
    at = event.time
    trace = event.traceparent

    def of(kind: ClockKind, department: str | None = None) -> list[dict[str, Any]]:
        return [c for c in live if c["clock"] == kind and (department is None or c["department"] == department)]

    async def apply(docs: list[dict[str, Any]], op) -> None:
        for doc in docs:
            await _write(db, broker, doc, op(doc, book.calendars.get(doc["calendar"], book.calendars["default"])),
                         now, trace)

    starts: list[Start] = []

    def begin(kind: ClockKind, department: str, started_at: datetime) -> None:
        generation[kind.value] = generation.get(kind.value, 0) + 1
        starts.append(Start(kind, generation[kind.value], department, started_at))

    def stop(doc, cal):
        return clocks.stop(doc, cal, at)

    def cancel(doc, cal):
        return clocks.cancel(doc, cal, at)

    t = event.type
    if t == E.appeal_routed:
        if not of(ClockKind.resolution):
            begin(ClockKind.resolution, data.department, data.submitted_at)
        begin(ClockKind.scope, data.department, at)
        begin(ClockKind.response, data.department, at)
    elif t == E.appeal_declined:
        await apply(of(ClockKind.scope, data.department), stop)
    elif t in (E.appeal_rerouted, E.appeal_transferred):
        old = data.previous_department
        await apply(of(ClockKind.scope, old), stop)
        await apply(of(ClockKind.response, old), cancel)
        await apply(of(ClockKind.resolution), lambda d, c: clocks.reassign(d, data.department))
        begin(ClockKind.scope, data.department, at)
        begin(ClockKind.response, data.department, at)
    elif t == E.appeal_accepted:
        await apply(of(ClockKind.scope), stop)
        if data.note:  # accepted with a plan: a substantive answer
            await apply(of(ClockKind.response), stop)
    elif t == E.appeal_info_requested:
        await apply(of(ClockKind.scope) + of(ClockKind.response), stop)
        await apply(of(ClockKind.resolution), lambda d, c: clocks.pause(d, c, at))
    elif t == E.appeal_info_provided:
        await apply(of(ClockKind.resolution), lambda d, c: clocks.resume(d, c, at))
    elif t == E.appeal_resolved:
        await apply(live, stop)
    elif t == E.appeal_reopened:
        begin(ClockKind.resolution, data.department, at)
    elif t in (E.appeal_closed, E.appeal_rejected):
        await apply(live, cancel)
    elif t == E.appeal_cohandler_added:
        target = book.target(data.sla_profile or "", ClockKind.response, True)
        await apply(of(ClockKind.response), lambda d, c: clocks.retarget(d, c, target, at))
    if starts:
        await _start(db, broker, book, data, starts, now, trace)
    await db.appeals.update_one({"_id": data.appeal_id},
                                {"$set": {"sequence": data.sequence, "generation": generation}}, upsert=True)


@dataclass
class Fired:
    department: str
    clock: str
    level: int
    lag: float


def threshold_event_id(clock: str, level: int, due: datetime) -> str:
    """The same ULID every time a given threshold of a given clock fires, so a refire is recognisably a copy."""
    digest = hashlib.sha256(f"{clock}:{level}".encode()).digest()
    return str(ULID.from_bytes(int(due.timestamp() * 1000).to_bytes(6, "big") + digest[:10]))


async def fire_due(db: AsyncDatabase, broker: KafkaBroker, book: SlaBook, clock: Clock, batch: int = 1000,
                   lookahead: timedelta = timedelta(0)) -> list[Fired]:
    """Fire every threshold due within `lookahead` among a batch of clocks this replica manages to claim.

    Claiming and reading ahead of time leaves only publishing for the due instant:
    each claimed clock is fired when its threshold comes, not when the batch was read.
    """
    token = new_id()
    now = clock.now()
    # A bare range on the indexed field (no sort, no other condition) keeps the scan to the due entries,
    # which come back in due order; claimed ones are skipped here rather than in the query.
    due = db.clocks.find({"next_fire_at": {"$lte": now + lookahead}}, {"_id": 1, "claim": 1}).limit(batch * 2)
    ids = [d["_id"] async for d in due if d.get("claim") is None][:batch]
    if not ids:
        return []
    await db.clocks.update_many({"_id": {"$in": ids}, "claim": None},
                                {"$set": {"claim": token, "claim_until": now + lookahead + CLAIM_TTL}})
    claimed = [d async for d in db.clocks.find({"_id": {"$in": ids}, "claim": token}, {"outbox": 0})]
    writes, publishing, fired = [], [], []
    for doc in sorted(claimed, key=lambda d: d["next_fire_at"]):
        wait = (doc["next_fire_at"] - clock.now()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        at_now = clock.now()
        calendar = book.calendars.get(doc["calendar"], book.calendars["default"])
        change = clocks.fire(doc, calendar, at_now)
        event_ids = [threshold_event_id(doc["_id"], level, at) for level, at in change.fired for _ in (0, 1)]
        items = outbox_items(SOURCE, change.emits, doc.get("traceparent"), at_now, ids=event_ids)
        if items:
            publishing.append(asyncio.create_task(outbox.publish_items(broker, items)))
        # The version guard loses to a lifecycle change made since the claim (e.g. the clock was met).
        writes.append(UpdateOne({"_id": doc["_id"], "claim": token, "version": doc["version"]},
                                {"$set": {**change.set, "updated_at": at_now}, "$inc": {"version": 1},
                                 "$unset": {"claim": "", "claim_until": ""}}))
        fired += [Fired(doc["department"], doc["clock"], level, (at_now - at).total_seconds())
                  for level, at in change.fired]
    await asyncio.gather(*publishing)
    result = await db.clocks.bulk_write(writes, ordered=False)
    breached = Counter(f.clock for f in fired if f.level == 100)
    if result.modified_count == len(writes):
        await _count_running(db, {clock: -n for clock, n in breached.items()})
    else:
        log.info("some fired clocks changed meanwhile", extra={"claimed": len(writes),
                                                               "written": result.modified_count})
    return fired


async def release_expired_claims(db: AsyncDatabase, now: datetime) -> int:
    """Free the clocks a crashed replica had claimed, so another one fires them."""
    result = await db.clocks.update_many({"claim_until": {"$lt": now}}, {"$unset": {"claim": "", "claim_until": ""}})
    return result.modified_count


async def clocks_of(db: AsyncDatabase, appeal_id: str) -> list[dict[str, Any]]:
    """Every clock of an appeal, oldest first."""
    return [c async for c in db.clocks.find({"appeal_id": appeal_id}, {"outbox": 0})
            .sort([("started_at", ASCENDING), ("clock", ASCENDING)])]


async def at_risk(db: AsyncDatabase, department: str | None, until: datetime, limit: int) -> list[dict[str, Any]]:
    """Running clocks due before `until` (overdue included), soonest first."""
    query: dict[str, Any] = {"state": ClockState.running.value, "due_at": {"$lte": until}}
    if department:
        query["department"] = department
    return [c async for c in db.clocks.find(query, {"outbox": 0}).sort("due_at", ASCENDING).limit(limit)]


async def _count_running(db: AsyncDatabase, deltas: dict[str, int]) -> None:
    writes = [UpdateOne({"_id": f"running:{kind}"}, {"$inc": {"value": delta}}, upsert=True)
              for kind, delta in deltas.items() if delta]
    if writes:
        await db.counters.bulk_write(writes, ordered=False)


async def running_counts(db: AsyncDatabase) -> dict[str, int]:
    """Running clocks per kind, for the `sla_clocks_running` gauge.

    Kept as counters beside the clocks because counting 100,000 clocks on every
    scrape would load the database more than firing them does. The first start
    on an existing clock collection counts once to seed them.
    """
    counters = {d["_id"]: d["value"] async for d in db.counters.find({"_id": {"$regex": "^running:"}})}
    if not counters and await db.clocks.estimated_document_count():
        for kind in ClockKind:
            n = await db.clocks.count_documents({"state": ClockState.running.value, "clock": kind.value})
            await db.counters.update_one({"_id": f"running:{kind.value}"}, {"$setOnInsert": {"value": n}},
                                         upsert=True)
        return await running_counts(db)
    return {kind.value: max(0, counters.get(f"running:{kind.value}", 0)) for kind in ClockKind}


async def flush_stale_outboxes(db: AsyncDatabase, broker: KafkaBroker, now: datetime) -> int:
    """Publish what a crash left in clock outboxes."""
    return await outbox.flush_stale(db.clocks, broker, now)
