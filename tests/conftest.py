"""Fixtures that start real servers: Apache Kafka and SecantusDB (MongoDB protocol)."""

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import servers
from devstack.keys import provision
from libs.config import load_city, load_registry_config
from libs.contract import all_topics
from libs.kafka.topics import ensure_topics
from libs.settings import PROJECT_ROOT


@dataclass
class Servers:
    bootstrap: str
    mongodb_uri: str
    kafka: object
    mongo: object


def start_broker(directory: Path) -> tuple[subprocess.Popen, str]:
    """An Apache Kafka on free loopback ports, its log under `directory`, every platform topic created."""
    port, controller = servers.free_ports(2)
    kafka = servers.start_kafka(port, controller, directory / "kafka", directory / "kafka.log")
    bootstrap = f"127.0.0.1:{port}"
    city = load_city(PROJECT_ROOT / "config")
    asyncio.run(ensure_topics(bootstrap, all_topics([d.code for d in city.departments]), partitions=4))
    return kafka, bootstrap


@pytest.fixture(scope="session")
def real_servers(tmp_path_factory) -> Servers:
    """One Apache Kafka and one SecantusDB server for the session, on free loopback ports, every topic created.

    Tests that share them keep apart by their own databases, consumer groups and, where
    they need a topic to themselves, their own topics.
    """
    logs = tmp_path_factory.mktemp("server-logs")
    kafka, bootstrap = start_broker(logs)
    mongo_port = servers.free_port()
    mongo = servers.start_mongo(mongo_port, ":memory:", logs / "mongodb.log")
    yield Servers(bootstrap, servers.embedded_mongo_uri(mongo_port), kafka, mongo)
    servers.stop(kafka)
    servers.stop(mongo)


@pytest.fixture(scope="session")
def demo_keys(tmp_path_factory) -> tuple[dict[str, str], Path]:
    """Demo keys for every scope, and the hashed key file services read."""
    data = tmp_path_factory.mktemp("keys")
    city = load_city(PROJECT_ROOT / "config")
    liaisons = [entry.id for entry in load_registry_config(PROJECT_ROOT / "config", city).liaisons]
    keys = provision(city, data, liaisons)
    return keys, data / "api-keys.json"
