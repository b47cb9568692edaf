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
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

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

# Values never exported: a follow link's token, codes, contacts and keys, wherever they appear in a query.
# A query parameter whose name says it holds one (`token`, `access_token`, `sig`, `phone`, ...), and e-mail addresses.
_SECRET_PARAMETER = re.compile(r"token|key|secret|sig|code|pass|phone|mobile|mail|uscc", re.IGNORECASE)
_SECRET_HEADERS = re.compile(r"x-api-key|x-status-token|authorization|cookie", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@/?&=:]+@[^\s@/?&=:]+\.[A-Za-z]{2,}")


class Redacting(SpanProcessor):
    """Takes secrets and personal data out of a span's attributes as it starts, before any exporter sees it.

    The libraries set what they know (a URL's query, a Kafka key) when they start a span: a query's
    `token` and the like become REDACTED, and a phone number or credit code in any string attribute
    is masked as the logs mask it.
    """

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        for name, value in list((span.attributes or {}).items()):
            clean = _clean(name, value)
            if clean is not value:
                span.set_attribute(name, clean)

    def on_end(self, span: ReadableSpan) -> None:
        return None


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
    provider.add_span_processor(Redacting())
    provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(environ)))
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
