"""SLA persistence: an appeal's clocks in its one document, driven by the lifecycle, and a scheduler
that fires each threshold, and each level of the urging ladder, once.

One document per appeal holds its clocks (scope, response, resolution and their later
runs), the last lifecycle sequence applied, an outbox, and the two instants the queries
need: `next_fire_at` (its earliest threshold, or urging level of a breached clock still
awaiting its answer) and `live_due` (its earliest running clock's due time). The
database's cost follows the documents written, so a batch of lifecycle events writes
each appeal once, whatever it does to how many clocks.

Firing is claim, publish, record: a replica claims a batch of appeals with a threshold
due with one conditional update (a `claim` token that expires), publishes what is
due, then records it in one bulk write. Only the claimant fires, however many replicas
run. Each threshold's event id is derived from the clock and the level, so if a crash
comes between publishing and recording, the clock is fired again once the claim
expires under the same id: consumers see one event, perhaps delivered twice, never two
warnings. Urging levels go the same way under ids of their own (`urge_event_id`), and
only if the appeal has not changed since the claim (`_still_claimed`). Lifecycle
changes use the document's outbox.

What one change does to an appeal's clocks (the starts of a routing, the thresholds one
pass reaches) goes out as one `sla.reported.v2` event with a report per clock (`pack`),
and each warning, breach and urging level (`sla.urged.v1`) also on its own to the
department's topic.
"""

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs import claims, outbox
from libs.claims import Claimed
from libs.clock import Clock
from libs.contract import SLA_EVENTS, SLA_EVENTS_V2
from libs.envelopes import CloudEvent
from libs.events import AppealChanged, SlaClockChanged, SlaClockReport, SlaClocksReported, SlaClockType
from libs.ids import new_id, stable_id
from libs.kafka.consuming import Contention
from libs.kinds import ClockKind, ClockState, EventType
from libs.mongo import ID_CHUNK, apply_update, as_stored, due_by, only_duplicates
from libs.outbox import Emit, outbox_items
from libs.paging import Key
from services.sla import clocks, fold
from services.sla.fold import SlaBook

log = logging.getLogger(__name__)

SOURCE = "appeals/sla"
CLAIM_TTL = timedelta(seconds=10)
# How much later than its stored `next_fire_at` a pass waits for a threshold computed afresh.
ROUNDING = timedelta(milliseconds=50)
RUNNING = ClockState.running.value


async def ensure_indexes(db: AsyncDatabase) -> None:
    """The scheduler reads only appeals with a threshold due; queries never scan the others."""
    # Few indexes on purpose: the server rewrites every one of them on each write of the document.
    await db.appeals.create_index([("next_fire_at", ASCENDING)], sparse=True)
    await db.appeals.create_index([("live_due", ASCENDING)], sparse=True)
    await db.appeals.create_index([("outbox_since", ASCENDING)], sparse=True)
    await db.appeals.create_index([("claim_until", ASCENDING)], sparse=True)
    await adopt_clock_documents(db)


def summary(kept: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The appeal's earliest threshold or urging level, and earliest running due time: fields to set, and those
    to unset. A breached clock keeps its next urging level until it is answered or cancelled; it has no running
    due time, so it never counts as at risk (`live_due`, `at_risk`)."""
    kept = list(kept)
    instants = {
        "next_fire_at": min((c["next_fire_at"] for c in kept if c.get("next_fire_at")), default=None),
        "live_due": min((c["due_at"] for c in kept if c["state"] == RUNNING and c.get("due_at")), default=None),
    }
    return {k: v for k, v in instants.items() if v}, {k: "" for k, v in instants.items() if not v}


def clocks_update(kept: list[dict[str, Any]], unclaim: bool = True, **fields: Any) -> dict[str, Any]:
    """The update storing `kept` as the appeal's clocks (and `fields`) with its two instants, under a new version.

    It also drops the claim unless told not to: the scheduler then looks at the changed appeal at once.
    """
    found, gone = summary(kept)
    unset = {**claims.UNCLAIM, **gone} if unclaim else gone
    update = {"$set": {"clocks": kept, **fields, **found}, "$inc": {"version": 1}, "$unset": unset}
    return {k: v for k, v in update.items() if v}


def by_start(kept: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clocks oldest first (the kinds of one start in name order)."""
    return sorted(kept, key=lambda c: (c["started_at"], c["clock"]))


def appeal_document(
    appeal_id: str, kept: list[dict[str, Any]], sequence: int = 0, generation: dict[str, int] | None = None
) -> dict[str, Any]:
    """A new appeal's document holding `kept` clocks, as it is stored."""
    found, _ = summary(kept)
    doc = {"_id": appeal_id, "sequence": sequence, "generation": generation or {}, "version": 1, "clocks": kept}
    return as_stored({**doc, **found})


def running_by_kind(kept: Iterable[dict[str, Any]]) -> Counter[str]:
    """Running clocks per kind."""
    return Counter(c["clock"] for c in kept if c["state"] == RUNNING)


class ClocksChanged(Contention):
    """Another writer (the scheduler, another replica) changed an appeal first; the batch is retried."""


async def apply_lifecycle(
    db: AsyncDatabase, broker: KafkaBroker, book: SlaBook, events: Sequence[CloudEvent[AppealChanged]], now: datetime
) -> None:
    """Start, stop, pause, resume or cancel the clocks of a batch of lifecycle events, in order.

    Each appeal's events are folded into its document in memory (`fold.fold`), which is then written
    once, guarded by the version it was read at. A replayed event changes nothing: the
    document remembers the last sequence applied.
    """
    ids = list(dict.fromkeys(event.data.appeal_id for event in events))
    stored = {d["_id"]: d async for d in db.appeals.find({"_id": {"$in": ids}})}
    folded: dict[str, dict[str, Any]] = {}
    items: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        appeal_id = event.data.appeal_id
        doc = folded.get(appeal_id) or stored.get(appeal_id) or fold.new_appeal(appeal_id)
        folded[appeal_id], emits = fold.fold(book, event, doc, now)
        packed, ids = pack(appeal_id, emits, [new_id() for _ in emits], now, book.publish_v1)
        items[appeal_id] += outbox_items(SOURCE, packed, event.traceparent, now, ids=ids)
    changed = {i: d for i, d in folded.items() if d["clocks"] != stored.get(i, {}).get("clocks", [])}
    await _write(db, broker, stored, changed, items, now)


async def _write(
    db: AsyncDatabase,
    broker: KafkaBroker,
    stored: dict[str, dict[str, Any]],
    changed: dict[str, dict[str, Any]],
    items: dict[str, list[dict[str, Any]]],
    now: datetime,
) -> None:
    """Insert the new appeals, update the others guarded by version, count, then publish the outboxes."""
    inserts, updates, written = [], [], []
    running: Counter[str] = Counter()
    for appeal_id, doc in changed.items():
        before = stored.get(appeal_id)
        running.update(running_by_kind(doc["clocks"]))
        running.subtract(running_by_kind(before["clocks"] if before else []))
        if before is None:
            new = appeal_document(appeal_id, doc["clocks"], doc["sequence"], doc["generation"])
            new["updated_at"] = as_stored(now)
            if items[appeal_id]:
                new.update(as_stored({"outbox": items[appeal_id], "outbox_since": now}))
            inserts.append(new)
            written.append(new)
            continue
        fields = {"sequence": doc["sequence"], "generation": doc["generation"], "updated_at": now}
        update = outbox.stage(clocks_update(doc["clocks"], **fields), items[appeal_id], now)
        updates.append(UpdateOne({"_id": appeal_id, "version": before.get("version")}, update))
        written.append(apply_update(before, update))
    with outbox.held(db.appeals, changed):
        if inserts:
            try:
                await db.appeals.insert_many(inserts, ordered=False)
            except BulkWriteError as exc:
                if not only_duplicates(exc):
                    raise
                raise ClocksChanged(f"{len(exc.details.get('writeErrors', []))} appeals started meanwhile") from exc
        if updates:
            result = await db.appeals.bulk_write(updates, ordered=False)
            if result.matched_count != len(updates):
                raise ClocksChanged(f"{len(updates) - result.matched_count} appeals changed meanwhile")
        await _count_running(db, running)
        await outbox.flush_many(db.appeals, broker, written)


@dataclass
class Fired:
    department: str
    clock: str
    level: int
    lag: float
    # An urging level (2, 3) rather than a threshold (50, 80, 100).
    urge: bool = False


def pack(
    appeal_id: str, emits: list[Emit], ids: list[str], at: datetime, publish_v1: bool = False
) -> tuple[list[Emit], list[str]]:
    """The events owed for `emits` (with `ids`), with their clock reports packed into one `sla.reported.v2`.

    Each report keeps the id its `sla.*.v1` event has, so a reader of both topics sees one id
    twice and drops the copy. The packed event's id follows from its reports' and `at`, so a
    threshold fired again is packed again under the same id. Department topics keep their events.
    """
    reports = [
        SlaClockReport(id=i, type=cast(SlaClockType, e.type), data=cast(SlaClockChanged, e.data))
        for e, i in zip(emits, ids, strict=True)
        if e.topic == SLA_EVENTS
    ]
    if not reports:
        return emits, ids
    kept = [(e, i) for e, i in zip(emits, ids, strict=True) if publish_v1 or e.topic != SLA_EVENTS]
    packed = Emit(SLA_EVENTS_V2, EventType.sla_reported, SlaClocksReported(appeal_id=appeal_id, reports=reports))
    return [packed, *(e for e, _ in kept)], [stable_id(",".join(r.id for r in reports), at), *(i for _, i in kept)]


def threshold_event_id(clock: str, level: int, due: datetime) -> str:
    """The same ULID every time a given threshold of a given clock fires, so a refire is recognisably a copy."""
    return stable_id(f"{clock}:{level}", due)


def urge_event_id(clock: str, level: int, due: datetime) -> str:
    """The same ULID every time a given urging level of a given clock fires, as `threshold_event_id`."""
    return stable_id(f"{clock}:urge:{level}", due)


async def claim_due(
    db: AsyncDatabase, clock: Clock, batch: int = 1000, lookahead: timedelta = timedelta(0), skip: int = 0
) -> Claimed:
    """Claim up to `batch` appeals with a threshold due within `lookahead`, soonest first.

    Claiming ahead of time leaves only publishing for the due instant. `skip` is how
    many due appeals other passes of this replica may still hold.
    """
    now = clock.now()
    claimed = await claims.claim_due(
        db.appeals,
        "next_fire_at",
        now + lookahead,
        limit=batch,
        skip=skip,
        hold_until=now + lookahead + CLAIM_TTL,
        projection={"outbox": 0},
    )
    claimed.docs.sort(key=lambda d: d["next_fire_at"])
    return claimed


def _wake_at(doc: dict[str, Any], book: SlaBook) -> datetime:
    """When the appeal's first threshold or urging level is due, computed afresh from its clock.

    The stored instant is rounded to the millisecond, and asyncio may wake a little early: waking
    before the threshold fires nothing and leaves the clock to a later pass, late by a whole cycle.
    """
    due = doc["next_fire_at"]
    first = next((c for c in doc["clocks"] if c.get("next_fire_at") == due), None)
    exact = clocks.next_instant(first, book.calendars.named(first["calendar"]), book.ladder) if first else None
    if exact is None:
        return due
    return max(due, min(exact, due + ROUNDING))


async def _still_claimed(db: AsyncDatabase, doc: dict[str, Any], token: str) -> bool:
    """The appeal is as the pass read it: no lifecycle change (an answer, a cancellation) came since the claim.

    Asked only before an urging level goes out. A claim is taken up to `lookahead` before the instant, and
    an answer in between must stop the level: a level is owed only while its clock awaits its answer. A
    warning or a breach is owed at its instant whatever came after, so they are not asked about.
    """
    found = await db.appeals.find_one({"_id": doc["_id"], "claim": token, "version": doc["version"]}, {"_id": 1})
    return found is not None


async def fire_claimed(
    db: AsyncDatabase, broker: KafkaBroker, book: SlaBook, clock: Clock, claimed: Claimed
) -> list[Fired]:
    """Fire each claimed appeal's due thresholds and urging levels when they come, then record them all in one
    bulk write."""
    writes, publishing, fired = [], [], []
    breached: Counter[str] = Counter()
    for doc in claimed.docs:
        due = _wake_at(doc, book)
        while (wait := (due - clock.now()).total_seconds()) > 0:
            await asyncio.sleep(wait)
        at_now = clock.now()
        kept, items, reports, done = [], [], [], []
        # The first threshold or level reached: it times the packed event's id, and its clock's trace carries it.
        first: tuple[datetime, str | None] | None = None
        for c in doc["clocks"]:
            change = clocks.fire(c, book.calendars.named(c["calendar"]), at_now, book.ladder)
            # Each threshold and level under one id, in the appeal's report and on the department's topic; the
            # change lists the thresholds' events first, then the levels', two of each.
            event_ids = [threshold_event_id(c["_id"], level, at) for level, at in change.fired for _ in (0, 1)]
            event_ids += [urge_event_id(c["_id"], level, at) for level, at in change.urged for _ in (0, 1)]
            for emit, event_id in zip(change.emits, event_ids, strict=True):
                if emit.topic == SLA_EVENTS:
                    reports.append((emit, event_id))
                else:
                    items += outbox_items(SOURCE, [emit], c.get("traceparent"), at_now, ids=[event_id])
            reached = [*change.fired, *change.urged]
            if reached and first is None:
                first = (reached[0][1], c.get("traceparent"))
            kept.append({**c, **change.set})
            done += [Fired(c["department"], c["clock"], lv, (at_now - at).total_seconds()) for lv, at in change.fired]
            done += [
                Fired(c["department"], c["clock"], lv, (at_now - at).total_seconds(), urge=True)
                for lv, at in change.urged
            ]
        if any(f.urge for f in done) and not await _still_claimed(db, doc, claimed.token):
            # Changed since the claim: the change unclaimed it, and the next pass fires what is still owed.
            log.info("an urged appeal changed meanwhile", extra={"appeal_id": doc["_id"]})
            continue
        fired += done
        breached.update(f.clock for f in done if f.level == 100 and not f.urge)
        if first is not None:
            packed, ids = pack(doc["_id"], [e for e, _ in reports], [i for _, i in reports], first[0], book.publish_v1)
            items = outbox_items(SOURCE, packed, first[1], at_now, ids=ids) + items
            publishing.append(asyncio.create_task(outbox.publish_items(broker, items)))
        # The version guard loses to a lifecycle change made since the claim (e.g. a clock was met).
        guard = {"_id": doc["_id"], "claim": claimed.token, "version": doc["version"]}
        writes.append(UpdateOne(guard, clocks_update(kept, updated_at=at_now)))
    await asyncio.gather(*publishing)
    if not writes:
        return fired
    result = await db.appeals.bulk_write(writes, ordered=False)
    if result.modified_count == len(writes):
        await _count_running(db, {kind: -n for kind, n in breached.items()})
    else:
        log.info(
            "some fired appeals changed meanwhile", extra={"claimed": len(writes), "written": result.modified_count}
        )
    return fired


async def release_expired_claims(db: AsyncDatabase, now: datetime) -> int:
    """Free the appeals a crashed replica had claimed, so another one fires them."""
    return await claims.release_expired(db.appeals, now)


async def clocks_of(db: AsyncDatabase, appeal_id: str) -> list[dict[str, Any]]:
    """Every clock of an appeal, oldest first."""
    doc = await db.appeals.find_one({"_id": appeal_id}, {"clocks": 1})
    return by_start((doc or {}).get("clocks", []))


async def at_risk(
    db: AsyncDatabase, department: str | None, until: datetime, *, limit: int, after: Key | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the running clocks due before `until` (overdue included), soonest first (`clock_key`), after the key
    `after`, and whether more follow."""
    found: list[dict[str, Any]] = []
    # Appeals come by their earliest running due time, so once more than `limit` clocks after the cursor are due
    # before the next appeal's earliest, no later appeal can add one to the page (nor come before its last, even
    # at the same instant). An appeal's clocks may run out at any time after its earliest: every appeal before the
    # cursor's due time is read again for each page.
    async for doc in db.appeals.find({"live_due": due_by(until)}, {"clocks": 1, "live_due": 1}).sort("live_due"):
        if len(found) > limit and found[limit]["due_at"] < doc["live_due"]:
            break
        found += [
            c
            for c in doc["clocks"]
            if c["state"] == RUNNING
            and c.get("due_at")
            and c["due_at"] <= until
            and (department is None or c["department"] == department)
            and (after is None or clock_key(c) > after)
        ]
        found.sort(key=clock_key)
    return found[:limit], len(found) > limit


def clock_key(clock: dict[str, Any]) -> Key:
    """Where a clock stands among those at risk: its due time, then its id."""
    return (clock["due_at"], clock["_id"])


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

    Kept as counters beside the appeals because counting 100,000 clocks on every
    scrape would load the database more than firing them does. The first start on
    existing appeals counts once to seed them.
    """
    counters = {d["_id"]: d["value"] async for d in db.counters.find({"_id": {"$regex": "^running:"}})}
    if not counters and await db.appeals.estimated_document_count():
        seen: Counter[str] = Counter()
        async for doc in db.appeals.find({"live_due": {"$exists": True}}, {"clocks": 1}):
            seen.update(running_by_kind(doc["clocks"]))
        for kind in ClockKind:
            await db.counters.update_one(
                {"_id": f"running:{kind.value}"}, {"$setOnInsert": {"value": seen[kind.value]}}, upsert=True
            )
        return await running_counts(db)
    return {kind.value: max(0, counters.get(f"running:{kind.value}", 0)) for kind in ClockKind}


async def flush_stale_outboxes(db: AsyncDatabase, broker: KafkaBroker, now: datetime) -> int:
    """Publish what a crash left in appeals' outboxes."""
    return await outbox.flush_stale(db.appeals, broker, now)


# Fields of an earlier version's clock document that belonged to the document, not to the clock.
_DOCUMENT_FIELDS = ("outbox", "outbox_since", "claim", "claim_until", "updated_at", "version")


async def adopt_clock_documents(db: AsyncDatabase) -> int:
    """Move the clocks an earlier version kept one per document into their appeals' documents.

    Idempotent, and run before consuming: an appeal keeps the clocks it holds already,
    gains the others, and takes over what their outboxes still owed (published by the
    sweep under the same ids). Returns how many clock documents were moved.
    """
    if "clocks" not in await db.list_collection_names():
        return 0
    moved, now = 0, as_stored(datetime.now(UTC))
    while olds := [c async for c in db.clocks.find({}).limit(ID_CHUNK)]:
        by_appeal: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for old in olds:
            by_appeal[old["appeal_id"]].append(old)
        stored = {d["_id"]: d async for d in db.appeals.find({"_id": {"$in": list(by_appeal)}})}
        writes = []
        for appeal_id, group in by_appeal.items():
            doc = stored.get(appeal_id, {})
            kept = {c["_id"]: c for c in doc.get("clocks", [])}
            owed = [item for old in group for item in old.get("outbox") or []]
            for old in group:
                kept.setdefault(old["_id"], {k: v for k, v in old.items() if k not in _DOCUMENT_FIELDS})
            ordered = by_start(kept.values())
            generation: dict[str, int] = {}
            for c in ordered:
                generation[c["clock"]] = max(generation.get(c["clock"], 0), c["generation"])
            since = min((old["outbox_since"] for old in group if old.get("outbox_since")), default=now)
            update = {
                **clocks_update(ordered, unclaim=False),
                "$setOnInsert": {"sequence": 0, "generation": generation},
            }
            writes.append(UpdateOne({"_id": appeal_id}, outbox.stage(update, owed, since), upsert=True))
        await db.appeals.bulk_write(writes, ordered=False)
        await db.clocks.delete_many({"_id": {"$in": [old["_id"] for old in olds]}})
        moved += len(olds)
    await db.clocks.drop()
    if moved:
        log.info("clocks moved into their appeals' documents", extra={"clocks": moved})
    return moved
