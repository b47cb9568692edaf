"""A service process's broker: built with its metrics, what it publishes declared for the AsyncAPI document,
and its consumers' lag measured."""

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Gauge

from libs import telemetry
from libs.contract import (
    DEPARTMENT_ACTIONS,
    DEPARTMENT_TOPIC,
    TOPICS,
    department_actions_topic,
    department_topic,
    payload_of,
)
from libs.kafka.access import DURABLE_WRITES, KafkaAccess
from libs.kafka.consuming import measure_consumers
from libs.settings import ServiceSettings


def make_broker(settings: ServiceSettings, registry: CollectorRegistry) -> KafkaBroker:
    """A broker whose publishes wait for every in-sync replica and are idempotent (`DURABLE_WRITES`), with Prometheus
    metrics."""
    access = KafkaAccess.of(settings)
    broker = KafkaBroker(
        access.bootstrap_servers,
        security=access.security(),
        # The topics exist before any service starts (the stack, or `python -m libs.kafka`); no principal of a
        # service may create one, and asking at every subscriber's start only logs a refusal.
        allow_auto_create_topics=False,
        **DURABLE_WRITES,
        client_id=f"appeals-{settings.service_name}",
        middlewares=[
            *telemetry.broker_middlewares(),
            KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name),
        ],
        graceful_timeout=10.0,
        logger=logging.getLogger(f"faststream.{settings.service_name}"),
    )
    measure_consumers(broker, registry)
    return broker


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
    """`appeals_kafka_consumer_lag{group,topic}`: records on the broker this service's groups have not reached yet."""
    return Gauge(
        "appeals_kafka_consumer_lag",
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
    # Only what this process consumes now: a topic a rebalance gave another replica would otherwise keep its last
    # figure here, and the group's lag summed over replicas would count it twice.
    gauge.clear()
    for (group, topic), lag in lags.items():
        gauge.labels(group, topic).set(lag)


async def _reached(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    done = await consumer.committed(tp)
    return int(await consumer.position(tp) if done is None else done)
