"""Kafka wiring: broker factory, CloudEvent publishing, consumers that dead-letter bad input."""

import asyncio
import functools
import inspect
import itertools
import logging
import traceback
import types
import typing
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.errors import IllegalStateError, KafkaError, MessageSizeTooLargeError, ProducerClosed
from aiokafka.helpers import create_ssl_context
from faststream import AckPolicy
from faststream.exceptions import AckMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ValidationError
from pymongo.errors import ConnectionFailure, PyMongoError

from libs import tracing
from libs.contract import (
    BY_APPEAL,
    DEPARTMENT_ACTIONS,
    DEPARTMENT_TOPIC,
    TOPICS,
    Consumer,
    Topic,
    dead_letter_topic,
    department_actions_topic,
    department_topic,
    parse_event,
    payload_of,
    topics_of,
)
from libs.contract import topic as contract_topic
from libs.events import CloudEvent
from libs.settings import ServiceSettings

log = logging.getLogger(__name__)

# After a failed effect (database down, broker hiccup) the message is rewound and
# retried; this pause keeps a dead dependency from turning into a busy loop.
RETRY_PAUSE_SECONDS = 1.0
# A gathering consumer's reads wait at the broker until this much is there (about 64 records), or this long
# (Kafka's default wait). Every batch costs statements, requests and a commit: at 20 appeals/s gathering cut
# the CPU of an appeal from 89 to 69 ms (docs/benchmarks.md).
GATHER_BYTES = 65_536
GATHER_WAIT_MS = 500
# aiokafka asks for a partition's next records only once the handler has taken those it holds, but after this
# long (its default: 0.1 s) it asks for the consumer's other partitions alone. That request waits at the broker
# up to fetch_max_wait_ms (0.5 s) while they are quiet, and the busy partition's next records wait behind it:
# with two processes of every service at 10 appeals/s, 1 % of appeals were routed half a second late (p99
# 511 ms; 149 ms with this, docs/benchmarks.md). A consumer handles one batch at a time, so reading ahead of it
# gains nothing.
# AIOKafkaConsumer does not pass the option on to its fetcher, hence its default here.
PREFETCH_BACKOFF_SECONDS = 30.0
aiokafka_fetcher.Fetcher.__init__.__kwdefaults__["prefetch_backoff"] = PREFETCH_BACKOFF_SECONDS


@dataclass(frozen=True)
class KafkaAccess:
    """Where Kafka is and who a client is there: the bootstrap servers, the security protocol and, with SASL, the
    principal's mechanism and credentials. Every client of the platform connects through one."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def of(cls, settings: ServiceSettings) -> "KafkaAccess":
        """The service's own access, from its settings."""
        return cls(
            settings.kafka_bootstrap_servers,
            settings.kafka_security_protocol,
            settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username,
            settings.kafka_sasl_password.get_secret_value(),
            str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        )

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def ssl(self) -> bool:
        return self.security_protocol in ("SASL_SSL", "SSL")

    def as_principal(self, username: str, password: str) -> "KafkaAccess":
        """The same cluster, as another principal."""
        return replace(self, username=username, password=password)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's clients (consumer, producer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username, sasl_plain_password=self.password
            )
        if self.ssl:
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return options

    def security(self) -> BaseSecurity | None:
        """FastStream's form of the same."""
        ssl = create_ssl_context(cafile=self.ssl_cafile) if self.ssl else None
        if not self.sasl:
            return BaseSecurity(ssl_context=ssl) if ssl else None
        kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}
        return kind[self.sasl_mechanism](username=self.username, password=self.password, ssl_context=ssl)

    def librdkafka(self) -> dict[str, str]:
        """The same for librdkafka (confluent-kafka's admin client, kcat's -X options)."""
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol.lower()}
        if self.sasl:
            config.update(
                {"sasl.mechanisms": self.sasl_mechanism, "sasl.username": self.username, "sasl.password": self.password}
            )
        if self.ssl and self.ssl_cafile:
            config["ssl.ca.location"] = self.ssl_cafile
        return config


def access_of(target: "KafkaAccess | str") -> KafkaAccess:
    """`target` as an access: a bare bootstrap address is a PLAINTEXT broker (the integration tests')."""
    return target if isinstance(target, KafkaAccess) else KafkaAccess(target)


def make_broker(settings: ServiceSettings, registry: CollectorRegistry) -> KafkaBroker:
    """A broker whose publishes wait for every in-sync replica (acks=all), with Prometheus metrics."""
    access = KafkaAccess.of(settings)
    broker = KafkaBroker(
        access.bootstrap_servers,
        security=access.security(),
        # The topics exist before any service starts (the stack, or `python -m libs.kafka`); no principal of a
        # service may create one, and asking at every subscriber's start only logs a refusal.
        allow_auto_create_topics=False,
        acks="all",
        client_id=f"appeals-{settings.service_name}",
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name)],
        graceful_timeout=10.0,
        logger=logging.getLogger(f"faststream.{settings.service_name}"),
    )
    count_dead_letters(broker, registry)
    return broker


def encode(event: CloudEvent[Any]) -> bytes:
    """The structured-mode JSON bytes of an event."""
    return event.model_dump_json(exclude_none=True).encode()


async def publish(broker: KafkaBroker, topic: str, event: CloudEvent[Any]) -> None:
    """Publish an event keyed by its subject (the appeal id), so one appeal's events stay in order."""
    await broker.publish(
        encode(event),
        topic=topic,
        key=event.subject.encode(),
        headers={"content-type": "application/cloudevents+json", "ce_type": event.type},
    )


@functools.cache
def envelope_of(model: type[BaseModel]) -> Any:
    """`CloudEvent[model]`, held for good.

    Pydantic keeps a parametrized class only weakly: once the last event of a kind was
    collected, the next one built the class again, about a millisecond (4 % of router's CPU).
    """
    return CloudEvent[model]  # type: ignore[valid-type]


def make_event(
    source: str, type_: str, subject: str, data: BaseModel, traceparent: str | None = None, **kwargs: Any
) -> CloudEvent[Any]:
    """Wrap `data` in a CloudEvent from `source` (e.g. "appeals/router"), in the given or the bound trace."""
    parent = traceparent or tracing.current.get()
    event: CloudEvent[Any] = envelope_of(type(data))(
        source=source,
        type=type_,
        subject=subject,
        data=data,
        traceparent=tracing.child_of(parent) if parent else None,
        **kwargs,
    )
    return event


class Contention(RuntimeError):
    """Another writer changed the same state first (a replica, the scheduler): the records are read again, and this
    never counts towards dead-lettering them."""


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says a dependency is away (MongoDB or Kafka unreachable or slow, a handler timeout) or another
    writer was first, rather than that the record cannot be handled: such records wait, however long it takes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError | ConnectionFailure | Contention | ProducerClosed):
            return True
        if isinstance(seen, PyMongoError) and seen.timeout:
            return True
        if isinstance(seen, KafkaError) and not isinstance(seen, MessageSizeTooLargeError):
            return True  # the broker's trouble (unreachable, no leader, no authorization), never the record's
        seen = seen.__cause__
    return False


def failure_reason(exc: BaseException) -> str:
    """What failed, for a .dlq header and the logs: the error's kind and code and where it was raised, never its
    message (which may quote the record's values: a contact, a code)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(_SOURCE_ROOTS)] or frames
    where = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name}" if ours else ""
    code = getattr(exc, "code", None)
    fields = ""
    if isinstance(exc, ValidationError):
        fields = " on " + ", ".join(".".join(map(str, error["loc"])) or "(root)" for error in exc.errors()[:5])
    return f"{type(exc).__name__}{f' {code}' if isinstance(code, int) else ''}{fields}{where}"


_SOURCE_ROOTS = tuple(str(Path(__file__).resolve().parent.parent / part) for part in ("libs", "services"))


async def dead_letter(broker: KafkaBroker, record: Any, reason: str, group: str = "") -> None:
    """Copy one consumer record to its topic's `.dlq`, with the reason in headers, and count it."""
    log.warning(
        "dead-lettered a message",
        extra={"topic": record.topic, "offset": record.offset, "reason": reason[:500], "group": group},
    )
    await broker.publish(
        record.value,
        topic=dead_letter_topic(record.topic),
        key=record.key,
        headers={
            "dlq-reason": reason[:2000],
            "dlq-topic": record.topic,
            "dlq-partition": str(record.partition),
            "dlq-offset": str(record.offset),
            "dlq-group": group,
        },
    )
    counter = _DEAD_LETTERS.get(broker)
    if counter is not None:
        counter.labels(group or "-", record.topic, "unreadable" if reason.startswith(UNREADABLE) else "failing").inc()


UNREADABLE = "unreadable: "
# Per broker (one per service process): `consumer_dead_letters_total` on the service's registry.
_DEAD_LETTERS: "weakref.WeakKeyDictionary[KafkaBroker, Counter]" = weakref.WeakKeyDictionary()


def count_dead_letters(broker: KafkaBroker, registry: CollectorRegistry) -> None:
    """Count what `broker`'s consumers dead-letter in `consumer_dead_letters_total{group,topic,kind}`."""
    _DEAD_LETTERS[broker] = Counter(
        "consumer_dead_letters",
        "Records a consumer put on its topic's .dlq: unreadable, or failing its handler every attempt",
        ["group", "topic", "kind"],
        registry=registry,
    )


def group_of(settings: ServiceSettings, consumer: Consumer) -> str:
    """The consumer's group: the contract's name behind the service's group prefix (`router.submitted`)."""
    return f"{settings.consumer_group}.{consumer.name}"


# At most this long between two attempts at a failing record.
MAX_RETRY_PAUSE_SECONDS = 30.0
# Records of one consumer remembered as failing or as dead-lettered; beyond this the oldest are forgotten.
REMEMBERED = 10_000


def subscribe(
    broker: KafkaBroker,
    settings: ServiceSettings,
    consumer: Consumer,
    handler: Callable[..., Awaitable[None]],
    max_records: int = 100,
    department_codes: Iterable[str] = (),
) -> None:
    """Feed `consumer`'s topics to `handler`, typed: an envelope, or a list of them for a batch consumer.

    A per-department topic of the contract (`dept.<code>.actions.v1`) stands for one topic for each
    of `department_codes`.

    Records are read into the envelopes the contract puts on their topic, each with
    its `position`. One that cannot be read or validated goes to `<topic>.dlq` with the
    reason and is committed; the others of its batch go on. Offsets are committed
    only after the handler returns: handlers must be idempotent.

    A failing handler rewinds the partitions so the records are delivered again. When
    a dependency is away (`is_outage`: MongoDB or Kafka unreachable, a handler still
    waiting after `handler_timeout_seconds`, another writer first) they wait for it,
    however long. Any other failure is a record's: a failing batch is tried again one
    record at a time to find which, and a record that fails `handler_attempts` times
    (pausing `handler_retry_seconds`, doubled each time) goes to its `.dlq` with the
    reason, and its partition moves on. Each consumer has its own group, so a slow one
    never stalls another's rebalance.
    """
    group = group_of(settings, consumer)
    _check_handler(consumer, handler)
    failures: dict[tuple[str, int, int], int] = {}
    dead: dict[tuple[str, int, int], None] = {}

    async def decode(message: KafkaMessage, _default: Any = None) -> Any:
        raw = message.raw_message
        records = list(raw) if isinstance(raw, tuple | list) else [raw]
        events = []
        for record in records:
            if record.value is None:
                continue  # a tombstone: on a compacted topic, what was erased; nothing to handle
            try:
                event = parse_event(record.value, record.topic)
            except ValueError as exc:
                await dead_letter(broker, record, UNREADABLE + str(exc), group)
                continue
            event._position = (record.topic, record.partition, record.offset)
            event._record = record
            events.append(event)
        if consumer.batch:
            return events
        if not events:
            raise AckMessage()  # it went to the .dlq: commit it and read on
        return events[0]

    async def call(events: list[CloudEvent[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The handler on `events` (a batch consumer's list, or the one event), within the handler timeout."""
        received: Any = events if consumer.batch else events[0]
        if args:
            args = (received, *args[1:])
        else:
            kwargs = {**kwargs, next(iter(kwargs)): received}
        async with asyncio.timeout(settings.handler_timeout_seconds):
            await handler(*args, **kwargs)

    async def settle(failing: list[tuple[CloudEvent[Any], BaseException]]) -> None:
        """Count one more failure of each record; dead-letter those out of attempts, rewind for the others."""
        pause = 0.0
        for event, exc in failing:
            position = event.position or ("", 0, 0)
            tries = failures.pop(position, 0) + 1
            if tries < settings.handler_attempts:
                failures[position] = tries
                pause = max(pause, settings.handler_retry_seconds * 2 ** (tries - 1))
                continue
            await dead_letter(broker, event._record, f"{failure_reason(exc)} (after {tries} attempts)", group)
            dead[position] = None
        _forget_oldest(failures)
        _forget_oldest(dead)
        if pause:
            await asyncio.sleep(min(pause, MAX_RETRY_PAUSE_SECONDS))
            raise failing[0][1]

    @functools.wraps(handler)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        received = args[0] if args else next(iter(kwargs.values()))
        events = [e for e in (received if isinstance(received, list) else [received]) if e.position not in dead]
        if not events:
            return
        # A lone event's handler runs in its trace; a batch's events keep theirs in what they publish.
        bound = tracing.current.set(
            events[0].traceparent if len(events) == 1 and tracing.valid(events[0].traceparent) else None
        )
        try:
            try:
                await call(events, args, kwargs)
            except Exception as exc:
                if is_outage(exc):
                    # A timeout's traceback says where the handler waited; an outage's says nothing new each time.
                    log.warning(
                        "handler waits for a dependency; its records will be retried",
                        extra={"group": group, "events": len(events), "reason": failure_reason(exc)},
                        exc_info=isinstance(exc, TimeoutError),
                    )
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    raise
                log.exception("handler failed; its records will be retried", extra={"group": group})
                failing: list[tuple[CloudEvent[Any], BaseException]] = [(events[0], exc)]
                if len(events) > 1:
                    failing = []
                    for event in events:  # which record fails? each alone; those that pass are handled (idempotent)
                        try:
                            await call([event], args, kwargs)
                        except Exception as alone:
                            if is_outage(alone):
                                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                                raise
                            failing.append((event, alone))
                await settle(failing)
                events = [e for e in events if e.position not in dead]
        finally:
            tracing.current.reset(bound)
        for event in events:
            failures.pop(event.position or ("", 0, 0), None)
        if log.isEnabledFor(logging.INFO):
            for event in events:
                _log_handled(event, group)

    options: dict[str, Any] = (
        {"batch": True, "max_records": max_records, "batch_timeout_ms": 200} if consumer.batch else {}
    )
    if consumer.gathers:
        options.update(fetch_min_bytes=GATHER_BYTES, fetch_max_wait_ms=GATHER_WAIT_MS)
    subscriber = broker.subscriber(
        *topics_of(consumer, department_codes),
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=decode,
        title=f"{group}:{handler.__name__}",
        description=handler.__doc__,
        **options,
    )
    subscriber(guarded)
    if consumer.batch:
        read_without_pause(subscriber)


def _forget_oldest(remembered: dict[Any, Any]) -> None:
    while len(remembered) > REMEMBERED:
        del remembered[next(iter(remembered))]


def read_without_pause(subscriber: Any) -> None:
    """Have a FastStream batch subscriber read again at once after a read that found nothing.

    FastStream pauses for `batch_timeout_ms` after an empty read, which had itself waited that long for
    records. One arriving during the pause waited for its end: up to 0.2 s at every batch consumer on an
    appeal's way, for about half of the records while traffic is light. During a read it comes at once.
    """

    async def next_batch(consumer: AIOKafkaConsumer) -> tuple[Any, ...]:
        batches = await consumer.getmany(timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records)
        return tuple(itertools.chain.from_iterable(batches.values()))

    subscriber.get_msg = next_batch


def _check_handler(consumer: Consumer, handler: Callable[..., Any]) -> None:
    """Refuse a handler whose argument is not what the consumer's topics carry (the contract's envelopes)."""
    hints = typing.get_type_hints(handler)
    first = next(name for name in inspect.signature(handler).parameters)
    annotation = hints.get(first)
    if consumer.batch:
        if typing.get_origin(annotation) is not list:
            raise TypeError(f"{consumer.group}: {handler.__name__} takes a batch: annotate it list[...]")
        annotation = typing.get_args(annotation)[0]
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    accepted = set(typing.get_args(annotation)) if is_union else {annotation}
    carried = {envelope for name in consumer.topics for envelope in _entry(name).envelopes}
    if accepted != carried:
        raise TypeError(
            f"{consumer.group}: {handler.__name__} takes {sorted(str(a) for a in accepted)}, "
            f"its topics carry {sorted(c.__name__ for c in carried)}"
        )


def _entry(name: str) -> Topic:
    entry = contract_topic(name)
    if entry is None:
        raise KeyError(f"topic {name} is not in the contract")
    return entry


def _log_handled(event: CloudEvent[Any], group: str) -> None:
    """One JSON line per handled event, in the event's trace; a company's credit code is never logged."""
    bound = tracing.current.set(event.traceparent if tracing.valid(event.traceparent) else None)
    entry = contract_topic(event.position[0]) if event.position else None
    about = {"appeal_id": event.subject} if entry is None or entry.key == BY_APPEAL else {}
    try:
        log.info("event handled", extra={"event_type": event.type, "event_id": event.id, "group": group, **about})
    finally:
        tracing.current.reset(bound)


def declare_publishers(broker: KafkaBroker, service: str, departments: Iterable[tuple[str, str]]) -> None:
    """Declare on `broker` what `service` publishes (from the contract), so that its AsyncAPI document says so.

    `departments` are (code, name) pairs, one `dept.<code>.v1` and one `dept.<code>.actions.v1` each.
    """
    for entry in TOPICS:
        if service in entry.producers:
            types = ", ".join(t for e in entry.producers[service] for t in e.TYPES)
            broker.publisher(
                entry.name,
                title=f"{entry.name}:{service}",
                description=f"{service} publishes {types}.",
                schema=payload_of(entry.producers[service], entry.name),
                include_in_schema=True,
            )
    per_department = (
        (DEPARTMENT_TOPIC, department_topic, "DepartmentTopic", "For {department} ({code})'s own systems"),
        (DEPARTMENT_ACTIONS, department_actions_topic, "DepartmentActions", "{department} ({code})'s actions"),
    )
    for entry, named, label, about in per_department:
        if service not in entry.producers:
            continue
        envelopes = entry.producers[service]
        types = ", ".join(t for e in envelopes for t in e.TYPES)
        for code, department in departments:
            name = named(code)
            broker.publisher(
                name,
                title=f"{name}:{service}",
                schema=payload_of(envelopes, label),
                description=f"{about.format(department=department, code=code)}: {service} publishes {types}.",
            )


def consumer_lag_gauge(registry: CollectorRegistry) -> Gauge:
    """`kafka_consumer_lag{group,topic}`: records on the broker this service's groups have not reached yet."""
    return Gauge(
        "kafka_consumer_lag",
        "Records not yet consumed, per consumer group and topic",
        ["group", "topic"],
        registry=registry,
    )


async def record_consumer_lag(broker: KafkaBroker, gauge: Gauge) -> None:
    """Set the lag gauge: for each subscriber's partitions, the broker's end offset minus what it committed."""
    lags: dict[tuple[str, str], int] = {}
    for subscriber in broker.subscribers:
        consumer: Any = getattr(subscriber, "consumer", None)
        assigned = consumer.assignment() if consumer is not None else set()
        if not assigned:
            continue
        group = getattr(subscriber, "group_id", None) or ""
        # Asked of the broker each time: the fetcher's highwater stops moving while a handler is stuck,
        # which is exactly when lag matters.
        try:
            ends = await consumer.end_offsets(list(assigned))
            behind = {tp: ends[tp] - await _reached(consumer, tp) for tp in assigned}
        except IllegalStateError:
            continue  # a rebalance took a partition away meanwhile: the next round measures the new assignment
        for tp, lag in behind.items():
            key = (group, tp.topic)
            lags[key] = lags.get(key, 0) + max(0, lag)
    for (group, topic), lag in lags.items():
        gauge.labels(group, topic).set(lag)


async def _reached(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    done = await consumer.committed(tp)
    return int(await consumer.position(tp) if done is None else done)


if __name__ == "__main__":
    # The command line lives with the cluster's administration; `python -m libs.kafka` is its documented name.
    from libs.kafka_admin import main

    main()
