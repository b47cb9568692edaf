"""MongoDB wiring with PyMongo's asyncio client."""

from pymongo import AsyncMongoClient
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
