"""What every service exports for operators: names, OpenMetrics on request, exemplars with trace ids, and the
consumers' handler duration, exceptions and dead letters, measured in `guarded` on FastStream's in-memory broker."""

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from pymongo.errors import AutoReconnect

from devstack.apidocs import build_app
from devstack.stack import ALL_SERVICES
from libs import tracing
from libs.contract import APPEALS_COMPANY
from libs.kafka.broker import consumer_lag_gauge, record_consumer_lag
from libs.kafka.consuming import ConsumerMetrics
from libs.kafka.publishing import encode
from libs.settings import PROJECT_ROOT
from services.router import service as router
from tests.unit.test_handlers import INFO

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# The metrics the project defines and DOMAIN.md does not list as business metrics: all under `appeals_`.
OWN_METRICS = {
    "appeals_kafka_consumer_lag",
    "appeals_consumer_dead_letters",
    "appeals_handler_duration_seconds",
    "appeals_handler_exceptions",
    "appeals_mongodb_commands",
    "appeals_mongodb_documents_written",
    "appeals_mongodb_command_duration_seconds",
    "appeals_outbox_oldest_seconds",
    "appeals_shed",
}


async def scrape(app: Any, accept: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        # Any instrumented route does; the API document needs no database.
        await client.get("/openapi.json" if app.openapi_url else "/", headers={"traceparent": TRACEPARENT})
        return await client.get("/metrics", headers={"accept": accept} if accept else {})


@pytest.mark.parametrize("service", [name for name, _ in ALL_SERVICES])
async def test_metrics_are_openmetrics_when_asked_with_the_request_trace_on_the_latency(service):
    app = build_app(service)
    plain = await scrape(app)
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# {" not in plain.text, "the plain text format carries no exemplar"

    openmetrics = await scrape(app, OPENMETRICS)
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in text_string_to_metric_families(openmetrics.text)}  # a strict parser
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "http_requests"} <= families.keys()
    exemplars = [s.exemplar for s in families["http_request_duration_seconds"].samples if s.exemplar]
    assert exemplars and all(e.labels == {"trace_id": TRACE_ID} for e in exemplars), exemplars


def test_every_metric_the_project_defines_outside_the_business_list_is_prefixed():
    """Names given to prometheus_client in libs/ and services/ are business metrics (DOMAIN.md, docs/domain.md)
    or start with `appeals_`; dashboards, alerts and docs name the prefixed ones."""
    business = {
        "appeals_submitted",
        "appeals_routed",
        "appeals_declined",
        "appeals_resolved",
        "appeals_open",
        "sla_warnings",
        "sla_breaches",
        "sla_clocks_running",
        "sla_fire_lag_seconds",
        "appeal_resolution_seconds",
        "notifications",
    }
    kinds = r"(?:Counter|Gauge|Histogram|Summary|CounterMetricFamily|GaugeMetricFamily|HistogramMetricFamily)"
    named: set[str] = set()
    for path in [*PROJECT_ROOT.joinpath("libs").rglob("*.py"), *PROJECT_ROOT.joinpath("services").rglob("*.py")]:
        named |= set(re.findall(kinds + r'\(\s*"([a-z_:]+)"', path.read_text()))
    assert named >= OWN_METRICS
    library = {"http_request_duration_seconds"}  # the instrumentator's name, kept for its exemplars (libs/http.py)
    loose = {n for n in named if not n.startswith("appeals_") and n.removesuffix("_total") not in business | library}
    assert not loose, f"metrics outside the business list without the appeals_ prefix: {loose}"
    retired = ("kafka_consumer_lag", "mongodb_commands", "mongodb_documents_written", "consumer_dead_letters")
    for path in [*Path(PROJECT_ROOT / "deploy").rglob("*.y*ml"), *Path(PROJECT_ROOT / "deploy").rglob("*.json")]:
        text = path.read_text()
        for name in retired:
            assert not re.search(rf"(?<![a-z_]){name}", text), f"{path.name} still names {name}"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [(ValueError("bad"), "failing"), (AutoReconnect("gone"), "outage"), (TimeoutError(), "outage")],
)
def test_handler_exceptions_are_counted_by_group_type_and_kind(exc, kind):
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    bound = tracing.current.set(TRACEPARENT)
    try:
        metrics.observe("router.company", 0.02, exc)
    finally:
        tracing.current.reset(bound)
    labels = {"group": "router.company", "exception_type": type(exc).__name__, "kind": kind}
    assert registry.get_sample_value("appeals_handler_exceptions_total", labels) == 1
    assert registry.get_sample_value("appeals_handler_duration_seconds_count", {"group": "router.company"}) == 1


async def test_a_failing_handler_is_timed_counted_and_dead_lettered_with_its_event_trace(monkeypatch):
    async def failing(*_: Any, **__: Any) -> None:
        raise ValueError("the record's own fault")

    app = build_app("router")
    runtime = app.state.runtime
    runtime._db = "the database"
    runtime.settings.handler_attempts = 1  # dead-lettered at the first failure, no retry pause
    event = INFO.model_copy(update={"traceparent": TRACEPARENT})
    monkeypatch.setattr(router, "transition", failing)
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish(encode(event), topic=APPEALS_COMPANY, key=event.subject.encode())

    registry = runtime.registry
    group = {"group": "router.company"}
    assert registry.get_sample_value("appeals_handler_duration_seconds_count", group) == 1
    failed = {**group, "exception_type": "ValueError", "kind": "failing"}
    assert registry.get_sample_value("appeals_handler_exceptions_total", failed) == 1
    dead = {**group, "topic": APPEALS_COMPANY, "kind": "failing"}
    assert registry.get_sample_value("appeals_consumer_dead_letters_total", dead) == 1
    buckets = [
        s
        for family in registry.collect()
        if family.name == "appeals_handler_duration_seconds"
        for s in family.samples
        if s.name.endswith("_bucket") and s.exemplar
    ]
    assert [s.exemplar.labels for s in buckets] == [{"trace_id": TRACE_ID}], "the event's trace is the exemplar"


async def test_the_lag_gauge_keeps_only_what_the_process_consumes_now():
    """After a rebalance took a topic to another replica, this one stops reporting its last figure for it."""
    registry = CollectorRegistry()
    gauge = consumer_lag_gauge(registry)
    gauge.labels("router.submitted", "appeals.submitted.v2").set(120)

    class Unassigned:
        consumer = None

    class Broker:
        subscribers = [Unassigned()]

    await record_consumer_lag(Broker(), gauge)  # type: ignore[arg-type]
    labels = {"group": "router.submitted", "topic": "appeals.submitted.v2"}
    assert registry.get_sample_value("appeals_kafka_consumer_lag", labels) is None
