"""One trace per appeal across the processes, exported by OTLP/HTTP to a receiver this test runs.

Every service of the stack has `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at the receiver and keeps
no new trace of its own (ratio 0): what is recorded is what a caller asked to be sampled, as a
parent-based sampler does. A channel's sampled request reaches intake, router (its department
topic), sla and notify in one trace; the company's follow page on web is a trace through web's
call to intake; no exported value holds the token, the phone, the contact's name or the credit code.
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from devstack.otlp import OtlpReceiver
from tests.helpers import appeal_body, eventually, fresh_stack

TRACE = "0af7651916cd43dd8448eb211c80319c"
SAMPLED = f"00-{TRACE}-b7ad6b7169203331-01"
PAGE_TRACE = "1af7651916cd43dd8448eb211c80319c"


class Receiver:
    """The spans an OTLP/HTTP receiver on loopback got: each as its service, name, ids and attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.receiver = OtlpReceiver(self.keep)
        self.url = self.receiver.url

    def keep(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    values = {a.key: _value(a.value) for a in span.attributes}
                    with self.lock:
                        self.spans.append(
                            {
                                "service": resource.get("service.name"),
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "attributes": values,
                            }
                        )

    def of(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def stop(self) -> None:
        self.receiver.stop()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receiver):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SERVICE_NAME": "not-the-service",
    }
    s = fresh_stack(tmp_path_factory, "tracing-stack", env=env)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def submitted(stack) -> dict[str, Any]:
    body = appeal_body()
    response = httpx.post(
        stack.url("intake") + "/v1/appeals",
        json=body,
        headers={"X-Api-Key": stack.keys["channel:wechat"], "traceparent": SAMPLED},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return {"body": body, **response.json()}


def test_a_channels_appeal_is_one_trace_through_intake_router_its_department_topic_sla_and_notify(receiver, submitted):
    wanted = {"intake", "router", "sla", "notify", "stats"}

    def whole() -> list[dict[str, Any]] | None:
        spans = receiver.of(TRACE)
        routed = any(s["name"].startswith("dept.") and s["name"].endswith(" publish") for s in spans)
        return spans if routed and wanted <= {s["service"] for s in spans} else None

    spans = eventually(whole, "the appeal's spans from every service", timeout=60)
    names = {(s["service"], s["name"]) for s in spans}
    assert ("intake", "POST /v1/appeals") in names
    assert ("router", "appeals.submitted.v2 handle") in names
    assert ("sla", "appeals.lifecycle.v1 handle") in names
    assert ("notify", "appeals.lifecycle.v1 handle") in names
    # Each consumer span hangs under a span of the trace that was exported (none is an orphan of its own).
    ids = {s["span_id"] for s in spans}
    handles = [s for s in spans if s["name"].endswith(" handle")]
    assert handles and all(s["parent"] in ids for s in handles), [s for s in handles if s["parent"] not in ids]
    for s in handles:
        if s["attributes"].get("appeals.appeal_id") is not None:
            assert s["attributes"]["appeals.appeal_id"] == submitted["appeal_id"]
    # pymongo's instrumentation: router's statements, the command's name without its values.
    statements = [s for s in spans if s["service"] == "router" and s["attributes"].get("db.system") == "mongodb"]
    assert statements, names
    _holds_no_secret(spans, submitted)


def test_an_unsampled_trace_and_probes_are_not_recorded(stack, receiver):
    response = httpx.post(
        stack.url("intake") + "/v1/appeals",
        json=appeal_body(),
        headers={"X-Api-Key": stack.keys["channel:wechat"]},
        timeout=30,
    )
    assert response.status_code == 202
    httpx.get(stack.url("router") + "/healthz", timeout=5)
    time.sleep(2)
    traceparent = response.headers["traceparent"]
    assert int(traceparent[-2:], 16) & 1 == 0  # the ratio-0 sampler's decision, which travels with the appeal
    assert receiver.of(traceparent.split("-")[1]) == []
    assert not [s for s in receiver.spans if s["name"] == "GET /healthz"]


def test_the_follow_page_is_one_trace_through_web_and_intake_without_its_token(stack, receiver, submitted):
    url = f"{stack.url('web')}/appeals/{submitted['appeal_id']}?token={submitted['status_token']}"
    # The link's token moves into a cookie (303), and the page is read from intake with it.
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(url, headers={"traceparent": f"00-{PAGE_TRACE}-b7ad6b7169203331-01"})
    assert page.status_code == 200, page.text

    def both() -> list[dict[str, Any]] | None:
        spans = receiver.of(PAGE_TRACE)
        pages = [s for s in spans if s["service"] == "web" and s["name"].startswith("GET /appeals")]
        return spans if len(pages) == 2 and any(s["service"] == "intake" for s in spans) else None

    spans = eventually(both, "the page's spans at web and intake", timeout=30)
    servers = [s for s in spans if s["service"] == "web" and s["name"].startswith("GET /appeals")]
    assert [s["attributes"].get("url.query") for s in servers] == ["token=REDACTED", None]
    client = [s for s in spans if s["service"] == "web" and s["parent"] == servers[1]["span_id"]]
    at_intake = [s for s in spans if s["service"] == "intake" and s["name"].startswith("GET /v1/appeals")]
    assert at_intake and all(s["parent"] in {c["span_id"] for c in client} for s in at_intake)
    _holds_no_secret(spans, submitted)


def _holds_no_secret(spans: list[dict[str, Any]], submitted: dict[str, Any]) -> None:
    body = submitted["body"]
    secrets = [
        submitted["status_token"],
        body["contact"]["phone"],
        body["contact"]["name"],
        body["contact"]["email"],
        body["enterprise"]["uscc"],
    ]
    for span in spans:
        for name, value in span["attributes"].items():
            for secret in secrets:
                assert secret not in str(value), f"{span['service']} {span['name']} {name}"
