"""OpenTelemetry traces, exported by OTLP when an endpoint is configured, and nothing at all when not.

`setup(service)` reads the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`)
turns tracing on; `OTEL_EXPORTER_OTLP_PROTOCOL` is `http/protobuf` (the default) or `grpc`;
`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` choose the sampler, parent-based on a ratio of
new traces by default (DEFAULT_RATIO). The service name is the service's own, whatever
`OTEL_SERVICE_NAME` says: one process is one service in a trace view.

The libraries record the spans: FastAPI its server spans (built in, TELEMETRY), FastStream's middleware
the publishes and consumes, pymongo, httpx and aiohttp their calls; `libs.kafka.consuming` one span per
consumed event. Without an endpoint no provider is installed, the libraries find none and record
nothing, and `libs.tracing` carries W3C ids through events and logs by itself.
"""

import os
import re
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status

from libs import tracing
from libs.logging import redact

# One new trace in ten when the sampler is not chosen: enough to follow slow appeals, a tenth of the cost.
DEFAULT_RATIO = 0.1


# FastAPI's own spans, without what duplicates the service's metrics (`metrics`) or adds a span per
# dependency (`operation_spans`); its log records are off, as they would carry exception messages.
# Probes and scrapes make no spans.
def _probe(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in ("/metrics", "/healthz", "/readyz")


TELEMETRY: TelemetryConfig = {"metrics": False, "operation_spans": False, "logs": False, "exclude": _probe}

# Values never exported: a query parameter whose name says it holds a secret or a contact (`token`,
# `access_token`, `sig`, `phone`, ...), secret headers, and e-mail addresses anywhere.
_SECRET_PARAMETER = re.compile(r"token|key|secret|sig|code|pass|phone|mobile|mail|uscc", re.IGNORECASE)
_SECRET_HEADERS = re.compile(r"x-api-key|x-status-token|authorization|cookie", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@/?&=:]+@[^\s@/?&=:]+\.[A-Za-z]{2,}")
# An exception event keeps its type: its message and traceback may quote a record's values (a contact, a code).
_EXCEPTION_KEPT = ("exception.type", "exception.escaped")


class Redacting(SpanExporter):
    """Hands `exporter` each span with secrets and personal data taken out, whichever library recorded it.

    A query's `token` and the like become REDACTED; a phone number, credit code or e-mail address in
    any string attribute is masked as the logs mask it; an exception event keeps its type alone, and a
    status its description up to the first colon (a database's error message quotes the duplicate key).
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def scrubbed(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` fit to leave the process."""
    events = [
        Event(
            event.name,
            {k: v for k, v in (event.attributes or {}).items() if k in _EXCEPTION_KEPT}
            if event.name == "exception"
            else _cleaned(event.attributes),
            event.timestamp,
        )
        for event in span.events
    ]
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description.split(":")[0])[:120])
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_cleaned(span.attributes),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _cleaned(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: _clean(name, value) for name, value in (attributes or {}).items()}


def _clean(name: str, value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return value
    if name in ("url.query", "url.full", "http.url", "http.target") and "=" in value:
        value = _without_secret_parameters(value)
    if _SECRET_HEADERS.search(name):
        return "REDACTED"
    masked = _EMAIL.sub("[email]", redact(value))
    return masked if masked != value else value


def _without_secret_parameters(text: str) -> str:
    base, mark, query = text.rpartition("?") if "?" in text else ("", "", text)
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_PARAMETER.search(key) for key, _ in pairs):
        return text
    cleaned = urlencode([(k, "REDACTED" if _SECRET_PARAMETER.search(k) else v) for k, v in pairs])
    return f"{base}{mark}{cleaned}"


def endpoint(environ: Mapping[str, str] = os.environ) -> str | None:
    """Where spans go, or None: tracing is off."""
    return environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this platform exports http/protobuf or grpc")


def _sampler(environ: Mapping[str, str]) -> Any:
    if environ.get("OTEL_TRACES_SAMPLER"):
        return None  # the SDK reads the variable and its argument itself
    ratio = environ.get("OTEL_TRACES_SAMPLER_ARG")
    try:
        return ParentBased(TraceIdRatioBased(float(ratio) if ratio else DEFAULT_RATIO))
    except ValueError:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={ratio!r}: a ratio between 0 and 1") from None


def setup(service: str, exporter: SpanExporter | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK for `service` when an endpoint (or, in tests, an `exporter`) is given; True if it did.

    Called once per process, before the app and its clients are built (pymongo's instrumentation
    must see the client created).
    """
    if exporter is None and endpoint(environ) is None:
        return False
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}), sampler=_sampler(environ))
    provider.add_span_processor(BatchSpanProcessor(Redacting(exporter or _exporter(environ))))
    trace.set_tracer_provider(provider)
    _instrument_clients()
    tracing.use_sdk(True)
    return True


def _instrument_clients() -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument()  # statements are not captured (its default)
    HTTPXClientInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream's tracing middleware when the SDK is installed; none otherwise (it would cost for nothing)."""
    if not tracing.sdk_in_use():
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return (KafkaTelemetryMiddleware(include_messages_counters=False),)
