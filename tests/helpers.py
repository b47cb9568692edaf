"""Test helpers: valid credit codes, appeal bodies, reading Kafka topics, stacks on free ports."""

import asyncio
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from devstack import servers
from devstack.stack import SERVICES, Stack
from libs.settings import PROJECT_ROOT
from services.intake.uscc import check_character

_counter = itertools.count(1)


def valid_uscc(n: int | None = None) -> str:
    """A credit code with a correct check character, different for each `n`."""
    n = next(_counter) if n is None else n
    first17 = f"91440300MA{n:07d}"
    return first17 + check_character(first17)


def appeal_body(**overrides: Any) -> dict[str, Any]:
    """A valid appeal body; pass nested overrides as enterprise={...} etc."""
    n = next(_counter)
    body = {
        "channel_ref": f"ref-{time.time_ns()}-{n}",
        "enterprise": {"uscc": valid_uscc(n), "name": f"Company {n}", "employees": 25,
                       "industry": "internet services", "district": "nanshan"},
        "contact": {"name": "Li Wei", "phone": "13800138000", "email": "liwei@example.com"},
        "category": "financing",
        "title": f"Loan due while staff cannot return #{n}",
        "description": "Our working-capital loan falls due; we ask for deferred repayment of principal.",
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


async def read_topic(bootstrap: str, topic: str, predicate: Callable[[dict], bool], *, count: int = 1,
                     timeout: float = 15.0) -> list[dict]:
    """Events of `topic` (from the beginning) matching `predicate`; waits until `count` are there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = None
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic) or None
            if not partitions:
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in partitions or []]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict] = []

        def collect(batch) -> None:
            for records in batch.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except ValueError:
                        event = {"_raw": record.value, "_headers": dict(record.headers)}
                    if predicate(event):
                        found.append(event)

        while time.monotonic() < deadline:
            collect(await consumer.getmany(timeout_ms=300))
            if len(found) >= count:
                # Read a little longer so tests that check "exactly once" see late duplicates too.
                collect(await consumer.getmany(timeout_ms=500))
                return found
        return found
    finally:
        await consumer.stop()


class MovableClock:
    """Wall-clock time plus an offset that tests can push forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def kcat_env(tmp_dir: Path) -> dict[str, str]:
    """Environment for Debian's kcat with the librdkafka bundled in the confluent-kafka wheel.

    Debian bookworm's librdkafka 2.0.2 misreads the tagged fields of the ApiVersions v3
    answer that Tansu sends; librdkafka 2.16 reads it. The kcat binary stays stock.
    """
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    bundled = next(libs.glob("librdkafka-*.so.1"))
    link = tmp_dir / "librdkafka.so.1"
    if not link.exists():
        link.symlink_to(bundled)
    return {**os.environ, "LD_LIBRARY_PATH": str(tmp_dir)}


def fresh_stack(tmp_path_factory, label: str, *, fast_sla: bool = False, **options: Any) -> Stack:
    """A started stack on free loopback ports, MongoDB in memory unless `mongo_storage=None` (on disk).

    `fast_sla` gives every appeal the test_fast profile (targets of seconds), so warnings
    and breaches fire within a test.
    """
    config = PROJECT_ROOT / "config"
    if fast_sla:
        config = tmp_path_factory.mktemp("config")
        shutil.copytree(PROJECT_ROOT / "config", config, dirs_exist_ok=True)
        profiles = yaml.safe_load((config / "sla_profiles.yaml").read_text())
        profiles["selection"] = [{"profile": "test_fast"}]
        (config / "sla_profiles.yaml").write_text(yaml.safe_dump(profiles))
    options.setdefault("mongo_storage", ":memory:")
    stack = Stack(data_dir=tmp_path_factory.mktemp(label), kafka_port=servers.free_port(),
                  mongo_ports={name: servers.free_port() for name, _ in SERVICES}, config_dir=config,
                  service_ports={name: servers.free_port() for name, _ in SERVICES},
                  smtp_port=servers.free_port(), outbox_port=servers.free_port(), **options)
    stack.start()
    return stack


class Databases:
    """Each service's own database in a stack, by service name: `Databases(stack).router.appeals`."""

    def __init__(self, stack: Stack) -> None:
        self._clients = {name: AsyncMongoClient(stack.mongo_uri(name)) for name, _ in SERVICES}

    def __getattr__(self, service: str) -> AsyncDatabase:
        return self._clients[service][service]

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.close()


async def assert_routed_once(bootstrap: str, ids: list[str], timeout: float = 30.0) -> None:
    """Each appeal has exactly one routing decision on the lifecycle topic.

    A crash between publishing and clearing an outbox may republish an event, but always
    under the same id, which consumers deduplicate; a second routing would have a new id.
    """
    wanted = set(ids)
    routed = await read_topic(bootstrap, "appeals.lifecycle.v1",
                              lambda e: e.get("subject") in wanted and e["type"] == "appeal.routed.v1",
                              count=len(ids), timeout=timeout)
    decisions: dict[str, set[str]] = {}
    for event in routed:
        decisions.setdefault(event["subject"], set()).add(event["id"])
    assert {i: len(decisions.get(i, ())) for i in ids} == {i: 1 for i in ids}
