"""W3C trace context: one trace per appeal, from intake's request through every event and log line.

Intake takes the caller's `traceparent` (or starts a trace), the submitted event
carries it, and every service that handles an appeal's event binds it for the
handler: events it emits carry the same trace id under a new span id, and its
log lines name the trace id. Work started by a timer (SLA warnings) uses the
trace stored with the clock.

When the OpenTelemetry SDK is installed (`libs.telemetry`), the ids are its spans': an event carries
the context of the span that made it (so the sampling decision travels with it), and the bound trace
is the current span's. Without it, the ids are minted here, each marked sampled.
"""

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()

_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current: ContextVar[str | None] = ContextVar("traceparent", default=None)

_sdk = False


def use_sdk(on: bool) -> None:
    """Take ids from the SDK's spans (`libs.telemetry.setup`), or mint them here."""
    global _sdk
    _sdk = on


def sdk_in_use() -> bool:
    return _sdk


def of_span(span: trace.Span) -> str | None:
    """The `traceparent` of a span, with its sampled flag; None for a span that is not valid."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def active() -> str | None:
    """The trace this code runs in: the current span's when the SDK records one, else the bound one."""
    if _sdk:
        here = of_span(trace.get_current_span())
        if here is not None:
            return here
    return current.get()


def for_event(parent: str | None) -> str | None:
    """The `traceparent` an event made now carries: `parent` (a consumed event's, or one stored with the
    work) or the active trace. With the SDK it is a recorded span's context as it is; without, a child id."""
    parent = parent or active()
    if _sdk:
        return parent if valid(parent) else None
    return child_of(parent) if parent else None


def context_of(traceparent: str | None) -> otel_context.Context:
    """An OpenTelemetry context whose parent is `traceparent` (an empty one when it is missing or invalid)."""
    return _W3C.extract({"traceparent": traceparent}) if valid(traceparent) else otel_context.Context()


@contextmanager
def within(traceparent: str | None) -> Iterator[None]:
    """Make `traceparent` the parent of the spans started inside (a stored event's, as it is published)."""
    if not _sdk or not valid(traceparent):
        yield
        return
    token = otel_context.attach(context_of(traceparent))
    try:
        yield
    finally:
        otel_context.detach(token)


def outgoing() -> dict[str, str]:
    """Headers that carry the trace to another service's HTTP API. With the SDK, httpx's instrumentation
    puts its client span's there instead."""
    here = current.get()
    return {"traceparent": here} if here is not None and not _sdk else {}


def valid(traceparent: str | None) -> bool:
    """Whether `traceparent` is a version-00 header with non-zero ids (others are ignored, as the spec says)."""
    match = _FORMAT.match(traceparent or "")
    return match is not None and set(match.group(1)) != {"0"} and set(match.group(2)) != {"0"}


def _random_id(bits: int) -> str:
    # Ids need to be unique, not secret: like OpenTelemetry's, they come from the fast generator,
    # where `secrets` cost a system call for each event (2 % of intake's CPU).
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


def new_traceparent() -> str:
    """A new trace, sampled."""
    return f"00-{_random_id(128)}-{_random_id(64)}-01"


def child_of(traceparent: str | None) -> str:
    """The same trace under a new span id; a new trace when `traceparent` is missing or invalid."""
    if traceparent is None or not valid(traceparent):
        return new_traceparent()
    _, trace_id, _, flags = traceparent.split("-")
    return f"00-{trace_id}-{_random_id(64)}-{flags}"


def trace_id(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a valid `traceparent`."""
    return traceparent.split("-")[1] if traceparent is not None and valid(traceparent) else None


def span_id(traceparent: str | None) -> str | None:
    """The 16-hex span id of a valid `traceparent`."""
    return traceparent.split("-")[2] if traceparent is not None and valid(traceparent) else None
