"""Consumers: a contract consumer's subscription, its records typed and dead-lettered when unreadable, a failing
handler retried (without end while a dependency is away, `handler_attempts` times for a record's own fault) and
its record then dead-lettered."""

import asyncio
import functools
import inspect
import itertools
import logging
import time
import traceback
import types
import typing
import weakref
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, ProducerClosed
from faststream import AckPolicy
from faststream.exceptions import AckMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, PyMongoError

from libs import tracing
from libs.contract import BY_APPEAL, Consumer, Topic, dead_letter_topic, parse_event, topics_of
from libs.contract import topic as contract_topic
from libs.envelopes import CloudEvent
from libs.kafka import spans
from libs.settings import ServiceSettings

# The name from before the split into modules: the services' JSON log lines and the tests' caplog name it.
log = logging.getLogger("libs.kafka")

# After a failed effect (database down, broker hiccup) the message is rewound and
# retried; this pause keeps a dead dependency from turning into a busy loop.
RETRY_PAUSE_SECONDS = 1.0
# A gathering consumer's reads wait at the broker until this much is there (about 64 records), or this long
# (Kafka's default wait). Every batch costs statements, requests and a commit: at 20 appeals/s gathering cut
# the CPU of an appeal from 89 to 69 ms (docs/benchmarks.md).
GATHER_BYTES = 65_536
GATHER_WAIT_MS = 500


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


# The repository's own code, whose frames a failure reason names first (this file is libs/kafka/consuming.py).
_SOURCE_ROOTS = tuple(str(Path(__file__).resolve().parents[2] / part) for part in ("libs", "services"))


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
    metrics = _METRICS.get(broker)
    if metrics is not None:
        kind = "unreadable" if reason.startswith(UNREADABLE) else "failing"
        metrics.dead_letters.labels(group or "-", record.topic, kind).inc()


UNREADABLE = "unreadable: "
# Seconds a handler call took, from a few milliseconds to the handler timeout (60 s by default).
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ConsumerMetrics:
    """What a service process's consumers do, by consumer group, on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_letters = Counter(
            "appeals_consumer_dead_letters",
            "Records a consumer put on its topic's .dlq: unreadable, or failing its handler every attempt",
            ["group", "topic", "kind"],
            registry=registry,
        )
        self.duration = Histogram(
            "appeals_handler_duration_seconds",
            "Time a consumer's handler took on a record or a batch, failed calls included",
            ["group"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.exceptions = Counter(
            "appeals_handler_exceptions",
            "Exceptions a consumer's handler raised: `outage` when a dependency was away (waited for), `failing`"
            " when the record's own handling failed (retried, then dead-lettered)",
            ["group", "exception_type", "kind"],
            registry=registry,
        )

    def observe(self, group: str, seconds: float, exc: BaseException | None) -> None:
        """One handler call of `group`, with the trace id of the event it ran in as the exemplar."""
        trace = tracing.trace_id(tracing.current.get())
        self.duration.labels(group).observe(seconds, {"trace_id": trace} if trace else None)
        if exc is not None:
            self.exceptions.labels(group, type(exc).__name__, "outage" if is_outage(exc) else "failing").inc()


# Per broker (one per service process).
_METRICS: "weakref.WeakKeyDictionary[KafkaBroker, ConsumerMetrics]" = weakref.WeakKeyDictionary()


def measure_consumers(broker: KafkaBroker, registry: CollectorRegistry) -> None:
    """Count what `broker`'s consumers handle, raise and dead-letter on `registry` (`appeals_handler_*`,
    `appeals_consumer_dead_letters_total{group,topic,kind}`)."""
    _METRICS[broker] = ConsumerMetrics(registry)


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
        started, failed = time.perf_counter(), None
        try:
            async with asyncio.timeout(settings.handler_timeout_seconds):
                with spans.handling(events, group):
                    await handler(*args, **kwargs)
        except Exception as exc:
            failed = exc
            raise
        finally:
            if (metrics := _METRICS.get(broker)) is not None:
                metrics.observe(group, time.perf_counter() - started, failed)

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
