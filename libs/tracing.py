"""W3C trace context: one trace per appeal, from intake's request through every event and log line.

Intake takes the caller's `traceparent` (or starts a trace), the submitted event
carries it, and every service that handles an appeal's event binds it for the
handler: events it emits carry the same trace id under a new span id, and its
log lines name the trace id. Work started by a timer (SLA warnings) uses the
trace stored with the clock.
"""

import random
import re
from contextvars import ContextVar

_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current: ContextVar[str | None] = ContextVar("traceparent", default=None)


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
