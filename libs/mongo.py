"""MongoDB wiring with PyMongo's asyncio client."""

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


async def update_then_read(collection: AsyncCollection, query: dict[str, Any],
                           update: dict[str, Any]) -> dict[str, Any] | None:
    """`find_one_and_update(..., AFTER)` as an update and a read by `_id`: None when `query` matched nothing.

    SecantusDB answers a findAndModify by scanning the whole collection (it wraps the
    query in an `$and`, which no index serves), so its cost grew with every stored
    document; an update and a read by `_id` both stay on the index. What is read
    back may include a later writer's change too, which is what a caller publishing
    the outbox wants anyway.
    """
    result = await collection.update_one(query, update)
    if result.matched_count == 0:
        return None
    return await collection.find_one({"_id": query["_id"]})
