"""A consumer span for each event a handler takes, whose parent is the event's CloudEvents `traceparent`.

FastStream's middleware records the read of a record (or of a batch, linked to its records);
these spans put each event in its appeal's trace, a batch's events each in their own. The event's
`traceparent` becomes its span's, so what the handler emits (and stores for later) is that span's child.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from libs import tracing
from libs.contract import BY_APPEAL
from libs.contract import topic as contract_topic
from libs.envelopes import CloudEvent

_tracer = trace.get_tracer("appeals.consumer")


@contextmanager
def handling(events: list[CloudEvent[Any]], group: str) -> Iterator[None]:
    """Open a span per event for the handler's call; the lone event's span is the current one."""
    if not tracing.sdk_in_use():
        yield
        return
    spans = [_start(event, group) for event in events]
    token = otel_context.attach(trace.set_span_in_context(spans[0])) if len(spans) == 1 else None
    try:
        yield
    except BaseException as exc:
        for span in spans:
            # The kind of failure only: an exception's message may quote a record's values.
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        if token is not None:
            otel_context.detach(token)
        for span in spans:
            span.end()


def _start(event: CloudEvent[Any], group: str) -> trace.Span:
    topic, partition, offset = event.position or ("", 0, 0)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
        "messaging.message.id": event.id,
        "cloudevents.event_type": event.type,
    }
    entry = contract_topic(topic)
    if entry is None or entry.key == BY_APPEAL:
        attributes["appeals.appeal_id"] = event.subject  # never a company's credit code (another topic's key)
    span = _tracer.start_span(
        f"{topic} handle", context=tracing.context_of(event.traceparent), kind=SpanKind.CONSUMER, attributes=attributes
    )
    event.traceparent = tracing.of_span(span) or event.traceparent
    return span
