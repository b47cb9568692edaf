"""The city queue: what the coordinating office watches across every department (docs/domain.md, "Supervision").

`overdue` and `at_risk` come from the clocks router keeps as sla reports them (`deadlines`),
through two fields kept on each appeal's deadlines document (`summary`): when its first
watched clock ran or runs out, and whether a running clock passed its last warning. Only
the few appeals past a due time or a warning are read; the appeal's own status then says
whether the clock still awaits its answer (sla does not report the answer to a clock that
breached already).
"""

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any, Literal

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from libs.deadlines import aware, urge_level
from libs.mongo import ID_CHUNK, by_ids
from libs.paging import Key, keyed, read_page

QueueState = Literal["overdue", "at_risk", "extension_pending", "sent_back", "transfer_requested", "redo"]
# Clocks the queue watches, and the statuses in which each still awaits its answer.
WATCHED = {"scope": {"routed"}, "resolution": {"routed", "accepted", "reopened"}}
# The warning after which a running clock is at risk (sla warns at 50 % and 80 %).
AT_RISK_LEVEL = 80
# Fields of an appeal the queue shows: no contact, no description.
SHOWN = {
    "title": 1,
    "category": 1,
    "district": 1,
    "lead": 1,
    "cohandlers": 1,
    "status": 1,
    "submitted_at": 1,
    "extension_pending_until": 1,
    "extensions": 1,
    "send_back": 1,
    "transfer_request": 1,
    "urgings": 1,
    "redo_count": 1,
    "redo_supervised_at": 1,
    "enterprise.name": 1,
}


def summary(clocks: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Fields to set and to unset on a deadlines document: the latest watched runs' due times and `overdue_from`,
    and `at_risk` while a running clock is past its last warning."""
    latest: dict[str, dict[str, Any]] = {}
    for clock in clocks.values():
        kind = clock["clock"]
        if kind in WATCHED and (kind not in latest or clock["started_at"] >= latest[kind]["started_at"]):
            latest[kind] = clock
    found: dict[str, Any] = {}
    for kind, clock in latest.items():
        if clock["state"] in ("running", "breached") and clock.get("due_at"):
            found[f"due.{kind}"] = clock["due_at"]
    if found:
        found["overdue_from"] = min(found.values())
    if any(c["state"] == "running" and (c.get("level") or 0) >= AT_RISK_LEVEL for c in clocks.values()):
        found["at_risk"] = True
    # The urging ladder's highest level on any clock (sla.urged.v1); the breach itself is level 1.
    urged = max((urge_level(c) for c in clocks.values()), default=0)
    if urged:
        found["urge_level"] = urged
    gone = {k: "" for k in ("due.scope", "due.resolution", "overdue_from", "at_risk", "urge_level") if k not in found}
    return found, gone


async def ensure_indexes(db: AsyncDatabase) -> None:
    """The queue reads only appeals past a due time, past a warning, or with an extension pending; and every open
    appeal oldest first (pages start at a submission time)."""
    await db.appeals.create_index(
        [("submitted_at", ASCENDING)], name="open_by_submission", partialFilterExpression={"open": True}
    )
    await db.deadlines.create_index([("overdue_from", ASCENDING)], sparse=True)
    await db.deadlines.create_index([("at_risk", ASCENDING)], sparse=True)
    await db.appeals.create_index([("extension_pending_until", ASCENDING)], sparse=True)
    await db.appeals.create_index([("send_back.state", ASCENDING), ("send_back.at", ASCENDING)], sparse=True)
    await db.appeals.create_index([("transfer_request.at", ASCENDING)], sparse=True)
    await db.appeals.create_index([("redo_supervised_at", ASCENDING)], sparse=True)


def states_of(appeal: dict[str, Any], deadline: dict[str, Any], now: datetime) -> list[str]:
    """The queue states an open appeal is in, given its deadlines document."""
    states = []
    due = deadline.get("due", {})
    if any(
        appeal["status"] in statuses and due.get(kind) and aware(due[kind]) <= now for kind, statuses in WATCHED.items()
    ):
        states.append("overdue")
    elif deadline.get("at_risk"):
        states.append("at_risk")
    pending = appeal.get("extension_pending_until")
    if pending and aware(pending) > now:
        states.append("extension_pending")
    if (appeal.get("send_back") or {}).get("state") == "pending":
        states.append("sent_back")
    if appeal.get("transfer_request"):
        states.append("transfer_requested")
    if appeal.get("redo_supervised_at"):
        states.append("redo")
    return states


# Each state's order: the field that sorts it (then the appeal's id), and whether that field stays as it is while
# the appeal is in the state (a submission does; an overdue or lapsing time moves with an extension, and a send-back,
# a transfer request or a redo gets a new time when it happens again).
ORDERS: dict[str | None, str] = {
    None: "submitted_at",
    "extension_pending": "extension_pending_until",
    "sent_back": "send_back.at",
    "transfer_requested": "transfer_request.at",
    # Redone as often as assessment.yaml's supervise_after: the office supervises it until it closes.
    "redo": "redo_supervised_at",
    "overdue": "overdue_from",
    "at_risk": "overdue_from",
}


def key_of(state: QueueState | None) -> Callable[[dict[str, Any]], Key]:
    """Where a row stands in the queue of `state`: its order's field, then its appeal's id."""
    field = ORDERS[state]
    return lambda row: keyed(row, field)


async def city_queue(
    db: AsyncDatabase,
    now: datetime,
    state: QueueState | None,
    filters: dict[str, str],
    *,
    limit: int,
    after: Key | None = None,
    skip: int = 0,
    urge_level: int | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the open appeals in `state` (any, when none) matching `filters` (lead department, district,
    category) after the key `after`, the longest overdue or the soonest due first, and whether more follow; each
    with the states it is in and its deadlines document."""
    query: dict[str, Any] = {"open": True}
    if "department" in filters:
        query["handlers"] = filters["department"]
    query.update({k: v for k, v in filters.items() if k in ("district", "category")})
    field = ORDERS[state]
    # States the appeal itself records, oldest first (or the soonest to lapse, for extensions).
    recorded: dict[str | None, dict[str, Any]] = {
        None: {},
        "extension_pending": {"extension_pending_until": {"$gt": now}},
        "sent_back": {"send_back.state": "pending"},
        "transfer_requested": {"transfer_request.at": {"$exists": True}},
        "redo": {"redo_supervised_at": {"$exists": True}},
    }
    if state in recorded:
        wanted = {**query, **recorded[state]}
        if after is not None and after[0] is not None:
            wanted[field] = {**wanted.get(field, {}), "$gte": after[0]}
        found = db.appeals.find(wanted, SHOWN).sort(field, ASCENDING)
        if not urge_level:
            async with found.batch_size(limit + 2) as cursor:
                appeals, more = await read_page(cursor, key_of(state), after, limit, skip=skip)
            kept = await by_ids(db.deadlines, [a["_id"] for a in appeals])
            return [_row(a, kept.get(a["_id"], {}), now) for a in appeals], more

        async def urged() -> AsyncGenerator[dict[str, Any]]:
            """The appeals in the state whose urging reached `urge_level`, as rows, in the state's order."""
            async with found as cursor:
                async for chunk in _chunks(cursor, ID_CHUNK):
                    kept = await by_ids(db.deadlines, list(chunk))
                    for appeal_id, appeal in chunk.items():
                        if (kept.get(appeal_id, {}).get("urge_level") or 0) >= (urge_level or 0):
                            yield _row(appeal, kept[appeal_id], now)

        async with aclosing(urged()) as stream:
            return await read_page(stream, key_of(state), after, limit, skip=skip)
    watched: dict[str, Any] = {"overdue_from": {"$lte": now}} if state == "overdue" else {"at_risk": True}
    if after is not None and after[0] is not None:
        watched["overdue_from"] = {**watched.get("overdue_from", {}), "$gte": after[0]}
    if urge_level:
        watched["urge_level"] = {"$gte": urge_level}

    async def rows() -> AsyncGenerator[dict[str, Any]]:
        async with db.deadlines.find(watched).sort("overdue_from", ASCENDING) as cursor:
            async for chunk in _chunks(cursor, ID_CHUNK):
                appeals = {a["_id"]: a async for a in db.appeals.find({**query, "_id": {"$in": list(chunk)}}, SHOWN)}
                for appeal_id, deadline in chunk.items():
                    appeal = appeals.get(appeal_id)
                    if appeal is None:
                        continue
                    row = _row(appeal, deadline, now)
                    if state in row["states"]:
                        yield row

    async with aclosing(rows()) as stream:
        return await read_page(stream, key_of(state), after, limit, skip=skip)


def _row(appeal: dict[str, Any], deadline: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        **appeal,
        "overdue_from": deadline.get("overdue_from"),
        "clocks": deadline.get("clocks", {}),
        "urge_level": deadline.get("urge_level"),
        "states": states_of(appeal, deadline, now),
    }


async def _chunks(cursor: Any, size: int) -> AsyncIterator[dict[str, dict[str, Any]]]:
    chunk: dict[str, dict[str, Any]] = {}
    async for doc in cursor:
        chunk[doc["_id"]] = doc
        if len(chunk) >= size:
            yield chunk
            chunk = {}
    if chunk:
        yield chunk
