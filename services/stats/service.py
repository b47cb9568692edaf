"""Stats state in MongoDB: appeal documents (with their clocks), hourly and daily buckets, and reading them back.

A batch is written in two steps, each idempotent. First the documents, each
guarded by its version, carrying the change every new event made. Then the
buckets: each bucket remembers, per topic-partition, the last offset it
counted (`wm`), so an event counts once in a bucket whether it is redelivered
after a crash, replayed, or republished under the same id at a new offset.

Offsets name a position only within one life of a partition: a topic deleted and
created again, or a broker whose data was wiped, starts again from offset 0. So
each topic-partition is counted under the name of its life (`incarnations`): the
first life under `topic:partition`, later ones under `topic:partition#n`. A life is
known by the event id of the partition's first record, noted when stats first read
it; a batch that holds another event at that offset, or one below it (a partition's
start never moves back within a life), has met a new life. Its events then count
under the new name, from its new offsets, and none is skipped for an old offset.

A change to an hour bucket is made to its local day's bucket too, in the same
bulk write, guarded by the day bucket's own `wm`: a day bucket holds the sum of
its hours. A period is read as the buckets of its whole local days plus its
other hours (`window`). The document `days` in `buckets` names the time zone of
the day buckets and the first day whose bucket holds all of its hours: every
day in a database that had day buckets from its start (or was rebuilt); in one
counted before there were day buckets, the day after stats first started with
them, since the hours before were never added into days.
"""

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs.envelopes import CloudEvent
from libs.kafka.consuming import Contention
from libs.mongo import by_ids, only_duplicates
from services.stats import buckets, clocks, projection
from services.stats.buckets import TOTALS, Counts, hour_of

BUCKETS = "buckets"
# The latency sketches are large; kept apart so that reading counts never loads them.
SKETCHES = "sketches"
DAYS = "days"
# One document per topic-partition: which life of it stats counts now, and how that life is known.
STREAMS = "streams"
DAY_PREFIX = {"h:": "hd:", "l:": "ld:"}

log = logging.getLogger(__name__)


def collection_of(bucket: str) -> str:
    """Where a bucket lives: 'l:' and 'ld:' sketches in their own collection, counts and totals in `buckets`."""
    return SKETCHES if bucket.startswith(("l:", "ld:")) else BUCKETS


@dataclass(frozen=True)
class Delivered:
    """An event with where it sits in Kafka; (topic, partition, offset) identifies it for idempotent counting."""

    topic: str
    partition: int
    offset: int
    event: CloudEvent[Any]

    @classmethod
    def of(cls, event: CloudEvent[Any]) -> "Delivered":
        """The event as its consumer read it (its `position`)."""
        if event.position is None:
            raise ValueError(f"event {event.id} was not read from Kafka")
        return cls(*event.position, event)

    @property
    def stream(self) -> str:
        """The topic-partition as a name usable as a MongoDB field (no dots)."""
        return f"{self.topic.replace('.', '_')}:{self.partition}"


class ProjectionConflict(Contention):
    """Another replica wrote the same document or bucket first; the batch is retried."""


@dataclass
class Counted:
    stream: str
    offset: int
    delta: Counts


async def ensure_indexes(db: AsyncDatabase) -> None:
    """The indexes behind "running past due" (`live_due`: an appeal with a clock running unbreached) and the
    company figures; clocks that earlier versions kept in documents of their own move into their appeals'."""
    await db.appeals.create_index("live_due", sparse=True)
    await db.appeals.create_index("submitted_at")
    await adopt_clock_documents(db)


async def adopt_clock_documents(db: AsyncDatabase, batch: int = 500) -> int:
    """Move the clock documents of the earlier layout (one per clock, in `clocks`) into their appeals' documents.

    Runs before stats consumes. Each batch is saved before its clock documents are
    deleted, and adopting a clock again (after a crash in between) changes nothing.
    Returns how many clocks moved.
    """
    moved = 0
    while docs := [d async for d in db.clocks.find().limit(batch)]:
        keys = [("appeals", appeal_id) for appeal_id in {d["appeal_id"] for d in docs}]
        appeals = await _load(db, keys)
        versions = {key: doc["version"] for key, doc in appeals.items()}
        for clock in docs:
            key = ("appeals", clock["appeal_id"])
            appeal = appeals.setdefault(key, projection.new_document(clock["appeal_id"]))
            versions.setdefault(key, 0)
            kept = {k: v for k, v in clock.items() if k not in ("_id", "appeal_id", "version", "applied", "deltas")}
            appeal.setdefault("clocks", {})[clocks.clock_key(clock["appeal_id"], clock["_id"])] = kept
            appeal["applied"] += [event_id for event_id in clock["applied"] if event_id not in appeal["applied"]]
            appeal["deltas"].update(clock["deltas"])
            clocks.set_live_due(appeal)
        await _save(db, appeals, versions)
        await db.clocks.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        moved += len(docs)
    if moved:
        log.info("clocks moved into their appeals' documents", extra={"clocks": moved})
    return moved


# Given topic-partitions, the offset and event id of each one's first record (None for an empty one).
FirstRecords = Callable[[list[tuple[str, int]]], Awaitable[dict[tuple[str, int], tuple[int, str] | None]]]


async def project(
    db: AsyncDatabase, batch: list[Delivered], tz: ZoneInfo, first_records: FirstRecords | None = None
) -> int:
    """Fold a batch of events into documents and buckets; returns how many events changed something.

    `first_records` reads a partition's first record from Kafka the first time stats
    meets the partition; without it, the batch's own lowest record stands for it.
    """
    keys = [projection.entity_of(item.event) for item in batch]
    names = await incarnations(db, batch, first_records)
    docs = await _load(db, keys)
    first_offset: dict[str, int] = {}
    for item in batch:
        stream = names[item.stream]
        first_offset[stream] = min(first_offset.get(stream, item.offset), item.offset)
    versions = {key: doc["version"] for key, doc in docs.items()}
    changes: list[Counted] = []
    dirty: set[tuple[str, str]] = set()
    for item, key in zip(batch, keys, strict=True):
        stream = names[item.stream]
        doc = docs.setdefault(key, projection.new_document(key[1]))
        versions.setdefault(key, 0)
        if key not in dirty:
            _forget_settled(doc, first_offset)
        delta = projection.record(doc, item.event)
        if delta is not None:
            doc["deltas"][item.event.id] = {"s": stream, "o": item.offset, "c": delta}
            dirty.add(key)
            changes.append(Counted(stream, item.offset, delta))
            continue
        kept = doc["deltas"].get(item.event.id)
        # Folded before at this very position: the crash came before the buckets were written.
        if kept and kept["s"] == stream and kept["o"] == item.offset:
            changes.append(Counted(stream, item.offset, kept["c"]))
    await _save(db, {key: docs[key] for key in dirty}, versions)
    await apply_changes(db, changes, tz)
    return len([c for c in changes if c.delta])


def _forget_settled(doc: dict[str, Any], first_offset: dict[str, int]) -> None:
    """Drop kept changes of positions before this batch (their buckets were written before it began),
    and those of an earlier life of a partition this batch reads."""
    lives = {stream.split("#")[0]: stream for stream in first_offset}
    for event_id, kept in list(doc["deltas"].items()):
        current = lives.get(kept["s"].split("#")[0])
        if current is not None and (kept["s"] != current or kept["o"] < first_offset[current]):
            del doc["deltas"][event_id]


async def incarnations(
    db: AsyncDatabase, batch: list[Delivered], first_records: FirstRecords | None = None
) -> dict[str, str]:
    """For each topic-partition of the batch, the name its offsets count under in the life they belong to."""
    lowest: dict[str, Delivered] = {}
    for item in batch:
        if item.stream not in lowest or item.offset < lowest[item.stream].offset:
            lowest[item.stream] = item
    at = {(item.stream, item.offset): item.event.id for item in batch}
    known = {doc["_id"]: doc async for doc in db[STREAMS].find({"_id": {"$in": list(lowest)}})}
    met = [stream for stream in lowest if stream not in known]
    for stream, doc in known.items():
        item = lowest[stream]
        there = at.get((stream, doc["o"]))
        if item.offset < doc["o"] or (there is not None and there != doc["id"]):
            met.append(stream)
    firsts = await first_records([(lowest[s].topic, lowest[s].partition) for s in met]) if met and first_records else {}
    ops = []
    for stream in met:
        item = lowest[stream]
        offset, event_id = firsts.get((item.topic, item.partition)) or (item.offset, item.event.id)
        if stream not in known:
            known[stream] = {"_id": stream, "n": 0, "o": offset, "id": event_id}
            ops.append(UpdateOne({"_id": stream}, {"$setOnInsert": known[stream]}, upsert=True))
            continue
        life = known[stream]["n"] + 1
        log.warning(
            "a partition began again (its topic was created anew, or the broker's data is new): "
            "its events count under a new name",
            extra={"stream": stream, "life": life},
        )
        ops.append(UpdateOne({"_id": stream, "n": life - 1}, {"$set": {"n": life, "o": offset, "id": event_id}}))
        known[stream] = {"_id": stream, "n": life, "o": offset, "id": event_id}
    if ops:
        result = await db[STREAMS].bulk_write(ops, ordered=False)
        if result.matched_count + result.upserted_count < len(ops):
            raise ProjectionConflict(f"{STREAMS}: another replica noted a partition's life first")
    return {stream: stream if known[stream]["n"] == 0 else f"{stream}#{known[stream]['n']}" for stream in lowest}


async def _load(db: AsyncDatabase, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    by_collection: dict[str, set[str]] = defaultdict(set)
    for collection, entity_id in keys:
        by_collection[collection].add(entity_id)
    docs = {}
    for collection, ids in by_collection.items():
        async for doc in db[collection].find({"_id": {"$in": list(ids)}}):
            docs[(collection, doc["_id"])] = doc
    return docs


async def _save(
    db: AsyncDatabase, docs: dict[tuple[str, str], dict[str, Any]], versions: dict[tuple[str, str], int]
) -> None:
    by_collection: dict[str, list[ReplaceOne]] = defaultdict(list)
    for (collection, entity_id), doc in docs.items():
        version = versions[(collection, entity_id)]
        doc["version"] = version + 1
        by_collection[collection].append(ReplaceOne({"_id": entity_id, "version": version}, doc, upsert=True))
    for collection, ops in by_collection.items():
        try:
            result = await db[collection].bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            if not only_duplicates(exc):
                raise
            raise ProjectionConflict(f"{collection}: {len(exc.details.get('writeErrors', []))} conflicts") from exc
        if result.matched_count + result.upserted_count != len(ops):
            raise ProjectionConflict(f"{collection}: a document changed under us")


async def apply_changes(db: AsyncDatabase, changes: list[Counted], tz: ZoneInfo) -> None:
    """Add the changes to their hour and day buckets, each position at most once per bucket."""
    if not changes:
        return
    deltas = [buckets.with_days(change.delta, tz) for change in changes]
    names = sorted({bucket for delta in deltas for bucket in delta})
    marks: dict[str, dict[str, int]] = {}
    for collection in (BUCKETS, SKETCHES):
        wanted = [name for name in names if collection_of(name) == collection]
        if wanted:
            async for doc in db[collection].find({"_id": {"$in": wanted}}, {"wm": 1}):
                marks[doc["_id"]] = doc.get("wm", {})
    increments: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    new_marks: dict[str, dict[str, int]] = defaultdict(dict)
    for change, delta in zip(changes, deltas, strict=True):
        for bucket, fields in delta.items():
            seen = new_marks[bucket].get(change.stream, marks.get(bucket, {}).get(change.stream, -1))
            if change.offset <= seen:
                continue
            new_marks[bucket][change.stream] = change.offset
            for name, n in fields.items():
                increments[bucket][name] += n
    ops: dict[str, list[UpdateOne]] = defaultdict(list)
    for bucket, streams in new_marks.items():
        old = marks.get(bucket, {})
        guard = {f"wm.{s}": old.get(s) for s in streams}
        inc = {f"c.{name}": n for name, n in increments[bucket].items() if n}
        update: dict[str, Any] = {"$set": {f"wm.{s}": o for s, o in streams.items()}}
        if inc:
            update["$inc"] = inc
        ops[collection_of(bucket)].append(UpdateOne({"_id": bucket, **guard}, update, upsert=True))
    for collection, writes in ops.items():
        try:
            await db[collection].bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            if not only_duplicates(exc):
                raise
            raise ProjectionConflict(f"{collection}: {len(exc.details.get('writeErrors', []))} conflicts") from exc


async def hourly(db: AsyncDatabase, prefix: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The buckets of the hours in [start, end), oldest first; `prefix` is 'h:' (counts) or 'l:' (latencies)."""
    cursor = db[collection_of(prefix)].find(
        {"_id": {"$gte": prefix + hour_of(start), "$lt": prefix + hour_of(end)}}, {"wm": 0}
    )
    docs = [doc async for doc in cursor]
    docs.sort(key=lambda d: d["_id"])
    return docs


async def prepare_days(db: AsyncDatabase, tz: ZoneInfo, now: datetime) -> None:
    """Note the zone of the day buckets and the first day they are complete, unless noted for this zone already."""
    marker = await db[BUCKETS].find_one({"_id": DAYS})
    if marker and marker["tz"] == tz.key:
        return
    if marker:
        # Days of the old zone and of this one would share names: none is whole until a rebuild.
        log.warning(
            "day buckets were written for another time zone; reading hours until a rebuild",
            extra={"was": marker["tz"], "now": tz.key},
        )
        await db[BUCKETS].update_one({"_id": DAYS}, {"$set": {"tz": tz.key, "since": None}})
        return
    counted = await db[BUCKETS].find_one({}, {"_id": 1}) or await db[SKETCHES].find_one({}, {"_id": 1})
    since = now.astimezone(tz).date() + timedelta(days=1) if counted else date.min
    # The first replica to start decides; another one finding buckets by then must not push it later.
    await db[BUCKETS].update_one(
        {"_id": DAYS}, {"$setOnInsert": {"tz": tz.key, "since": since.isoformat()}}, upsert=True
    )


async def days_since(db: AsyncDatabase, tz: ZoneInfo) -> date | None:
    """The first local day whose day bucket holds all of its hours, or None when none does."""
    marker = await db[BUCKETS].find_one({"_id": DAYS})
    if not marker or marker["tz"] != tz.key or marker["since"] is None:
        return None
    return date.fromisoformat(marker["since"])


async def windows(
    db: AsyncDatabase, prefix: str, periods: list[tuple[datetime, datetime]], tz: ZoneInfo
) -> list[dict[str, int]]:
    """`window` for each period, read in one go."""
    since = await days_since(db, tz)
    plans = [buckets.cover(start, end, tz, since) for start, end in periods]
    day_prefix = DAY_PREFIX[prefix]
    names = [[day_prefix + day for day in days] + [prefix + hour for hour in hours] for days, hours in plans]
    found = await by_ids(db[collection_of(prefix)], sorted({name for wanted in names for name in wanted}), {"wm": 0})
    return [add_up([found[name] for name in wanted if name in found]) for wanted in names]


async def window(db: AsyncDatabase, prefix: str, start: datetime, end: datetime, tz: ZoneInfo) -> dict[str, int]:
    """The sum of `hourly` over [start, end) ('h:' or 'l:'), read as whole local days' buckets plus the other hours."""
    return (await windows(db, prefix, [(start, end)], tz))[0]


def add_up(docs: list[dict[str, Any]]) -> dict[str, int]:
    """The sum of the buckets' counts."""
    total: dict[str, int] = defaultdict(int)
    for doc in docs:
        for name, n in doc.get("c", {}).items():
            total[name] += n
    return dict(total)


async def totals(db: AsyncDatabase) -> dict[str, int]:
    """The all-time counts behind the Prometheus metrics."""
    doc = await db[BUCKETS].find_one({"_id": TOTALS})
    return doc.get("c", {}) if doc else {}


async def overdue_clocks(db: AsyncDatabase, now: datetime, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Clocks still running past their due time with no breach seen yet, started in [start, end)."""
    # An appeal's `live_due` is the earliest of its clocks running unbreached, so only its upper bound finds the
    # appeals; each clock is then checked alone (a clock is due after it starts, so one due before the period
    # began is not of it). Few match: sla breaches a clock soon after its due time, which ends its `live_due`.
    until = min(now, _far_after(end))
    cursor = db.appeals.find({"live_due": {"$lt": until}}, {"clocks": 1})
    return [
        clock
        async for doc in cursor
        for clock in doc["clocks"].values()
        if "live_due" in clock and start <= clock["live_due"] < until and start <= clock["started_at"] < end
    ]


def _far_after(end: datetime) -> datetime:
    """No target is longer than this; bounds the overdue search of a period long past."""
    return end + timedelta(days=90)


async def company_rows(db: AsyncDatabase, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Each appeal submitted in [start, end) with its company, lists, status and whether it was answered.

    Distinct companies do not add up across buckets, so their figures are read from the
    appeals' own documents; an appeal whose submission stats has not read yet has no company.
    """
    cursor = db.appeals.find(
        {"submitted_at": {"$gte": start, "$lt": end}}, {"uscc": 1, "lists": 1, "status": 1, "answered": 1}
    )
    return [doc async for doc in cursor if doc.get("uscc")]
