"""OpenTelemetry in process (libs/telemetry.py, libs/kafka/spans.py), spans kept by the SDK's in-memory exporter.

An HTTP request's server span takes the caller's trace; an event made in it carries that span's context;
a consumer handles each event in its own span under the event's `traceparent`, and what it emits is that
span's child; sampling travels in the flags; no secret is exported. The same trace across processes and
the real broker is tests/e2e/test_tracing.py.
"""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.util._once import Once

from devstack.apidocs import build_app
from libs import telemetry, tracing
from libs.envelopes import CloudEvent
from libs.events import CompanyFeedback
from libs.http import Tracing
from libs.kafka.publishing import encode, make_event
from services.router import service as router
from tests.unit.test_handlers import ACTION, CODE

SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNSAMPLED = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def _reset_globals() -> None:
    # The SDK lets a process set its provider once; each test here installs its own.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def exported(monkeypatch):
    """The SDK installed for "router" (whatever OTEL_SERVICE_NAME says), every trace sampled; its finished spans."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "someone-else")
    exporter = InMemorySpanExporter()
    _reset_globals()
    assert telemetry.setup("router", exporter=exporter, environ={"OTEL_TRACES_SAMPLER_ARG": "1"})

    def finished() -> list[Any]:
        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        return list(exporter.get_finished_spans())

    yield finished
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    for instrumentor in (PymongoInstrumentor(), HTTPXClientInstrumentor(), AioHttpClientInstrumentor()):
        instrumentor.uninstrument()
    trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    _reset_globals()
    tracing.use_sdk(False)


def test_without_an_endpoint_nothing_is_installed_and_ids_are_minted_as_before():
    assert not telemetry.setup("router", environ={})
    assert not tracing.sdk_in_use()
    assert tracing.for_event(SAMPLED) != SAMPLED and tracing.trace_id(tracing.for_event(SAMPLED)) == SAMPLED[3:35]
    assert tracing.outgoing() == {}
    bound = tracing.current.set(SAMPLED)
    try:
        assert tracing.outgoing() == {"traceparent": SAMPLED}  # web passes the page's trace on by itself
    finally:
        tracing.current.reset(bound)


def test_secrets_and_personal_data_never_reach_an_exported_attribute():
    clean = telemetry._clean
    assert clean("url.query", "token=s3cret&lang=zh") == "token=REDACTED&lang=zh"
    assert (
        clean("url.full", "https://hooks.example/x?access_token=abc&sig=def&page=2")
        == "https://hooks.example/x?access_token=REDACTED&sig=REDACTED&page=2"
    )
    assert clean("http.request.header.x-api-key", "k") == "REDACTED"
    assert clean("messaging.kafka.message.key", b"91440300MA5FXT4K8N") == "[uscc]"
    assert clean("db.statement", "find liwei@example.com") == "find [email]"
    assert clean("note", "call 13800138000") == "call [phone]"
    same = "appeals.submitted.v2 handle"
    assert clean("name", same) is same and clean("messaging.kafka.offset", 7) == 7


def test_an_exception_keeps_its_type_and_a_status_its_kind_when_exported(exported):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("insert") as span:
        span.record_exception(ValueError("contact Li Wei, 13800138000"))
        span.set_status(
            trace.Status(
                trace.StatusCode.ERROR,
                'E11000 duplicate key error collection: intake.appeals dup key: { uscc: "91440300MA5FXT4K8N" }',
            )
        )
    [done] = exported()
    [event] = done.events
    assert dict(event.attributes) == {"exception.type": "ValueError", "exception.escaped": "False"}
    assert done.status.description == "E11000 duplicate key error collection"


def test_the_standard_variables_choose_the_exporter_and_the_sampler():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    assert telemetry.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "http://collector:4318"
    assert telemetry.endpoint({}) is None
    assert isinstance(telemetry._exporter({}), Http)
    assert isinstance(telemetry._exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}), Grpc)
    with pytest.raises(ValueError, match="http/json"):
        telemetry._exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    default = telemetry._sampler({})
    assert isinstance(default, ParentBased) and "0.1" in default.get_description()
    assert "0.5" in telemetry._sampler({"OTEL_TRACES_SAMPLER_ARG": "0.5"}).get_description()
    assert telemetry._sampler({"OTEL_TRACES_SAMPLER": "always_on"}) is None  # the SDK reads it itself
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG"):
        telemetry._sampler({"OTEL_TRACES_SAMPLER_ARG": "most"})


def _app() -> FastAPI:
    app = FastAPI(telemetry=telemetry.TELEMETRY)
    app.add_middleware(Tracing)

    @app.post("/things")
    async def make() -> dict[str, Any]:
        data = CompanyFeedback(appeal_id="01J", resolved=True, satisfaction=5)
        event = make_event("appeals/test", "company.feedback.v1", "01J", data)
        return {"event": event.traceparent, "active": tracing.active()}

    return app


async def _post(app: FastAPI, traceparent: str, query: str = "") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as client:
        return await client.post(f"/things{query}", headers={"traceparent": traceparent})


async def test_a_request_is_a_server_span_in_the_callers_trace_and_its_events_are_that_spans_children(exported):
    response = await _post(_app(), SAMPLED, "?token=s3cret&lang=zh")
    [span] = exported()
    assert span.resource.attributes["service.name"] == "router"
    assert span.kind == trace.SpanKind.SERVER and span.name == "POST /things"
    context = span.get_span_context()
    assert f"{context.trace_id:032x}" == SAMPLED[3:35] and f"{span.parent.span_id:016x}" == SAMPLED[36:52]
    mine = f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    assert response.json() == {"event": mine, "active": mine}
    assert response.headers["traceparent"] == mine
    # A follow link's token never leaves the process.
    assert span.attributes["url.query"] == "token=REDACTED&lang=zh"


async def test_an_unsampled_caller_records_nothing_and_its_events_stay_unsampled(exported):
    response = await _post(_app(), UNSAMPLED)
    assert exported() == []
    event = response.json()["event"]
    assert tracing.trace_id(event) == UNSAMPLED[3:35] and int(event[-2:], 16) & 1 == 0


async def test_each_consumed_event_is_handled_in_a_span_under_its_traceparent(exported, monkeypatch):
    handled: list[tuple[str | None, CloudEvent[Any]]] = []  # what the handler ran in, what it emitted

    async def transition(_db: Any, _broker: Any, appeal_id: str, *_: Any, **__: Any) -> None:
        emitted = make_event("appeals/router", "appeal.accepted.v1", appeal_id, ACTION.data)
        handled.append((tracing.active(), emitted))

    monkeypatch.setattr(router, "transition", transition)
    app = build_app("router")
    runtime = app.state.runtime
    runtime._db = "the database"
    action = ACTION.model_copy(update={"traceparent": SAMPLED})
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish(encode(action), topic="appeals.actions.v1", key=action.subject.encode())
        # A record on a topic keyed by something else than an appeal: its key is no span's attribute.
        await broker.publish(encode(CODE), topic="company.messages.v1", key=b"13800138000")

    spans = exported()
    [handle] = [s for s in spans if s.name == "appeals.actions.v1 handle"]
    assert handle.kind == trace.SpanKind.CONSUMER
    assert f"{handle.context.trace_id:032x}" == SAMPLED[3:35] and f"{handle.parent.span_id:016x}" == SAMPLED[36:52]
    assert handle.attributes["appeals.appeal_id"] == ACTION.subject
    assert handle.attributes["messaging.consumer.group.name"] == "router.action"
    [(active, emitted)] = handled
    own = f"00-{handle.context.trace_id:032x}-{handle.context.span_id:016x}-01"
    assert active == own and emitted.traceparent == own
    # FastStream's middleware records the read too, in the same trace.
    assert any(s.name == "appeals.actions.v1 process" for s in spans)
    for span in spans:
        for value in (span.attributes or {}).values():
            assert "13800138000" not in str(value) and "042917" not in str(value), span.name
