"""Router persistence: appeals with a transactional outbox, so a state change and its events never part.

A transition writes the new state and the events it owes into the same document
in one conditional update (optimistic concurrency on `version`), then publishes
the outbox and removes what was published. A crash in between leaves the outbox
for the redelivered message or the sweeper; event ids are fixed when the outbox is
written, so a republish is recognisably the same event.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from libs import outbox
from libs.deadlines import merged_clocks, next_due
from libs.envelopes import CloudEvent
from libs.events import Contact, DepartmentAction, SlaClockChanged
from libs.ids import new_id
from libs.kafka.publishing import make_event, publish
from libs.kinds import ActionKind, EventType
from libs.mongo import by_ids, update_guarded
from libs.outbox import outbox_items
from libs.paging import Key, bound, keyed, page_of, read_page
from services.router import queue, transitions, visits
from services.router.lifecycle import decide_admission, handlers, new_appeal, reject
from services.router.registry_store import companies
from services.router.rules import RoutingBook
from services.router.transitions import SOURCE, ActionError, Transition

log = logging.getLogger(__name__)

SEEN_KEPT = 200
MAX_ATTEMPTS = 20
# How often a transition looks again while another replica publishes an appeal's earlier events: soon at
# first, then less often, so a long wait costs a few reads. It waits as long as the sweep (outbox.STALE_AFTER).
OTHERS_FIRST_PAUSE, OTHERS_LONGEST_PAUSE = 0.05, 0.4


async def ensure_indexes(db: AsyncDatabase) -> None:
    """Indexes for every query the router makes, and no more: each one costs every write of an appeal."""
    await _index_handlers(db)
    # A department's worklist, oldest first, of one status or of all (pages start at a submission time).
    await db.appeals.create_index([("handlers", ASCENDING), ("status", ASCENDING), ("submitted_at", ASCENDING)])
    await db.appeals.create_index([("handlers", ASCENDING), ("submitted_at", ASCENDING)])
    await db.appeals.create_index(
        [("dup_key", ASCENDING)], unique=True, name="open_duplicate", partialFilterExpression={"open": True}
    )
    await db.appeals.create_index([("status", ASCENDING), ("resolved_at", ASCENDING)])
    await db.appeals.create_index([("outbox_since", ASCENDING)], sparse=True)
    # The visits sweep, and the office's list of visits by state.
    await db.appeals.create_index([("visit.next_at", ASCENDING)], sparse=True)
    await db.appeals.create_index([("visit.state", ASCENDING), ("visit.due_at", ASCENDING)], sparse=True)
    # A company's history; the registry's list members and its sweep; a company's audit trail.
    await db.appeals.create_index([("enterprise.uscc", ASCENDING), ("submitted_at", ASCENDING)])
    await db.enterprises.create_index([("memberships.list", ASCENDING)])
    await db.enterprises.create_index([("outbox_since", ASCENDING)], sparse=True)
    await db.registry_audit.create_index([("uscc", ASCENDING), ("at", ASCENDING)])
    await queue.ensure_indexes(db)


async def _index_handlers(db: AsyncDatabase) -> None:
    """Once per database: give appeals stored before `handlers` existed their handlers, drop the two old indexes.

    Worklists were an `$or` over `lead` and `cohandlers` (see libs/mongo.py), and the
    two indexes behind it cost every write.
    """
    if await db.migrations.find_one({"_id": "handlers"}):
        return
    writes = [
        UpdateOne({"_id": doc["_id"]}, {"$set": {"handlers": handlers(doc)}})
        async for doc in db.appeals.find({"handlers": {"$exists": False}}, {"lead": 1, "cohandlers": 1})
    ]
    for start in range(0, len(writes), 1000):
        await db.appeals.bulk_write(writes[start : start + 1000], ordered=False)
    names = {index["name"] async for index in await db.appeals.list_indexes()}
    for old in ("lead_1_status_1_submitted_at_1", "cohandlers_1_status_1"):
        if old in names:
            await db.appeals.drop_index(old)
    # An upsert: replicas starting together may both get here.
    await db.migrations.update_one(
        {"_id": "handlers"}, {"$set": {"at": datetime.now(UTC), "appeals": len(writes)}}, upsert=True
    )


def _changes(doc: dict[str, Any], outcome: Transition) -> dict[str, Any]:
    """The fields an outcome sets, with `handlers` kept in step with the lead and co-handlers."""
    fields = dict(outcome.set)
    if "lead" in fields or "cohandlers" in fields:
        fields["handlers"] = handlers({**doc, **fields})
    return fields


def _outbox(outcome: Transition, traceparent: str | None, now: datetime) -> list[dict[str, Any]]:
    return outbox_items(SOURCE, outcome.emits, traceparent, now)


async def flush(db: AsyncDatabase, broker: KafkaBroker, doc: dict[str, Any]) -> None:
    """Publish the appeal's pending events in order; its outbox is emptied a moment later, with others'."""
    await outbox.flush_soon(db.appeals, broker, doc)


async def admit(
    db: AsyncDatabase,
    broker: KafkaBroker,
    book: RoutingBook,
    events: Sequence[CloudEvent[Any]],
    now: datetime,
    contacts: Mapping[str, Contact] | None = None,
) -> None:
    """Route a batch of submitted appeals once each; a redelivery only finishes publishing what is owed.

    New appeals (the usual case) cost one insert for the batch; their outboxes are
    emptied a moment later with others'. The unique indexes catch redeliveries and
    duplicates. `contacts` are the appeals' contacts (from appeals.contacts.v1).
    """
    stored: dict[str, tuple[CloudEvent[Any], dict[str, Any], dict[str, Any]]] = {}
    known = await companies(db, (event.data.enterprise.uscc for event in events))
    for event in events:
        contact = (contacts or {}).get(event.subject)
        doc = new_appeal(event.data, book, known.get(event.data.enterprise.uscc), contact)
        outcome = decide_admission(doc, book)
        stored.setdefault(
            doc["_id"],
            (
                event,
                doc,
                {
                    **doc,
                    **_changes(doc, outcome),
                    # Its lead's send-back window runs from here (supervision.window_end).
                    "assigned_at": now,
                    "version": 1,
                    "seen": [event.id],
                    "updated_at": now,
                    "traceparent": event.traceparent,
                    "outbox": _outbox(outcome, event.traceparent, now),
                    "outbox_since": now,
                    "timeline": transitions.timeline(outcome, now),
                },
            ),
        )
    rows = list(stored.values())
    with outbox.held(db.appeals, stored):
        refused: dict[int, dict[str, Any]] = {}
        try:
            await db.appeals.insert_many([row[2] for row in rows], ordered=False)
        except BulkWriteError as exc:
            refused = {error["index"]: error for error in exc.details.get("writeErrors", [])}
            if any(error.get("code") != 11000 for error in refused.values()):
                raise
        ready = [row[2] for n, row in enumerate(rows) if n not in refused]
        for n, error in refused.items():
            event, doc, _ = rows[n]
            if "dup_key" in str(error.get("keyPattern") or error.get("errmsg")):
                ready.append(await _store_rejection(db, doc, event, now))
            elif (again := await db.appeals.find_one({"_id": doc["_id"]})) is not None:
                ready.append(again)  # an earlier delivery stored it
        # Emptied a moment later with the actions' outboxes: at a steady rate a batch holds an appeal or two,
        # and each paid an emptying statement of its own.
        await asyncio.gather(*(outbox.flush_soon(db.appeals, broker, doc) for doc in ready))


async def _store_rejection(
    db: AsyncDatabase, doc: dict[str, Any], event: CloudEvent[Any], now: datetime
) -> dict[str, Any]:
    original = await db.appeals.find_one({"dup_key": doc["dup_key"], "open": True}, {"_id": 1})
    reason = (
        "a duplicate of open appeal " + original["_id"] if original else "a duplicate of an open appeal"
    ) + " from the same company, category and title"
    outcome = reject(doc, reason)
    stored = {
        **doc,
        **_changes(doc, outcome),
        "dup_key": None,
        "version": 1,
        "seen": [event.id],
        "updated_at": now,
        "traceparent": event.traceparent,
        "outbox": _outbox(outcome, event.traceparent, now),
        "outbox_since": now,
        "timeline": transitions.timeline(outcome, now),
    }
    try:
        await db.appeals.insert_one(stored)
        return stored
    except DuplicateKeyError:
        found = await db.appeals.find_one({"_id": doc["_id"]})  # an earlier delivery stored it
        if found is None:
            raise
        return found


async def transition(
    db: AsyncDatabase,
    broker: KafkaBroker,
    appeal_id: str,
    decide: Callable[[dict], Transition],
    now: datetime,
    *,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Apply `decide` to the current state atomically; `event_id` makes a redelivered request a no-op."""
    event_id = event_id or new_id()
    with outbox.held(db.appeals, [appeal_id]):
        return await _transition(db, broker, appeal_id, decide, now, event_id)


async def _transition(
    db: AsyncDatabase,
    broker: KafkaBroker,
    appeal_id: str,
    decide: Callable[[dict], Transition],
    now: datetime,
    event_id: str,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    for _ in range(MAX_ATTEMPTS):
        doc = await _settled(db, appeal_id)
        # The outbox's age counts from this write, not from the request: one that waited for another
        # writer would otherwise look stale to the sweep the moment it is written.
        written = now + timedelta(seconds=loop.time() - began)
        if event_id in doc.get("seen", []):
            await flush(db, broker, doc)
            return doc
        outcome = decide(doc)
        items = _outbox(outcome, doc.get("traceparent"), now)
        pushed: dict[str, Any] = {"outbox": {"$each": items}, "seen": {"$each": [event_id], "$slice": -SEEN_KEPT}}
        if entries := transitions.timeline(outcome, now):
            pushed["timeline"] = {"$each": entries, "$slice": -transitions.TIMELINE_KEPT}
        updated = await update_guarded(
            db.appeals,
            doc,
            {"version": doc["version"]},
            {
                "$set": {**_changes(doc, outcome), "updated_at": now, "outbox_since": written},
                "$inc": {"version": 1},
                "$push": pushed,
            },
        )
        if updated is not None:
            await flush(db, broker, updated)
            return updated
    raise RuntimeError(f"appeal {appeal_id} kept changing under {MAX_ATTEMPTS} attempts")


async def _settled(db: AsyncDatabase, appeal_id: str) -> dict[str, Any]:
    """The appeal once no other replica is still publishing its earlier events, or once that one looks dead.

    A department acts on an assignment the moment it arrives, while the router that routed the appeal may
    still be emptying its outbox; publishing those events here too would send each twice. Under load the
    emptying took over half a second, the wait this had before, and 8 of 2,400 appeals were sent twice.
    A writer that has not emptied its outbox after STALE_AFTER is taken for dead, as the sweep takes it.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + outbox.STALE_AFTER.total_seconds()
    pause = OTHERS_FIRST_PAUSE
    while True:
        doc = await db.appeals.find_one({"_id": appeal_id})
        if doc is None:
            raise ActionError(404, f"no appeal {appeal_id}")
        if not outbox.others_pending(doc):
            return doc
        if loop.time() >= give_up_at:
            log.warning("took over the pending events of another writer of an appeal", extra={"appeal_id": appeal_id})
            return doc
        await asyncio.sleep(pause)
        pause = min(pause * 2, OTHERS_LONGEST_PAUSE)


async def flush_stale_outboxes(db: AsyncDatabase, broker: KafkaBroker, now: datetime) -> int:
    """Publish what a crash left in the outboxes of appeals and of the registry's companies."""
    return await outbox.flush_stale(db.appeals, broker, now) + await outbox.flush_stale(db.enterprises, broker, now)


async def due_for_auto_close(db: AsyncDatabase, now: datetime, days: int) -> list[str]:
    """Ids of resolved appeals whose company has been silent for `days`, and no return visit awaited."""
    cursor = db.appeals.find(
        {
            "status": "resolved",
            "resolved_at": {"$lte": now - timedelta(days=days)},
            "visit.state": {"$nin": list(visits.OPEN)},
        },
        {"_id": 1},
    ).limit(500)
    return [doc["_id"] async for doc in cursor]


async def due_visits(db: AsyncDatabase, now: datetime) -> list[dict[str, Any]]:
    """Appeals whose return visit the sweep acts on now (its survey link, or its end as unreached): id and round."""
    cursor = db.appeals.find({"visit.next_at": {"$lte": now}}, {"_id": 1, "visit.round": 1, "visit.state": 1})
    return [doc async for doc in cursor.limit(500)]


async def return_visits(
    db: AsyncDatabase,
    states: Sequence[str],
    due_before: datetime | None,
    call_from_before: datetime | None,
    *,
    limit: int,
    after: Key | None = None,
    skip: int = 0,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the appeals whose visit is in one of `states`, the earliest due first (`visit_key`), after the key
    `after`, and whether more follow."""
    query: dict[str, Any] = {"visit.state": {"$in": list(states)}}
    if due_before is not None:
        query["visit.due_at"] = {"$lt": due_before}
    if after is not None and after[0] is not None:
        query["visit.due_at"] = {**query.get("visit.due_at", {}), "$gte": after[0]}
    if call_from_before is not None:
        query["visit.call_from"] = {"$lte": call_from_before}
    found = db.appeals.find(query, {"outbox": 0, "seen": 0, "timeline": 0}).sort("visit.due_at", ASCENDING)
    async with found.batch_size(limit + 2) as cursor:
        return await read_page(cursor, visit_key, after, limit, skip=skip)


def visit_key(doc: dict[str, Any]) -> Key:
    """Where a visit task stands in the office's list: its due time, then its appeal's id."""
    return keyed(doc, "visit.due_at")


async def worklist(
    db: AsyncDatabase,
    department: str,
    status: str | None,
    *,
    limit: int,
    after: Key | None = None,
    skip: int = 0,
    by_due: bool = False,
) -> tuple[list[dict], bool]:
    """A page of the appeals a department leads or co-handles after the key `after`, and whether more follow:
    oldest first (`worklist_key`), or those with a running clock, soonest due first (`due_key`)."""
    query: dict[str, Any] = {"handlers": department}
    if status:
        query["status"] = status
    shown = {"outbox": 0, "seen": 0, "handlers": 0}
    if not by_due:
        found = db.appeals.find({**query, **bound("submitted_at", after)}, shown).sort("submitted_at", ASCENDING)
        async with found.batch_size(limit + 2) as cursor:
            docs, more = await read_page(cursor, worklist_key, after, limit, skip=skip)
        return await with_deadlines(db, docs), more
    # Only open appeals have running clocks; closed ones would make every read of the list longer.
    ids = [doc["_id"] async for doc in db.appeals.find({**query, "open": True}, {"_id": 1})]
    due = {k: d["next_due"] for k, d in (await by_ids(db.deadlines, ids, {"next_due": 1})).items() if d.get("next_due")}
    ordered = sorted((due[appeal_id], appeal_id) for appeal_id in due)
    keys, more = page_of(ordered, lambda key: key, after, limit, skip=skip)
    chosen = await by_ids(db.appeals, [appeal_id for _, appeal_id in keys], shown)
    return await with_deadlines(db, [chosen[appeal_id] for _, appeal_id in keys if appeal_id in chosen]), more


def worklist_key(doc: dict[str, Any]) -> Key:
    """Where an appeal stands in a worklist oldest first: its submission, then its id (neither ever changes)."""
    return keyed(doc, "submitted_at")


def due_key(doc: dict[str, Any]) -> Key:
    """Where an appeal stands in a worklist soonest due first: its first running clock's due time, then its id."""
    return (doc.get("next_due"), doc["_id"])


async def with_deadlines(db: AsyncDatabase, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The appeals with their clocks and `next_due`, kept apart in `deadlines` (see apply_clocks)."""
    kept = await by_ids(db.deadlines, [doc["_id"] for doc in docs], {"clocks": 1, "next_due": 1})
    return [{**doc, **{k: v for k, v in kept.get(doc["_id"], {}).items() if k != "_id"}} for doc in docs]


async def apply_clocks(db: AsyncDatabase, events: Sequence[CloudEvent[SlaClockChanged]]) -> None:
    """Keep each appeal's clocks as sla reports them, and when its first running clock runs out (`next_due`).

    They live in `deadlines`, one small document per appeal, not in the appeal's own: six clock
    reports per appeal rewriting the large appeal documents slowed routing on the same database.
    A batch costs one read and one write per appeal, whatever the number of its events.
    """
    by_appeal: dict[str, list[CloudEvent[SlaClockChanged]]] = {}
    for event in events:
        by_appeal.setdefault(event.data.appeal_id, []).append(event)
    for _ in range(MAX_ATTEMPTS):
        docs = await by_ids(db.deadlines, sorted(by_appeal), {"clocks": 1, "v": 1})
        writes = []
        for appeal_id, appeal_events in by_appeal.items():
            doc = docs.get(appeal_id, {})
            before = doc.get("clocks", {})
            clocks = merged_clocks(before, appeal_events)
            if clocks == before:
                continue
            found, gone = queue.summary(clocks)
            update: dict[str, Any] = {
                "$set": {"clocks": clocks, "next_due": next_due({"clocks": clocks}), "v": doc.get("v", 0) + 1, **found}
            }
            if gone:
                update["$unset"] = gone
            writes.append(UpdateOne({"_id": appeal_id, "v": doc.get("v", 0)}, update, upsert=True))
        if not writes:
            return
        try:
            await db.deadlines.bulk_write(writes, ordered=False)
            return
        except BulkWriteError as exc:
            # Another replica wrote some of these appeals' clocks first: read them again and merge.
            if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                raise
    raise RuntimeError(f"clocks of {len(by_appeal)} appeals kept changing under {MAX_ATTEMPTS} attempts")


async def clocks_for(db: AsyncDatabase, action: DepartmentAction) -> dict[str, dict[str, Any]] | None:
    """The appeal's clocks as sla last reported them, for an action decided against them (an extension)."""
    if action.action != ActionKind.request_extension:
        return None
    doc = await db.deadlines.find_one({"_id": action.appeal_id}, {"clocks": 1})
    return (doc or {}).get("clocks", {})


async def find(db: AsyncDatabase, appeal_id: str) -> dict[str, Any] | None:
    """One appeal as the router holds it, with its deadlines."""
    doc = await db.appeals.find_one({"_id": appeal_id}, {"outbox": 0, "seen": 0})
    return (await with_deadlines(db, [doc]))[0] if doc else None


async def publish_rejection(broker: KafkaBroker, topic: str, appeal_id: str, data) -> None:
    """Tell a department's integration that its Kafka action was refused."""
    await publish(broker, topic, make_event(SOURCE, EventType.action_rejected, appeal_id, data))


async def history(db: AsyncDatabase, uscc: str, limit: int = 200) -> list[dict[str, Any]]:
    """A company's appeals, newest first."""
    fields = {
        "status": 1,
        "category": 1,
        "title": 1,
        "lead": 1,
        "sla_profile": 1,
        "lists": 1,
        "submitted_at": 1,
        "resolved_at": 1,
    }
    cursor = db.appeals.find({"enterprise.uscc": uscc}, fields).sort("submitted_at", -1).limit(limit)
    return await with_deadlines(db, [doc async for doc in cursor])
