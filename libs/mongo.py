"""MongoDB wiring with PyMongo's asyncio client, and the few query shapes every service uses.

The embedded stack runs SecantusDB, a MongoDB-protocol server written in Python: the
same commands, but some shapes cost it a scan of the whole collection where MongoDB
uses an index, and one operator it does not match. The services use the shapes
below, which cost MongoDB the same as the obvious ones, so that service code reads
like plain MongoDB and the reasons are written here once:

- No findAndModify (`update_guarded`): SecantusDB wraps its query in an `$and` that no
  index serves (about 1 s at 20,000 documents). An update by `_id` and a guard (a
  version, a claim) and the document after computed here (`apply_update`) do the same.
- No top-level `$or`, which it answers by scanning: a multikey field that holds every
  value to match (router's `handlers`: lead and co-handlers), or `not_after`, a
  `$not: {$gt}` that also matches a missing field.
- Ranges with both bounds (`due_by`): it starts an open range at the index's nulls,
  which every finished record holds (700 ms against 2 ms with 20,000 of them).
- `_id` lists in chunks (`by_ids`): the cost of an `$in` grows faster than its length
  (2,400 ids: 4 s in one query, 0.6 s in chunks of 100).
- No `$all` on an array path, which it does not match: a positional test instead
  (libs/outbox).
- Concurrent inserts as one `insert_many` (`GroupedInserts`): 2 ms of its CPU per
  `insert_one`, 0.6 ms per document in a batch.
- Few secondary indexes: it reads a collection's index definitions for every
  statement, so each index costs every write (an update with none, 0.9 ms; with six,
  2.4 ms).
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from libs.settings import ServiceSettings

# What the services store: plain documents (the models are at the edges, the HTTP API and the events).
Document = dict[str, Any]
Client = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]


_WRITES = ("insert", "update", "delete", "findAndModify")


# Seconds a command took, as the driver measures it (sent to answered): from an indexed read's millisecond to past
# the client's 3 s server selection timeout.
COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class CommandCounter(monitoring.CommandListener):
    """Counts the database statements a service sends, by command: what an appeal costs the database, and how long
    each took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "appeals_mongodb_commands",
            "Commands this service sent to MongoDB, by command (find, insert, update, getMore, ...) and collection.",
            ["command", "collection"],
            registry=registry,
        )
        self.written = Counter(
            "appeals_mongodb_documents_written",
            "Documents this service's write commands inserted, matched (updates) or deleted, by command and"
            " collection: the database's work grows with them, not only with the commands.",
            ["command", "collection"],
            registry=registry,
        )
        # By command only: by collection too, each pair would cost 14 series (12 buckets, sum, count).
        self.duration = Histogram(
            "appeals_mongodb_command_duration_seconds",
            "Time from sending a command to MongoDB to its answer (failed ones included), by command.",
            ["command"],
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        # The labels of each write in flight, by request: the reply names no collection.
        self._writes: dict[tuple[Any, int], tuple[str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Count the command as it is sent."""
        name = event.command_name
        target = event.command.get(name)
        # getMore names its cursor first and the collection apart; admin commands name no collection.
        collection = event.command.get("collection") if name == "getMore" else target
        labels = (name, collection if isinstance(collection, str) else "")
        self.total.labels(*labels).inc()
        if name in _WRITES:
            self._writes[(event.connection_id, event.request_id)] = labels

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Time the command; count the documents a write reports it wrote."""
        self.duration.labels(event.command_name).observe(event.duration_micros / 1e6)
        labels = self._writes.pop((event.connection_id, event.request_id), None)
        if labels is None:
            return
        reply = event.reply.get("lastErrorObject", {}) if labels[0] == "findAndModify" else event.reply
        self.written.labels(*labels).inc(reply.get("n", 0))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Time the command; forget a write that failed: it wrote nothing it can tell."""
        self.duration.labels(event.command_name).observe(event.duration_micros / 1e6)
        self._writes.pop((event.connection_id, event.request_id), None)


def make_client(settings: ServiceSettings, registry: CollectorRegistry | None = None) -> Client:
    """A client that returns timezone-aware datetimes, fails fast when the server is gone, and journals.

    Every write is acknowledged only once it is in the server's journal (`j: true`):
    what follows a write (an offset commit, a publish, a 202) must never outlive it.
    With `j: false` a server killed at once (kill -9, a lost machine) drops its last
    few milliseconds of acknowledged writes: the embedded SecantusDB lost 20-40 of
    5,000 inserts that way, and mongod's documentation says the same of itself.

    Idle connections are closed after `mongodb_max_idle_seconds`: the async driver does
    not notice a connection the server closed while it sat in the pool, and a write
    without retries (the embedded URIs) failed on one once every ten minutes or so,
    a 503 for a company's submission.
    """
    return AsyncMongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=3000,
        maxIdleTimeMS=int(settings.mongodb_max_idle_seconds * 1000),
        appname=f"appeals-{settings.service_name}",
        journal=True,
        event_listeners=[CommandCounter(registry)] if registry is not None else [],
    )


def service_database(client: Client, settings: ServiceSettings) -> Database:
    """The database this service owns; no other service reads it."""
    return client[settings.mongodb_database]


# Before any instant the platform stores: the lower bound of every "due by" range.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ID_CHUNK = 100


def due_by(until: datetime) -> dict[str, Any]:
    """A filter for an instant at or before `until` (never a missing or null one)."""
    return {"$gte": EPOCH, "$lte": until}


def not_after(at: datetime) -> dict[str, Any]:
    """A filter for an instant not later than `at`, or none at all."""
    return {"$not": {"$gt": at}}


async def by_ids(
    collection: Collection, ids: list[Any], projection: dict[str, Any] | None = None
) -> dict[Any, dict[str, Any]]:
    """The documents with these `_id`s, by id."""
    found = {}
    for start in range(0, len(ids), ID_CHUNK):
        async for doc in collection.find({"_id": {"$in": ids[start : start + ID_CHUNK]}}, projection):
            found[doc["_id"]] = doc
    return found


def as_stored(value: Any) -> Any:
    """A value as it reads back from MongoDB: datetimes in UTC to the millisecond."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_stored(v) for v in value]
    return value


def apply_update(doc: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The document after `update`, computed here: `$set`, `$unset`, `$inc` and `$push` (`$each`, `$slice`)
    of top-level fields, which is all our guarded writes use; anything else is refused."""
    after = dict(doc)
    for operator, fields in update.items():
        for name, value in fields.items():
            if "." in name:
                raise ValueError(f"apply_update handles top-level fields only, not {name!r}")
            if operator == "$set":
                after[name] = as_stored(value)
            elif operator == "$unset":
                after.pop(name, None)
            elif operator == "$inc":
                after[name] = after.get(name, 0) + value
            elif operator == "$push":
                each = value["$each"] if isinstance(value, dict) else [value]
                pushed = [*after.get(name, []), *as_stored(each)]
                if isinstance(value, dict) and "$slice" in value:
                    pushed = pushed[value["$slice"] :] if value["$slice"] < 0 else pushed[: value["$slice"]]
                after[name] = pushed
            else:
                raise ValueError(f"apply_update does not handle {operator}")
    return after


def only_duplicates(exc: BulkWriteError) -> bool:
    """Whether every error of a bulk write is a duplicate key: a guarded upsert that another writer beat, and not
    a document the server refused (a field name it cannot store, a document too large)."""
    errors = exc.details.get("writeErrors", [])
    return bool(errors) and all(e.get("code") == 11000 for e in errors) and not exc.details.get("writeConcernErrors")


async def update_guarded(
    collection: Collection, doc: dict[str, Any], guard: dict[str, Any], update: dict[str, Any]
) -> dict[str, Any] | None:
    """Update `doc` while `guard` (its `_id` and version or claim) still matches; the document after, or None.

    `find_one_and_update(..., AFTER)` without the findAndModify (see above): the guard
    means nobody changed what we read, so the document after is computed here.
    """
    result = await collection.update_one({"_id": doc["_id"], **guard}, update)
    return apply_update(doc, update) if result.matched_count else None


class GroupedInserts:
    """Inserts that arrive together go to the server as one `insert_many` (a group commit).

    Each caller still learns its own outcome: `insert` returns once its document is
    written, or raises DuplicateKeyError (or WriteError) for that document alone. One
    batch is in flight at a time and the next takes everything queued meanwhile, so a
    lone request waits for nobody, and under load one statement carries many documents.
    """

    def __init__(self, collection: Collection, max_batch: int = 100) -> None:
        self._collection = collection
        self._max_batch = max_batch
        self._queued: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, doc: dict[str, Any]) -> None:
        """Write `doc` in the next batch; raises as `insert_one` would for this document."""
        done = asyncio.get_running_loop().create_future()
        self._queued.append((doc, done))
        if self._writer is None:
            # A task of its own: a caller that is cancelled must not cancel the others' batch.
            self._writer = asyncio.create_task(self._write_all())
        await asyncio.shield(done)

    async def _write_all(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued[: self._max_batch], self._queued[self._max_batch :]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        failed: dict[int, Exception] = {}
        try:
            await self._collection.insert_many([doc for doc, _ in batch], ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                failed = dict.fromkeys(range(len(batch)), exc)
            for error in exc.details.get("writeErrors", []):
                kind = DuplicateKeyError if error.get("code") == 11000 else WriteError
                failed[error["index"]] = kind(error.get("errmsg", "write failed"), error.get("code"), error)
        except Exception as exc:  # the whole batch failed (server gone, timeout): every caller gets it
            failed = dict.fromkeys(range(len(batch)), exc)
        for index, (_, done) in enumerate(batch):
            if done.done():
                continue
            if index in failed:
                done.set_exception(failed[index])
            else:
                done.set_result(None)
