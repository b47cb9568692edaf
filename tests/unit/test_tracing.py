"""W3C trace context (libs/tracing.py): one trace per appeal, a new span per event, the trace id in log lines."""

import io
import json
import logging

from libs import tracing
from libs.events import CompanyFeedback
from libs.kafka.publishing import make_event
from libs.logging import configure_logging

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_only_version_00_headers_with_non_zero_ids_are_taken():
    assert tracing.valid(CALLER)
    for bad in (
        None,
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F35-00f067aa0ba902b7-01",
    ):
        assert not tracing.valid(bad), bad
    assert tracing.valid(tracing.new_traceparent())


def test_a_child_keeps_the_trace_and_flags_under_a_new_span():
    child = tracing.child_of(CALLER)
    assert tracing.trace_id(child) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.split("-")[2] != "00f067aa0ba902b7" and child.endswith("-01")
    assert tracing.trace_id(tracing.child_of("garbage")) not in (None, "4bf92f3577b34da6a3ce929d0e0e4736")


def test_events_made_while_a_trace_is_bound_join_it():
    data = CompanyFeedback(appeal_id="01J", resolved=True, satisfaction=5)
    assert make_event("appeals/test", "company.feedback.v1", "01J", data).traceparent is None
    bound = tracing.current.set(CALLER)
    try:
        event = make_event("appeals/test", "company.feedback.v1", "01J", data)
    finally:
        tracing.current.reset(bound)
    assert tracing.trace_id(event.traceparent) == tracing.trace_id(CALLER) and event.traceparent != CALLER
    explicit = make_event("appeals/test", "company.feedback.v1", "01J", data, traceparent=CALLER)
    assert tracing.trace_id(explicit.traceparent) == tracing.trace_id(CALLER)


def test_log_lines_name_the_bound_trace(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("test")
        logging.getLogger("t").info("outside")
        bound = tracing.current.set(CALLER)
        logging.getLogger("t").info("inside", extra={"appeal_id": "01J"})
        tracing.current.reset(bound)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    outside, inside = (json.loads(line) for line in out.getvalue().splitlines())
    assert "trace_id" not in outside
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and inside["appeal_id"] == "01J"
    assert inside["span_id"] == "00f067aa0ba902b7"
