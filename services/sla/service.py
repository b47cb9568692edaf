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
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs import claims, outbox
from libs.calendars import BusinessCalendar, Calendars
from libs.claims import Claimed
from libs.clock import Clock
from libs.config import City, SlaConfig
from libs.events import AppealChanged, ClockKind, ClockState, CloudEvent
from libs.ids import stable_id
from libs.mongo import apply_update, as_stored
from libs.outbox import outbox_items
from services.sla import clocks, rules

log = logging.getLogger(__name__)

SOURCE = "appeals/sla"
CLAIM_TTL = timedelta(seconds=10)
# How much later than its stored `next_fire_at` a pass waits for a threshold computed afresh.
ROUNDING = timedelta(milliseconds=50)
# A breached clock still awaits its answer: the lifecycle can stop or cancel it.
ALIVE = (*clocks.LIVE, ClockState.breached.value)


@dataclass(frozen=True)
class SlaBook:
    """Profiles, calendars and who uses which calendar."""

    city: City
    sla: SlaConfig
    calendars: Calendars

    def calendar_for(self, department: str) -> BusinessCalendar:
        """The calendar a department works by (the default one for an unknown department)."""
        return self.calendars.of_department(self.city, department)

    def target(self, profile: str, kind: ClockKind, cohandlers: bool) -> str:
        p = self.sla.profile(profile)
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


@dataclass
class Writes:
    """What a batch of lifecycle events adds up to, written at the end in a few bulk writes.

    Documents are changed in memory as the events are folded in order, so a later
    event of the same appeal sees what an earlier one did; each update is guarded by
    the version it was computed from.
    """

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[UpdateOne] = field(default_factory=list)
    running: Counter = field(default_factory=Counter)
    # Clock id -> the document as it will be once written: its outbox is published at the end.
    touched: dict[str, dict[str, Any]] = field(default_factory=dict)
    appeals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def change(
        self, doc: dict[str, Any], change: clocks.ClockChange, now: datetime, traceparent: str | None
    ) -> dict[str, Any]:
        """Queue a guarded update of one clock; returns the clock as it will be."""
        if not change.set and not change.emits:
            return doc
        # Unsetting the claim lets the scheduler look at the changed clock at once.
        update = outbox.stage(
            {"$set": {**change.set, "updated_at": now}, "$inc": {"version": 1}, "$unset": claims.UNCLAIM},
            outbox_items(SOURCE, change.emits, traceparent, now),
            now,
        )
        self.updates.append(UpdateOne({"_id": doc["_id"], "version": doc["version"]}, update))
        after = apply_update(doc, update)
        running = ClockState.running.value
        self.running[doc["clock"]] += int(after["state"] == running) - int(doc["state"] == running)
        self.touched[doc["_id"]] = after
        return after

    async def write(self, db: AsyncDatabase, broker: KafkaBroker) -> None:
        """Insert, update, count, publish the outboxes, then remember each appeal's sequence."""
        with outbox.held(db.clocks, self.touched):
            await self._write(db, broker)

    async def _write(self, db: AsyncDatabase, broker: KafkaBroker) -> None:
        if self.inserts:
            try:
                await db.clocks.insert_many(self.inserts, ordered=False)
            except BulkWriteError as exc:
                raise ClocksChanged(f"{len(exc.details.get('writeErrors', []))} clocks started meanwhile") from exc
        if self.updates:
            result = await db.clocks.bulk_write(self.updates, ordered=True)
            if result.matched_count != len(self.updates):
                raise ClocksChanged(f"{len(self.updates) - result.matched_count} clocks changed meanwhile")
        await _count_running(db, self.running)
        await outbox.flush_many(db.clocks, broker, list(self.touched.values()))
        if self.appeals:
            await db.appeals.bulk_write(
                [
                    UpdateOne({"_id": appeal_id}, {"$set": state}, upsert=True)
                    for appeal_id, state in self.appeals.items()
                ],
                ordered=False,
            )


class ClocksChanged(RuntimeError):
    """Another writer (the scheduler, another replica) changed a clock first; the batch is retried."""


async def apply_lifecycle(
    db: AsyncDatabase, broker: KafkaBroker, book: SlaBook, events: Sequence[CloudEvent[AppealChanged]], now: datetime
) -> None:
    """Start, stop, pause, resume or cancel the clocks of a batch of lifecycle events, in order.

    A replayed event changes nothing: each appeal remembers the last sequence applied,
    and a clock a redelivered event would start is found already there.
    """
    ids = list(dict.fromkeys(event.data.appeal_id for event in events))
    states = {d["_id"]: d async for d in db.appeals.find({"_id": {"$in": ids}})}
    kept: dict[str, list[dict[str, Any]]] = defaultdict(list)
    async for clock in db.clocks.find({"appeal_id": {"$in": ids}}):
        kept[clock["appeal_id"]].append(clock)
    writes = Writes()
    for event in events:
        appeal_id = event.data.appeal_id
        state = states.get(appeal_id) or {"_id": appeal_id, "sequence": 0, "generation": {}}
        states[appeal_id] = _fold(writes, book, event, state, kept[appeal_id], now)
    await writes.write(db, broker)


def _fold(
    writes: Writes,
    book: SlaBook,
    event: CloudEvent[AppealChanged],
    state: dict[str, Any],
    kept: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """Carry out one event's steps (`rules.steps`) on the appeal's clocks (`kept`, changed in place).

    Returns the appeal's new state: the last sequence applied and each kind's generation.
    """
    data = event.data
    if data.sequence <= state["sequence"]:
        return state
    generation: dict[str, int] = dict(state.get("generation", {}))
    at = event.time
    for step in rules.steps(event.type, data):
        if isinstance(step, rules.Start):
            if step.only_if_none_alive and _alive(kept, step.kind, None):
                continue
            generation[step.kind.value] = generation.get(step.kind.value, 0) + 1
            _begin(writes, book, event, step, generation[step.kind.value], kept, now)
            continue
        change = _VERBS[step.verb]
        target = book.target(data.sla_profile or "", ClockKind.response, True) if step.verb == "retarget" else None
        for doc in _alive(kept, step.kinds, step.department):
            calendar = book.calendars.named(doc["calendar"])
            after = writes.change(doc, change(doc, calendar, at, step.to or target), now, event.traceparent)
            kept[kept.index(doc)] = after
    writes.appeals[data.appeal_id] = {"sequence": data.sequence, "generation": generation}
    return {"_id": data.appeal_id, **writes.appeals[data.appeal_id]}


# What each verb of the table does to one clock; the last argument is the reassign's department or the new target.
_VERBS: dict[str, Callable[[dict[str, Any], BusinessCalendar, datetime, Any], clocks.ClockChange]] = {
    "stop": lambda doc, cal, at, _: clocks.stop(doc, cal, at),
    "cancel": lambda doc, cal, at, _: clocks.cancel(doc, cal, at),
    "pause": lambda doc, cal, at, _: clocks.pause(doc, cal, at),
    "resume": lambda doc, cal, at, _: clocks.resume(doc, cal, at),
    "reassign": lambda doc, cal, at, department: clocks.reassign(doc, department),
    "retarget": lambda doc, cal, at, target: clocks.retarget(doc, cal, target, at),
}


def _alive(
    kept: list[dict[str, Any]], kinds: ClockKind | tuple[ClockKind, ...] | None, department: str | None
) -> list[dict[str, Any]]:
    """The appeal's clocks still counting or awaiting an answer, of `kinds` and `department` when given."""
    wanted = (kinds,) if isinstance(kinds, ClockKind) else kinds
    return [
        c
        for c in kept
        if c["state"] in ALIVE
        and (wanted is None or c["clock"] in wanted)
        and (department is None or c["department"] == department)
    ]


def _begin(
    writes: Writes,
    book: SlaBook,
    event: CloudEvent[AppealChanged],
    step: rules.Start,
    generation: int,
    kept: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Start one run of a clock, unless an earlier delivery of the event started it already."""
    data = event.data
    clock_id = clocks.clock_id(data.appeal_id, step.kind, generation)
    there = next((c for c in kept if c["_id"] == clock_id), None)
    if there is not None:
        # Started by an earlier delivery of this event: publish what it still owes, start nothing.
        writes.touched.setdefault(clock_id, there)
        return
    calendar = book.calendar_for(step.department)
    target = book.target(data.sla_profile or "", step.kind, bool(data.cohandlers))
    facts = {"category": data.category.value, "district": data.district}
    started_at = data.submitted_at if step.from_submission else event.time
    doc, emits = clocks.start(
        data.appeal_id,
        step.kind,
        generation,
        step.department,
        data.sla_profile or "",
        target,
        calendar,
        started_at,
        now,
        facts,
    )
    # Warnings and breaches fire on a timer, outside any event's handler: the trace travels with the clock.
    doc.update(
        {
            "outbox": outbox_items(SOURCE, emits, event.traceparent, now),
            "outbox_since": now,
            "updated_at": now,
            "traceparent": event.traceparent,
        }
    )
    doc = as_stored(doc)  # as the database will hold it (milliseconds), for the updates that follow
    writes.inserts.append(doc)
    writes.running[step.kind.value] += 1
    writes.touched[clock_id] = doc
    kept.append(doc)


@dataclass
class Fired:
    department: str
    clock: str
    level: int
    lag: float


def threshold_event_id(clock: str, level: int, due: datetime) -> str:
    """The same ULID every time a given threshold of a given clock fires, so a refire is recognisably a copy."""
    return stable_id(f"{clock}:{level}", due)


async def claim_due(
    db: AsyncDatabase, clock: Clock, batch: int = 1000, lookahead: timedelta = timedelta(0), skip: int = 0
) -> Claimed:
    """Claim up to `batch` clocks with a threshold due within `lookahead`, soonest first.

    Claiming ahead of time leaves only publishing for the due instant. `skip` is how
    many due clocks other passes of this replica may still hold.
    """
    now = clock.now()
    claimed = await claims.claim_due(
        db.clocks,
        "next_fire_at",
        now + lookahead,
        limit=batch,
        skip=skip,
        hold_until=now + lookahead + CLAIM_TTL,
        projection={"outbox": 0},
    )
    claimed.docs.sort(key=lambda d: d["next_fire_at"])
    return claimed


async def fire_claimed(
    db: AsyncDatabase, broker: KafkaBroker, book: SlaBook, clock: Clock, claimed: Claimed
) -> list[Fired]:
    """Fire each claimed clock when its threshold comes, then record them all in one bulk write."""
    writes, publishing, fired = [], [], []
    for doc in claimed.docs:
        calendar = book.calendars.named(doc["calendar"])
        # The stored instant is rounded to the millisecond, and asyncio may wake a little early: waking
        # before the threshold fires nothing and leaves the clock to a later pass, late by a whole cycle.
        due = doc["next_fire_at"]
        if doc.get("next_level"):
            due = max(due, min(clocks.level_at(doc, calendar, doc["next_level"]), due + ROUNDING))
        while (wait := (due - clock.now()).total_seconds()) > 0:
            await asyncio.sleep(wait)
        at_now = clock.now()
        change = clocks.fire(doc, calendar, at_now)
        event_ids = [threshold_event_id(doc["_id"], level, at) for level, at in change.fired for _ in (0, 1)]
        items = outbox_items(SOURCE, change.emits, doc.get("traceparent"), at_now, ids=event_ids)
        if items:
            publishing.append(asyncio.create_task(outbox.publish_items(broker, items)))
        # The version guard loses to a lifecycle change made since the claim (e.g. the clock was met).
        writes.append(
            UpdateOne(
                {"_id": doc["_id"], "claim": claimed.token, "version": doc["version"]},
                {"$set": {**change.set, "updated_at": at_now}, "$inc": {"version": 1}, "$unset": claims.UNCLAIM},
            )
        )
        fired += [
            Fired(doc["department"], doc["clock"], level, (at_now - at).total_seconds()) for level, at in change.fired
        ]
    await asyncio.gather(*publishing)
    if not writes:
        return fired
    result = await db.clocks.bulk_write(writes, ordered=False)
    breached = Counter(f.clock for f in fired if f.level == 100)
    if result.modified_count == len(writes):
        await _count_running(db, {clock: -n for clock, n in breached.items()})
    else:
        log.info(
            "some fired clocks changed meanwhile", extra={"claimed": len(writes), "written": result.modified_count}
        )
    return fired


async def release_expired_claims(db: AsyncDatabase, now: datetime) -> int:
    """Free the clocks a crashed replica had claimed, so another one fires them."""
    return await claims.release_expired(db.clocks, now)


async def clocks_of(db: AsyncDatabase, appeal_id: str) -> list[dict[str, Any]]:
    """Every clock of an appeal, oldest first."""
    return [
        c
        async for c in db.clocks.find({"appeal_id": appeal_id}, {"outbox": 0}).sort(
            [("started_at", ASCENDING), ("clock", ASCENDING)]
        )
    ]


async def at_risk(db: AsyncDatabase, department: str | None, until: datetime, limit: int) -> list[dict[str, Any]]:
    """Running clocks due before `until` (overdue included), soonest first."""
    query: dict[str, Any] = {"state": ClockState.running.value, "due_at": {"$lte": until}}
    if department:
        query["department"] = department
    return [c async for c in db.clocks.find(query, {"outbox": 0}).sort("due_at", ASCENDING).limit(limit)]


async def _count_running(db: AsyncDatabase, deltas: dict[str, int]) -> None:
    writes = [
        UpdateOne({"_id": f"running:{kind}"}, {"$inc": {"value": delta}}, upsert=True)
        for kind, delta in deltas.items()
        if delta
    ]
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
            await db.counters.update_one({"_id": f"running:{kind.value}"}, {"$setOnInsert": {"value": n}}, upsert=True)
        return await running_counts(db)
    return {kind.value: max(0, counters.get(f"running:{kind.value}", 0)) for kind in ClockKind}


async def flush_stale_outboxes(db: AsyncDatabase, broker: KafkaBroker, now: datetime) -> int:
    """Publish what a crash left in clock outboxes."""
    return await outbox.flush_stale(db.clocks, broker, now)
