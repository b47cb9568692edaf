"""A transactional outbox inside each document: a state change and the events it owes are one write.

The writer pushes `outbox` items (event bytes with fixed ids) in the same update
that changes the document's state, then calls `flush_many` (or `flush_soon`). A
crash in between leaves the items for `flush_stale` (any replica) or for the
redelivered message; a republished event keeps its id, which is what consumers
deduplicate on.
"""

import asyncio
import logging
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import TTLCache
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel
from pymongo import UpdateOne

from libs import tracing
from libs.kafka.publishing import encode, make_event
from libs.mongo import ID_CHUNK, Collection

log = logging.getLogger(__name__)

# An outbox older than this is taken for a dead writer's. At 40 appeals/s offered with two processes of
# every service (the machine well past full), live writers took over 3 s to empty theirs now and then,
# and the sweep sent 6 of 7,200 lifecycle events twice. A dead writer's events wait this long.
STALE_AFTER = timedelta(seconds=10)

# Per collection, the documents whose outboxes a writer of this process is writing and flushing right now.
# Under load a write can take longer than STALE_AFTER, and the sweep then published the same items as
# the writer: at 10 appeals/s, up to a quarter of sla's events and 4 % of the lifecycle went out twice.
_held: defaultdict[str, Counter[Any]] = defaultdict(Counter)


@contextmanager
def held(collection: Collection, ids: Iterable[Any]) -> Iterator[None]:
    """Keep this process's `flush_stale` off these documents while their writer writes and flushes them."""
    ids = Counter(list(ids))  # a mapping would be read as counts: hold its keys
    holding = _held[collection.full_name]
    holding += ids
    try:
        yield
    finally:
        holding -= ids  # in place, and drops the documents no writer holds any more


@dataclass(frozen=True)
class Emit:
    """An event a decision owes: where it goes, its type, its data (with `appeal_id`)."""

    topic: str
    type: str
    data: BaseModel
    # The event's subject and Kafka key: the appeal of `data` unless given (a company's credit code).
    subject: str | None = None
    # The event's id, when it must be one already known (an action applied under the id it is published with).
    id: str | None = None


def outbox_items(
    source: str, emits: list[Emit], traceparent: str | None, now: datetime, ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """Freeze events (ids included; given or new) into outbox items to store with the state change."""
    items = []
    for n, emit in enumerate(emits):
        fixed = {"id": ids[n]} if ids else {"id": emit.id} if emit.id else {}
        subject: str = emit.subject or getattr(emit.data, "appeal_id")  # noqa: B009
        event = make_event(source, emit.type, subject, emit.data, traceparent=traceparent, time=now, **fixed)
        item = {"id": event.id, "topic": emit.topic, "key": event.subject, "payload": encode(event).decode()}
        if tracing.sdk_in_use() and event.traceparent:
            item["traceparent"] = event.traceparent  # its publish span's parent, without parsing the payload
        items.append(item)
    return items


def stage(update: dict[str, Any], items: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Add `items` to a document's outbox in the same `update` that changes its state; returns `update`."""
    if items:
        update.setdefault("$set", {})["outbox_since"] = now
        update.setdefault("$push", {})["outbox"] = {"$each": items}
    return update


# (topic, event id) of the items this process had acknowledged in the last minutes. Another flush of the
# same document (a department acting on an assignment while routing still empties the outbox that
# published it) sends only what is new. Keyed by topic too: a threshold's event goes to two topics
# under one id.
_sent: TTLCache[tuple[str, str], bool] = TTLCache(maxsize=50_000, ttl=300)


async def publish_items(broker: KafkaBroker, items: list[dict[str, Any]]) -> None:
    """Publish, one after another so one appeal's events keep their order, the items not acknowledged already."""
    for item in items:
        if (item["topic"], item["id"]) in _sent:
            continue
        with tracing.within(item.get("traceparent")):
            await broker.publish(
                item["payload"].encode(),
                topic=item["topic"],
                key=item["key"].encode(),
                headers={"content-type": "application/cloudevents+json"},
            )
        _sent[item["topic"], item["id"]] = True


def others_pending(doc: dict[str, Any]) -> bool:
    """Whether the document's outbox holds items this process has not had acknowledged.

    They are another writer's, being published right now, or were left by a writer that died.
    """
    return any((item["topic"], item["id"]) not in _sent for item in doc.get("outbox") or [])


EMPTY = {"$unset": {"outbox": "", "outbox_since": ""}}


async def flush_many(collection: Collection, broker: KafkaBroker, docs: list[dict[str, Any]]) -> None:
    """Publish each document's pending items in order, documents side by side, then drop them: one statement usually."""
    pending = [doc for doc in docs if doc.get("outbox")]
    if not pending:
        return
    await asyncio.gather(*(publish_items(broker, doc["outbox"]) for doc in pending))
    await _empty(collection, pending)


async def flush_soon(collection: Collection, broker: KafkaBroker, doc: dict[str, Any]) -> None:
    """Publish the document's pending items in order; empty its outbox a moment later, with others'.

    For a writer that answers a caller (a department's action): once its events are acknowledged the
    outbox is bookkeeping, and one statement then empties the outboxes of every request of the moment
    instead of one statement each. If the process dies first, `flush_stale` publishes the same ids
    again and consumers drop them; `drain` empties what is queued when the service stops.
    """
    if not doc.get("outbox"):
        return
    await publish_items(broker, doc["outbox"])
    emptier = _emptiers.get(collection.full_name)
    if emptier is None:
        emptier = _emptiers[collection.full_name] = _Emptier(collection)
    emptier.add(collection, doc)


async def drain() -> None:
    """Empty every outbox `flush_soon` has queued in this process (at shutdown, and in tests)."""
    while _emptiers:
        _, emptier = _emptiers.popitem()
        await emptier.drain()


class _Emptier:
    """The published outboxes of one collection waiting to be emptied, and the task emptying them."""

    DELAY = 0.05  # seconds: long enough to gather the requests of a busy moment, short next to STALE_AFTER

    def __init__(self, collection: Collection) -> None:
        self._collection = collection
        # A document's latest outbox holds every item of its earlier ones not emptied yet: it alone is kept.
        self._queued: dict[Any, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, collection: Collection, doc: dict[str, Any]) -> None:
        self._collection = collection  # the latest handle: an earlier one's client may be closed (tests)
        self._queued[doc["_id"]] = doc
        if self._task is None or self._task.get_loop() is not asyncio.get_running_loop():
            # A task of its own: a cancelled request must not cancel the others' emptying.
            self._task = asyncio.create_task(self._run())

    async def drain(self) -> None:
        if self._task is not None and self._task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            while self._queued:
                await asyncio.sleep(self.DELAY)
                batch, self._queued = list(self._queued.values()), {}
                try:
                    await _empty(self._collection, batch)
                except Exception:
                    # Published already: the sweep empties them later (and may publish them again, same ids).
                    log.exception("could not empty published outboxes", extra={"documents": len(batch)})
        finally:
            self._task = None


_emptiers: dict[str, _Emptier] = {}


async def _empty(collection: Collection, pending: list[dict[str, Any]]) -> None:
    """Drop from each document's outbox the items it held when read, which are published now."""
    # One statement per outbox length, not one per document: a hundred statements queued behind every
    # other writer of the collection for seconds on the embedded server, which locks a collection per statement.
    # Items are only appended, and removed here: an outbox of the length read whose last item is still the one
    # read holds nothing else. Item ids are unique, so that test pins each document to its own outbox, and it
    # is positional, not `$all` on an array path (libs/mongo.py).
    by_length: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for doc in pending:
        by_length[len(doc["outbox"])].append(doc)
    matched = 0
    for length, same in by_length.items():
        for start in range(0, len(same), ID_CHUNK):  # `$in` lists in chunks (libs/mongo.py)
            docs = same[start : start + ID_CHUNK]
            emptied = await collection.update_many(
                {
                    "_id": {"$in": [doc["_id"] for doc in docs]},
                    "outbox": {"$size": length},
                    f"outbox.{length - 1}.id": {"$in": [doc["outbox"][-1]["id"] for doc in docs]},
                },
                EMPTY,
            )
            matched += emptied.matched_count
    if matched == len(pending):
        return
    # Some outboxes grew meanwhile: drop only what was published (a no-op where it is gone already).
    await collection.bulk_write(
        [
            UpdateOne({"_id": doc["_id"]}, {"$pull": {"outbox": {"id": {"$in": [i["id"] for i in doc["outbox"]]}}}})
            for doc in pending
        ],
        ordered=False,
    )
    await collection.update_many(
        {"_id": {"$in": [doc["_id"] for doc in pending]}, "outbox": {"$size": 0}}, {"$unset": {"outbox_since": ""}}
    )


# Per broker (one per service process): the age of the oldest outbox the sweep found, on the service's registry.
_AGES: "weakref.WeakKeyDictionary[KafkaBroker, Gauge]" = weakref.WeakKeyDictionary()


def measure_outboxes(broker: KafkaBroker, registry: CollectorRegistry) -> None:
    """Have `flush_stale` set `appeals_outbox_oldest_seconds{collection}` at each pass (the stale outbox alert's)."""
    _AGES[broker] = Gauge(
        "appeals_outbox_oldest_seconds",
        "Age of the oldest outbox the last sweep found left behind (older than 10 s) and owing events, by collection;"
        " 0 when it found none. It grows while the sweep cannot publish them.",
        ["collection"],
        registry=registry,
    )


def _record_oldest(broker: KafkaBroker, collection: Collection, docs: list[dict[str, Any]], now: datetime) -> None:
    gauge = _AGES.get(broker)
    if gauge is None:
        return
    since = [d["outbox_since"] for d in docs if isinstance(d.get("outbox_since"), datetime)]
    # The client hands back aware datetimes; a naive one is UTC.
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    ages = [(now - (s if s.tzinfo else s.replace(tzinfo=UTC))).total_seconds() for s in since]
    gauge.labels(collection.name).set(max(ages, default=0.0))


async def flush_stale(
    collection: Collection, broker: KafkaBroker, now: datetime, older_than: timedelta = STALE_AFTER, limit: int = 500
) -> int:
    """Publish outboxes a crash left behind, except those `held` by a writer; needs an index on `outbox_since`."""
    holding = _held[collection.full_name]
    docs = [
        doc
        async for doc in collection.find({"outbox_since": {"$lte": now - older_than}}).limit(limit)
        if doc["_id"] not in holding
    ]
    # A mark with nothing behind it (its items were emptied by another path, or never came) owes nothing: left,
    # the sweep would find it every pass and a stack would never look quiet. Cleared unless items came meanwhile.
    idle = [doc["_id"] for doc in docs if not doc.get("outbox")]
    if idle:
        await collection.update_many(
            {"_id": {"$in": idle}, "outbox.0": {"$exists": False}}, {"$unset": {"outbox_since": ""}}
        )
    docs = [doc for doc in docs if doc.get("outbox")]
    _record_oldest(broker, collection, docs, now)
    if docs:
        # A writer died between its write and its publish, or took longer than STALE_AFTER: in the second
        # case these events go out twice (same ids), so a steady count here asks for a longer STALE_AFTER.
        log.warning("publishing outboxes left stale", extra={"collection": collection.name, "documents": len(docs)})
    await flush_many(collection, broker, docs)
    return len(docs)
