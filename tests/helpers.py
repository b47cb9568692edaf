"""Test helpers: valid credit codes, appeal bodies, reading Kafka topics, stacks on free ports."""

import asyncio
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import yaml
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase

from devstack import servers
from devstack.stack import ALL_SERVICES, SERVICES, Stack
from libs.envelopes import CloudEvent
from libs.events import SlaClockChanged, SlaClockReport, SlaClocksReported, SlaClockType
from libs.kafka.access import KafkaAccess, access_of
from libs.kafka.publishing import make_event
from libs.kafka_admin import partitions_of
from libs.kinds import EventType
from libs.settings import PROJECT_ROOT
from libs.uscc import check_character

_counter = itertools.count(1)


def valid_uscc(n: int | None = None) -> str:
    """A credit code with a correct check character, different for each `n`."""
    n = next(_counter) if n is None else n
    first17 = f"91440300MA{n:07d}"
    return first17 + check_character(first17)


def key(stack: Stack, scope: str) -> dict[str, str]:
    """The header carrying the stack's API key of `scope` (`operator`, `department:coord`, ...)."""
    return {"X-Api-Key": stack.keys[scope]}


def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """`check()` once it gives something true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.2)


def appeal_body(**overrides: Any) -> dict[str, Any]:
    """A valid appeal body; pass nested overrides as enterprise={...} etc."""
    n = next(_counter)
    body = {
        "channel_ref": f"ref-{time.time_ns()}-{n}",
        "enterprise": {
            "uscc": valid_uscc(n),
            "name": f"Company {n}",
            "employees": 25,
            "industry": "internet services",
            "district": "nanshan",
        },
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


def open311_form(n: int, **overrides: str) -> dict[str, str]:
    """A valid Open311 service request for company `n`, form fields as 311 clients send them."""
    return {
        "service_code": "financing",
        "attribute[uscc]": valid_uscc(n),
        "attribute[enterprise_name]": f"Lanhai {n}",
        "attribute[employees]": "25",
        "attribute[industry]": "internet services",
        "attribute[district]": "nanshan",
        "first_name": "Wei",
        "last_name": "Li",
        "phone": "13800138000",
        "description": f"Our working-capital loan {n} falls due; we ask for deferred repayment.",
        **overrides,
    }


def sla_reports(event: dict) -> list[dict]:
    """The reports of an `sla.reported.v2` event (as JSON) as the `sla.*.v1` events they stand for."""
    keep = {k: v for k, v in event.items() if k not in ("id", "type", "data")}
    return [{**keep, "id": r["id"], "type": r["type"], "data": r["data"]} for r in event["data"]["reports"]]


def packed(*events: CloudEvent[SlaClockChanged]) -> CloudEvent[SlaClocksReported]:
    """The `sla.reported.v2` event sla writes for these clock events of one appeal, each report under its v1 id."""
    reports = [SlaClockReport(id=e.id, type=cast(SlaClockType, e.type), data=e.data) for e in events]
    data = SlaClocksReported(appeal_id=events[0].data.appeal_id, reports=reports)
    return make_event("appeals/sla", EventType.sla_reported, events[0].subject, data, time=events[0].time)


async def read_topic(
    bootstrap: KafkaAccess | str,
    topic: str,
    predicate: Callable[[dict], bool],
    *,
    count: int = 1,
    timeout: float = 15.0,
    unpack: bool = False,
) -> list[dict]:
    """Events of `topic` (from the beginning) matching `predicate`; waits until `count` are there.

    With `unpack`, each `sla.reported.v2` stands for the `sla.*.v1` events it packs.
    """
    deadline = time.monotonic() + timeout
    tps = await partitions_of(bootstrap, [topic])
    while not tps and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        tps = await partitions_of(bootstrap, [topic])
    consumer = AIOKafkaConsumer(**access_of(bootstrap).client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
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
                    events = sla_reports(event) if unpack and event.get("type") == "sla.reported.v2" else [event]
                    found.extend(one for one in events if predicate(one))

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


def fresh_stack(
    tmp_path_factory,
    label: str,
    *,
    fast_sla: bool = False,
    configure: Callable[[Path], None] | None = None,
    **options: Any,
) -> Stack:
    """A started stack on free loopback ports, MongoDB in memory unless `mongo_storage=None` (on disk).

    `fast_sla` gives every appeal the test_fast profile (targets of seconds), so warnings
    and breaches fire within a test. `configure` edits a copy of config/ before the start.
    """
    config = PROJECT_ROOT / "config"
    if fast_sla or configure:
        config = tmp_path_factory.mktemp("config")
        shutil.copytree(PROJECT_ROOT / "config", config, dirs_exist_ok=True)
    if fast_sla:
        profiles = yaml.safe_load((config / "sla_profiles.yaml").read_text())
        profiles["selection"] = [{"profile": "test_fast"}]
        (config / "sla_profiles.yaml").write_text(yaml.safe_dump(profiles))
    if configure:
        configure(config)
    options.setdefault("mongo_storage", ":memory:")
    stack = Stack.on_free_ports(tmp_path_factory.mktemp(label), config_dir=config, **options)
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


async def assert_routed_once(bootstrap: KafkaAccess | str, ids: list[str], timeout: float = 30.0) -> None:
    """Each appeal has exactly one routing decision on the lifecycle topic.

    A crash between publishing and clearing an outbox may republish an event, but always
    under the same id, which consumers deduplicate; a second routing would have a new id.
    """
    wanted = set(ids)
    routed = await read_topic(
        bootstrap,
        "appeals.lifecycle.v1",
        lambda e: e.get("subject") in wanted and e["type"] == "appeal.routed.v1",
        count=len(ids),
        timeout=timeout,
    )
    decisions: dict[str, set[str]] = {}
    for event in routed:
        decisions.setdefault(event["subject"], set()).add(event["id"])
    assert {i: len(decisions.get(i, ())) for i in ids} == {i: 1 for i in ids}


def stats_buckets(client: MongoClient, database: str) -> dict[str, dict[str, int]]:
    """Every count and sketch bucket of a stats database, zeros left out."""
    return {
        doc["_id"]: {k: v for k, v in doc.get("c", {}).items() if v}
        for collection in ("buckets", "sketches")
        for doc in client[database][collection].find({}, {"c": 1})
    }


def bucket_differences(live: dict, rebuilt: dict) -> dict:
    """Per bucket, the figures that differ between two `stats_buckets` readings."""
    out = {}
    for bucket in live.keys() | rebuilt.keys():
        a, b = live.get(bucket, {}), rebuilt.get(bucket, {})
        diff = {f: (a.get(f), b.get(f)) for f in a.keys() | b.keys() if a.get(f) != b.get(f)}
        if diff:
            out[bucket] = diff
    return out


def stack_for_run_command(data_dir: Path, **options: Any) -> Stack:
    """A stack on free ports that `python -m devstack run` will start (see `run_command`); not started here."""
    stack = Stack.on_free_ports(data_dir, **options)
    taken = set(stack.ports().values())
    stack.mongo_port = servers.free_port_run(len(SERVICES))
    while taken & set(range(stack.mongo_port, stack.mongo_port + len(SERVICES))):
        stack.mongo_port = servers.free_port_run(len(SERVICES))
    stack.mongo_ports = {name: stack.mongo_port + n for n, (name, _) in enumerate(SERVICES)}
    return stack


def run_command(stack: Stack, log: Path, *args: str) -> subprocess.Popen:
    """`python -m devstack run` (or another devstack command) on the stack's data folder and ports, output to `log`."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    env.update(
        {
            "KAFKA_PORT": str(stack.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(stack.kafka_controller_port),
            "MONGODB_PORT": str(stack.mongo_port),
            "SMTP_PORT": str(stack.smtp_port),
            "OUTBOX_PORT": str(stack.outbox_port),
            **{f"{name.upper()}_PORT": str(stack.service_ports[name]) for name, _ in ALL_SERVICES},
        }
    )
    command = list(args) or ["run", "--config-dir", str(stack.config_dir)]
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "devstack", "--data-dir", str(stack.data_dir), *command],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for_banner(proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> str:
    """Block until the run command says everything is running; its output so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ctrl-C stops everything" in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"the run command exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"no banner after {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def answered_anonymously(port: int, request: str, timeout: float = 5.0) -> bool:
    """Whether a Kafka listener on 127.0.0.1:`port` answers a client that never authenticated: after an
    ApiVersions (which any listener answers before authentication), `request` is sent, `metadata` (to a
    broker) or `describe_cluster` (which controllers serve too). An authenticating listener closes the
    connection instead; an open one answers."""
    client_id = b"anonymous-probe"

    def header(api_key: int, version: int, correlation: int, flexible: bool) -> bytes:
        head = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
        return head + (b"\x00" if flexible else b"")  # no tagged fields

    versions = header(18, 0, 1, False)  # ApiVersions v0, no body
    if request == "metadata":
        second = header(3, 0, 2, False) + struct.pack(">i", 0)  # Metadata v0: every topic
    else:
        # DescribeCluster v1: include_cluster_authorized_operations=false, endpoint_type=2 (controllers)
        second = header(60, 1, 2, True) + b"\x00\x02\x00"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        answers = 0
        for message in (versions, second):
            sock.sendall(struct.pack(">i", len(message)) + message)
            size = sock.recv(4)
            if len(size) < 4:
                return False
            remaining = struct.unpack(">i", size)[0]
            while remaining:
                chunk = sock.recv(remaining)
                if not chunk:
                    return False
                remaining -= len(chunk)
            answers += 1
        return answers == 2


def fake_page(request: httpx.Request, rows: list[Any]) -> httpx.Response:
    """A fake router's answer to a paged list request: `limit` rows from the `cursor` (an index here, opaque to the
    caller), and a `Link` header to the next page while there is one, as router answers (libs/paging.py)."""
    start, limit = int(request.url.params.get("cursor", "0")), int(request.url.params["limit"])
    page = rows[start : start + limit]
    headers = {}
    if start + limit < len(rows):
        headers["Link"] = f'<{request.url.copy_merge_params({"cursor": str(start + limit)})}>; rel="next"'
    return httpx.Response(200, json=page, headers=headers)
