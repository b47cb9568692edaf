"""MongoDB wiring with PyMongo's asyncio client."""

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from libs.settings import ServiceSettings


def make_client(settings: ServiceSettings) -> AsyncMongoClient:
    """A client that returns timezone-aware datetimes and fails fast when the server is gone."""
    return AsyncMongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=3000,
        appname=f"appeals-{settings.service_name}",
    )


def service_database(client: AsyncMongoClient, settings: ServiceSettings) -> AsyncDatabase:
    """The database this service owns; no other service reads it."""
    return client[settings.mongodb_database]


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
                    pushed = pushed[value["$slice"]:] if value["$slice"] < 0 else pushed[:value["$slice"]]
                after[name] = pushed
            else:
                raise ValueError(f"apply_update does not handle {operator}")
    return after


async def update_guarded(collection: AsyncCollection, doc: dict[str, Any], guard: dict[str, Any],
                         update: dict[str, Any]) -> dict[str, Any] | None:
    """Update `doc` while `guard` (its `_id` and version or claim) still matches; the document after, or None.

    This is `find_one_and_update(..., AFTER)` without the findAndModify: SecantusDB
    answers one by scanning the whole collection (it wraps the query in an `$and`,
    which no index serves), so its cost grew with every stored document. The guard
    means nobody changed what we read, so the document after is computed here.
    """
    result = await collection.update_one({"_id": doc["_id"], **guard}, update)
    return apply_update(doc, update) if result.matched_count else None
