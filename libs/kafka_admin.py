"""Kafka's administration for the platform: who may do what on the topics (SCRAM users and ACLs, from the
contract), reading a cluster's partitions and groups, dead letters sent back, and the command line
`python -m libs.kafka`; the topics themselves are libs/kafka/topics.py's.

Services never administer: their principals may only read and write their own topics. The embedded stack
runs this as the admin principal at every start; a deployment runs the command line (docs/production.md).
"""

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.contract import (
    CONSUMERS,
    DEPARTMENT_ACTIONS,
    DEPARTMENT_TOPIC,
    SERVICE_NAMES,
    TOPICS,
    all_topics,
    dead_letter_topic,
    department_actions_topic,
    department_topic,
    topics_of,
)
from libs.kafka.access import KafkaAccess, access_of
from libs.kafka.topics import ensure_topics, partitions_setting

log = logging.getLogger(__name__)


# --- Reading a cluster


async def partitions_of(kafka: KafkaAccess | str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics` that exist, as the broker describes them."""
    admin = AIOKafkaAdminClient(**access_of(kafka).client_options())
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in sorted(t["partitions"], key=lambda p: p["partition"])
    ]


async def first_records(
    kafka: KafkaAccess | str, partitions: list[tuple[str, int]], timeout: float = 30.0
) -> dict[tuple[str, int], tuple[int, str] | None]:
    """The offset and event id of the first record of each (topic, partition); None for an empty partition."""
    consumer = AIOKafkaConsumer(
        **access_of(kafka).client_options(), enable_auto_commit=False, client_id="appeals-first-records"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        found: dict[tuple[str, int], tuple[int, str] | None] = {
            (tp.topic, tp.partition): None for tp in tps if starts[tp] >= ends[tp]
        }
        wanted = [tp for tp in tps if starts[tp] < ends[tp]]
        for tp in wanted:
            consumer.seek(tp, starts[tp])
        async with asyncio.timeout(timeout):
            while len(found) < len(tps):
                for tp, records in (await consumer.getmany(*wanted, timeout_ms=500, max_records=1)).items():
                    if records and (tp.topic, tp.partition) not in found:
                        record = records[0]
                        found[(tp.topic, tp.partition)] = (record.offset, _event_id(record.value))
                        consumer.pause(tp)
        return found
    finally:
        await consumer.stop()


def _event_id(value: bytes | None) -> str:
    """A record's CloudEvent id, or a digest of its bytes when it is not a readable event."""
    try:
        return str(json.loads(value or b"")["id"])
    except (ValueError, KeyError, TypeError):
        return "sha256:" + hashlib.sha256(value or b"").hexdigest()


class GroupLag:
    """How far another service's consumer group is behind on a topic, asked of the broker."""

    def __init__(self, kafka: KafkaAccess | str) -> None:
        options = access_of(kafka).client_options()
        self._admin = AIOKafkaAdminClient(**options, client_id="appeals-group-lag")
        # No group: it only asks for end offsets, it never reads.
        self._ends = AIOKafkaConsumer(**options, enable_auto_commit=False, client_id="appeals-group-lag")
        self._started: list[Any] = []
        self._partitions: dict[str, list[TopicPartition]] = {}  # a live topic gets no partitions (docs/scaling.md)

    async def stop(self) -> None:
        """Close the clients it connected."""
        while self._started:
            client = self._started.pop()
            await (client.stop() if client is self._ends else client.close())

    async def records(self, group: str) -> int | None:
        """Records `group` has not committed yet, over every topic it reads; None while it has committed none."""
        for client in (self._admin, self._ends):
            if client not in self._started:  # connected at the first ask, again after a failed one
                await client.start()
                self._started.append(client)
        committed: dict[TopicPartition, int] = {
            tp: meta.offset
            for tp, meta in (await self._admin.list_consumer_group_offsets(group)).items()
            if meta.offset >= 0
        }
        if not committed:
            return None  # a group that never ran, or a misspelt one: no measure, rather than a wall of 503s
        partitions: list[TopicPartition] = []
        for topic in sorted({tp.topic for tp in committed}):
            if topic not in self._partitions:
                described = await self._admin.describe_topics([topic])
                self._partitions[topic] = [
                    TopicPartition(topic, p["partition"])
                    for t in described
                    if t["error_code"] == 0
                    for p in t["partitions"]
                ]
            partitions += self._partitions[topic]
        ends: dict[TopicPartition, int] = await self._ends.end_offsets(partitions)
        return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())


# --- Principals: who may do what


ADMIN = "admin"
# The principal of a department's own systems: they read its topic, write its actions, and join groups of its name.
DEPARTMENT_PREFIX = "dept-"


def department_principal(code: str) -> str:
    """The Kafka user of department `code`'s own systems."""
    return f"{DEPARTMENT_PREFIX}{code}"


def principals(department_codes: Iterable[str]) -> list[str]:
    """Every user the platform has on Kafka: its admin, each service with a consumer or a topic, each department."""
    return [ADMIN, *SERVICE_NAMES, *(department_principal(code) for code in department_codes)]


@dataclass(frozen=True, order=True)
class Grant:
    """One ACL: `principal` may `operation` (READ, WRITE, DESCRIBE) the topic or group `name` (or every name
    beginning so, when `prefixed`)."""

    principal: str
    resource: str
    name: str
    operation: str
    prefixed: bool = False


def grants(department_codes: Iterable[str]) -> list[Grant]:
    """What each principal may do, from the contract: a service writes the topics it produces (and the dead
    letters of those it reads or writes) and reads the topics its consumers read, in groups named after it; a
    department reads its own topic and writes its own actions. Nobody else writes `appeals.actions.v1`: router
    drains what is there."""
    codes = list(department_codes)
    out: set[Grant] = set()
    for service in SERVICE_NAMES:
        touched: set[str] = set()
        for entry in TOPICS:
            if service in entry.producers:
                out.add(Grant(service, "topic", entry.name, "WRITE"))
                touched.add(entry.name)
        for entry, named in ((DEPARTMENT_TOPIC, department_topic), (DEPARTMENT_ACTIONS, department_actions_topic)):
            if service in entry.producers:
                out |= {Grant(service, "topic", named(code), "WRITE") for code in codes}
        for consumer in CONSUMERS:
            if consumer.service != service:
                continue
            for name in topics_of(consumer, codes):
                out.add(Grant(service, "topic", name, "READ"))
                out.add(Grant(service, "topic", dead_letter_topic(name), "WRITE"))
            out.add(Grant(service, "group", f"{service}.", "READ", prefixed=True))
        out |= {Grant(service, "topic", dead_letter_topic(name), "WRITE") for name in touched}
    # intake sheds submissions while another service's groups lag: it may see their offsets, never their records.
    for consumer in CONSUMERS:
        if consumer.service != "intake":
            out.add(Grant("intake", "group", consumer.group, "DESCRIBE"))
            out |= {Grant("intake", "topic", name, "DESCRIBE") for name in topics_of(consumer, codes)}
    for code in codes:
        user = department_principal(code)
        out.add(Grant(user, "topic", department_topic(code), "READ"))
        out.add(Grant(user, "topic", department_actions_topic(code), "WRITE"))
        out.add(Grant(user, "group", f"{user}.", "READ", prefixed=True))
    return sorted(out)


def scram_argument(name: str, password: str, salt: bytes, iterations: int = 8192) -> str:
    """`kafka-storage format --add-scram`'s value for one user, salted and hashed here, so that no password is in
    the formatting command's arguments (which any process of the machine may read)."""
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f'SCRAM-SHA-512=[name={name},iterations={iterations},salt="{_b64(salt)}",saltedpassword="{_b64(salted)}"]'


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


async def ensure_principals(admin: KafkaAccess, passwords: Mapping[str, str], department_codes: Iterable[str]) -> int:
    """Create the users of `passwords` that Kafka does not have yet, then every ACL of `grants` (Kafka keeps an
    ACL it has once). One request for the users and one for the ACLs, as `admin`; returns the users created."""
    return await asyncio.to_thread(_ensure_principals, admin, dict(passwords), list(department_codes))


def _ensure_principals(admin: KafkaAccess, passwords: dict[str, str], codes: list[str]) -> int:
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    client = AdminClient({**admin.librdkafka(), "client.id": "appeals-principals"})
    known = set()
    described: Any = client.describe_user_scram_credentials(list(passwords))
    for user, future in described.items():
        try:
            future.result(timeout=30)
            known.add(user)
        except Exception:  # RESOURCE_NOT_FOUND: a user to create
            continue
    missing = [user for user in passwords if user not in known]
    if missing:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        upserts: list[Any] = [UserScramCredentialUpsertion(user, info, passwords[user].encode()) for user in missing]
        for future in client.alter_user_scram_credentials(upserts).values():
            future.result(timeout=30)
    resource = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    bindings = [
        AclBinding(
            resource[g.resource],
            g.name,
            ResourcePatternType.PREFIXED if g.prefixed else ResourcePatternType.LITERAL,
            f"User:{g.principal}",
            "*",
            getattr(AclOperation, g.operation),
            AclPermissionType.ALLOW,
        )
        for g in grants(codes)
    ]
    for future in client.create_acls(bindings, request_timeout=60).values():
        future.result(timeout=60)
    # The broker applies new ACLs once it has read them from the cluster's metadata, a moment after they were
    # made; a service started in between was refused its topics (the stack starts them right after this).
    anything: Any = None  # a filter's "any name, principal, host" (the stubs know only strings)
    every = AclBindingFilter(
        ResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything, AclOperation.ANY, AclPermissionType.ANY
    )
    deadline = time.monotonic() + 30
    while len(set(bindings) - set(client.describe_acls(every).result(timeout=30))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(missing)


# --- Dead letters


REDRIVE_GROUP = "appeals-redrive"


async def redrive(kafka: KafkaAccess | str, dlq: str, timeout: float = 30.0) -> int:
    """Publish the records of `dlq` that consumers dead-lettered back to the topic they came from; how many.

    Run once the cause is fixed. Its own group remembers how far it got, so each letter goes
    back once however often it runs; the consumers drop an event they have handled already.
    Records without a `dlq-topic` header (notify's failed notifications) are left alone.
    """
    if not dlq.endswith(".dlq"):
        raise ValueError(f"{dlq} is not a dead-letter topic (<topic>.dlq)")
    access = access_of(kafka)
    partitions = await partitions_of(access, [dlq])
    if not partitions:
        raise ValueError(f"topic {dlq} does not exist")
    consumer = AIOKafkaConsumer(
        **access.client_options(),
        group_id=f"{REDRIVE_GROUP}.{dlq}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=REDRIVE_GROUP,
    )
    producer = AIOKafkaProducer(**access.producer_options(REDRIVE_GROUP))
    await consumer.start()
    await producer.start()
    sent = 0
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(timeout):
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                for tp, records in (await consumer.getmany(*partitions, timeout_ms=500)).items():
                    for record in records:
                        headers = {key: value.decode(errors="replace") for key, value in record.headers}
                        if "dlq-topic" not in headers:
                            continue
                        back = [(k, v) for k, v in record.headers if not k.startswith("dlq-")]
                        await producer.send_and_wait(
                            headers["dlq-topic"],
                            record.value,
                            key=record.key,
                            headers=[*back, ("redriven-from", f"{dlq}:{tp.partition}:{record.offset}".encode())],
                        )
                        sent += 1
                    await consumer.commit({tp: records[-1].offset + 1} if records else {})
    finally:
        await producer.stop()
        await consumer.stop()
    return sent


# --- The command line


def admin_access_from_env() -> KafkaAccess:
    """The admin's access as the environment gives it (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL,
    KAFKA_SASL_MECHANISM, KAFKA_ADMIN_USERNAME, KAFKA_ADMIN_PASSWORD, KAFKA_SSL_CAFILE)."""
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    return KafkaAccess(
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        protocol,
        os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        os.environ.get("KAFKA_ADMIN_USERNAME", ADMIN) if protocol.startswith("SASL") else "",
        os.environ.get("KAFKA_ADMIN_PASSWORD", ""),
        os.environ.get("KAFKA_SSL_CAFILE") or None,
    )


def _admin_access(args: argparse.Namespace) -> KafkaAccess:
    return KafkaAccess(
        args.bootstrap,
        args.security_protocol,
        args.sasl_mechanism,
        os.environ.get("KAFKA_ADMIN_USERNAME", ADMIN) if args.security_protocol.startswith("SASL") else "",
        os.environ.get("KAFKA_ADMIN_PASSWORD", ""),
        os.environ.get("KAFKA_SSL_CAFILE") or None,
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m libs.kafka [topics] --bootstrap kafka:9092`: create every topic of the platform (idempotent).
    `python -m libs.kafka principals --credentials users.json`: create the users it names and every ACL.
    `python -m libs.kafka redrive <topic>.dlq`: send dead letters back to their topic after a fix.

    With SASL, the admin principal's name and password come from KAFKA_ADMIN_USERNAME (default admin) and
    KAFKA_ADMIN_PASSWORD, never from the command line.
    """
    from libs.config import load_city
    from libs.settings import PROJECT_ROOT

    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv[:1] and argv[0] in ("topics", "principals", "redrive") else "topics"
    rest = argv[1:] if argv[:1] == [command] else argv
    parser = argparse.ArgumentParser(prog=f"python -m libs.kafka {command}", description=main.__doc__)
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        help="Kafka bootstrap servers, host:port[,host:port] (default: KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--security-protocol",
        default=os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        choices=["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"],
    )
    parser.add_argument("--sasl-mechanism", default=os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"))
    parser.add_argument("--config-dir", type=Path, default=PROJECT_ROOT / "config")
    if command == "topics":
        parser.add_argument(
            "--partitions", type=int, default=partitions_setting(), help="for new topics (default: KAFKA_PARTITIONS, 4)"
        )
        parser.add_argument("--replication", type=int, default=1)
    elif command == "principals":
        parser.add_argument(
            "--credentials",
            type=Path,
            required=True,
            help="JSON object of user -> password: the services' and departments' (python -m libs.kafka principals "
            "lists the users it expects when one is missing)",
        )
    else:
        parser.add_argument("dlq", help="the dead-letter topic, <topic>.dlq")
    args = parser.parse_args(rest)
    if not args.bootstrap:
        parser.error("--bootstrap (or KAFKA_BOOTSTRAP_SERVERS) is required")
    admin = _admin_access(args)
    codes = [d.code for d in load_city(args.config_dir).departments]
    try:
        if command == "topics":
            topics = all_topics(codes)
            asyncio.run(ensure_topics(admin, topics, args.partitions, args.replication))
            print(f"{len(topics)} topics present")
        elif command == "principals":
            given = json.loads(args.credentials.read_text())
            passwords = {user: given[user] for user in principals(codes) if user in given}
            if missing := [user for user in principals(codes) if user != ADMIN and user not in passwords]:
                raise SystemExit(f"{args.credentials} has no password for: {', '.join(missing)}")
            created = asyncio.run(ensure_principals(admin, passwords, codes))
            print(f"{created} users created; {len(grants(codes))} ACLs present")
        else:
            print(f"{asyncio.run(redrive(admin, args.dlq))} records sent back from {args.dlq}")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    main()
