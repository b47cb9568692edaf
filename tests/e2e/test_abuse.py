"""Abuse on the running stack: bad bodies and keys, bad Kafka messages, schemathesis on every OpenAPI document.

Every service runs as its own process on the real Kafka-protocol broker (Tansu) and
MongoDB-protocol server (SecantusDB); requests go over HTTP, messages over Kafka.
"""

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from libs.config import load_city
from libs.contract import (
    APPEALS_ACTIONS,
    APPEALS_COMPANY,
    APPEALS_CONTACTS,
    APPEALS_LIFECYCLE,
    APPEALS_SUBMITTED,
    APPEALS_SUBMITTED_V2,
    COMPANY_MESSAGES,
    ENTERPRISES,
    NOTIFY_DELIVERIES,
    SERVICE_NAMES,
    SLA_EVENTS,
    SLA_EVENTS_V2,
    dead_letter_topic,
    department_actions_topic,
)
from libs.events import DepartmentAction
from libs.http import MAX_BODY_BYTES, PROBLEM_JSON
from libs.kafka.access import KafkaAccess
from libs.kafka.publishing import encode, make_event
from libs.kafka_admin import department_principal, partitions_of
from libs.kinds import EventType
from libs.settings import PROJECT_ROOT
from tests.helpers import appeal_body, eventually, fresh_stack, key, read_topic, valid_uscc

pytestmark = pytest.mark.timeout(600)

SERVICES = SERVICE_NAMES
API_DOCS = PROJECT_ROOT / "docs" / "api"
OPEN311 = "/open311/v2"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """All five services; test_fast clocks, so SLA warnings reach notify within the test."""
    s = fresh_stack(tmp_path_factory, "abuse-stack", fast_sla=True)
    yield s
    s.stop()


def submit(stack, body: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    headers = key(stack, "channel:wechat") if headers is None else headers
    return httpx.post(stack.url("intake") + "/v1/appeals", json=body, headers=headers, timeout=30, **kwargs)


def router_appeal(stack, appeal_id: str) -> dict | None:
    r = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers=key(stack, "operator"), timeout=30)
    return r.json() if r.status_code == 200 else None


def wait_status(stack, appeal_id: str, status: str, timeout: float = 30.0) -> dict:
    return eventually(
        lambda: (doc := router_appeal(stack, appeal_id)) and doc["status"] == status and doc,
        f"{appeal_id} reaching {status} at the router",
        timeout,
    )


def assert_problem(response: httpx.Response, status: int) -> dict:
    """`response` is an RFC 9457 problem document with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    return body


@dataclass
class Known:
    """A real appeal, so that generated requests also reach past the 404 of an unknown one."""

    appeal_id: str
    status_token: str
    lead: str


@pytest.fixture(scope="module")
def known(stack) -> Known:
    r = submit(stack, appeal_body())
    assert r.status_code == 202, r.text
    accepted = r.json()
    lead = wait_status(stack, accepted["appeal_id"], "routed")["lead"]
    return Known(accepted["appeal_id"], accepted["status_token"], lead)


# ---------------------------------------------------------------- intake: size, fields, keys, scope


def test_intake_refuses_a_body_over_one_megabyte_with_413(stack):
    oversized = appeal_body(description="x" * MAX_BODY_BYTES)
    body = assert_problem(submit(stack, oversized), 413)
    assert str(MAX_BODY_BYTES) in body["detail"]

    def chunks():  # no Content-Length: the limit must hold on what arrives, not on what is declared
        yield from (b"x" * (MAX_BODY_BYTES // 2), b"x" * (MAX_BODY_BYTES // 2), b"x")

    streamed = httpx.post(
        stack.url("intake") + "/v1/appeals",
        content=chunks(),
        timeout=30,
        headers={**key(stack, "channel:wechat"), "content-type": "application/json"},
    )
    assert_problem(streamed, 413)
    assert submit(stack, appeal_body(description="x" * 10_000)).status_code == 202, "a large but fair body passes"


def wrong_check_character(uscc: str) -> str:
    """The code with another character of its alphabet in place of the check character."""
    return uscc[:-1] + ("1" if uscc[-1] == "0" else "0")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"enterprise": {"uscc": wrong_check_character(valid_uscc(4242))}}, "enterprise.uscc"),
        ({"category": "astrology"}, "category"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
    ],
    ids=["bad-uscc-check-character", "unknown-category", "empty-title", "blank-title"],
)
def test_intake_names_the_invalid_field_in_a_422(stack, override, field):
    body = assert_problem(submit(stack, appeal_body(**override)), 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert field in body["detail"] and body["errors"][0]["message"]


def test_intake_without_a_valid_key_is_401(stack, known):
    for headers in ({}, {"X-Api-Key": "ak_not-a-key"}, {"X-Api-Key": ""}):
        assert_problem(submit(stack, appeal_body(), headers=headers), 401)
        read = httpx.get(stack.url("intake") + f"/v1/appeals/{known.appeal_id}", headers=headers, timeout=30)
        assert_problem(read, 401)
    # A key is checked before the body: a stranger learns nothing about what a valid appeal looks like.
    assert_problem(submit(stack, {"junk": True}, headers={}), 401)


def test_intake_refuses_keys_outside_their_scope_with_403(stack, known):
    department = key(stack, f"department:{known.lead}")
    assert "department" in assert_problem(submit(stack, appeal_body(), headers=department), 403)["detail"]
    read = httpx.get(stack.url("intake") + f"/v1/appeals/{known.appeal_id}", headers=department, timeout=30)
    assert_problem(read, 403)
    other_channel = httpx.get(
        stack.url("intake") + f"/v1/appeals/{known.appeal_id}", headers=key(stack, "channel:web"), timeout=30
    )
    assert "another channel" in assert_problem(other_channel, 403)["detail"]


def test_what_schemathesis_found_stays_fixed(stack, known):
    # A non-ASCII status token made hmac.compare_digest raise: 500 instead of 401.
    odd_token = httpx.get(
        stack.url("intake") + f"/v1/appeals/{known.appeal_id}", params={"token": "Îª\x1c"}, timeout=30
    )
    assert_problem(odd_token, 401)
    # An unbounded `within` overflowed timedelta: 500 instead of a 422 naming the parameter.
    far = httpx.get(
        stack.url("sla") + "/v1/sla/at-risk",
        params={"within": "8997708464078405755m"},
        headers=key(stack, "operator"),
        timeout=30,
    )
    assert [e["field"] for e in assert_problem(far, 422)["errors"]] == ["within"]
    year = httpx.get(
        stack.url("sla") + "/v1/sla/at-risk", params={"within": "365d"}, headers=key(stack, "operator"), timeout=30
    )
    assert year.status_code == 200, year.text
    # An offset past MongoDB's 64-bit skip: 500 instead of a 422.
    deep = httpx.get(
        stack.url("router") + f"/v1/departments/{known.lead}/appeals",
        params={"offset": 2**63},
        headers=key(stack, "operator"),
        timeout=30,
    )
    assert [e["field"] for e in assert_problem(deep, 422)["errors"]] == ["offset"]


# ---------------------------------------------------------------- Kafka: dead letters, and the consumers go on


def consumers_of_topics() -> dict[str, set[str]]:
    """Topic -> the services that consume it, read from the AsyncAPI documents the services generate."""
    consumers: dict[str, set[str]] = {}
    for service in SERVICES:
        doc = json.loads((API_DOCS / f"{service}.asyncapi.json").read_text())
        for operation in doc["operations"].values():
            if operation["action"] == "receive":
                channel = doc["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
                consumers.setdefault(channel["address"], set()).add(service)
    return consumers


# A type each topic really carries, for a message whose envelope is fine but whose data is not.
SAMPLE_TYPE = {
    APPEALS_SUBMITTED: EventType.appeal_submitted,
    APPEALS_SUBMITTED_V2: EventType.appeal_submitted_v2,
    APPEALS_CONTACTS: EventType.appeal_contact,
    APPEALS_LIFECYCLE: EventType.appeal_routed,
    APPEALS_ACTIONS: EventType.department_action,
    APPEALS_COMPANY: EventType.company_feedback,
    SLA_EVENTS: EventType.sla_started,
    SLA_EVENTS_V2: EventType.sla_reported,
    NOTIFY_DELIVERIES: EventType.notification_delivered,
    ENTERPRISES: EventType.enterprise_updated,
    COMPANY_MESSAGES: EventType.company_code_issued,
    **{
        department_actions_topic(d.code): EventType.department_action
        for d in load_city(PROJECT_ROOT / "config").departments
    },
}


def envelope(marker: str, type_: str, data: dict) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": marker,
            "source": "appeals/abuse-test",
            "type": type_,
            "subject": marker,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


def bad_messages(topic: str, partition: int) -> dict[str, bytes]:
    """Kind -> bytes no consumer can take: not JSON, a type nobody knows, a known type with broken data."""
    marker = f"abuse-{topic}-{partition}"
    return {
        "unparseable": b"\xff\xfe{not json " + marker.encode(),
        "unknown type": envelope(marker + "-unknown", "appeal.teleported.v1", {"appeal_id": marker}),
        "invalid data": envelope(marker + "-invalid", SAMPLE_TYPE[topic], {"appeal_id": 42}),
    }


async def dead_letters(
    bootstrap: KafkaAccess, topic: str, wanted: set[tuple[int, int]], copies: int, timeout: float = 45.0
) -> dict[tuple[int, int], list[dict[str, str]]]:
    """Headers of the `.dlq` copies of the (partition, offset) records of `topic`; waits for `copies` of each."""
    dlq = dead_letter_topic(topic)
    consumer = AIOKafkaConsumer(**bootstrap.client_options(), enable_auto_commit=False)
    await consumer.start()
    found: dict[tuple[int, int], list[dict[str, str]]] = {w: [] for w in wanted}
    try:
        tps = await partitions_of(bootstrap, [dlq])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(len(v) < copies for v in found.values()):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    origin = (int(headers.get("dlq-partition", -1)), int(headers.get("dlq-offset", -1)))
                    if headers.get("dlq-topic") == topic and origin in found:
                        found[origin].append(headers)
        return found
    finally:
        await consumer.stop()


def dead_lettered_in_log(stack, service: str, topic: str) -> Counter[int]:
    """Offsets of `topic` that `service` says it dead-lettered, each with how often (the log names no partition)."""
    offsets: Counter[int] = Counter()
    for line in (stack.data_dir / f"{service}.log").read_text().splitlines():
        if line.startswith("{") and '"dead-lettered a message"' in line:
            entry = json.loads(line)
            if entry.get("topic") == topic:
                offsets[entry["offset"]] += 1
    return offsets


async def test_bad_messages_on_every_consumed_topic_go_to_the_dlq_and_every_consumer_goes_on(stack):
    consumers = consumers_of_topics()
    assert set(consumers) == set(SAMPLE_TYPE), "every topic a service consumes, and only those"
    assert consumers[APPEALS_LIFECYCLE] == {"intake", "sla", "notify", "stats"}
    sent: dict[str, dict[tuple[int, int], str]] = {}
    producer = AIOKafkaProducer(**stack.kafka_access().client_options(), acks="all")
    await producer.start()
    try:
        for topic in consumers:
            sent[topic] = {}
            # Every partition, so whichever one the next appeal's events land on was poisoned first.
            for partition in sorted(await producer.partitions_for(topic)):
                for kind, value in bad_messages(topic, partition).items():
                    meta = await producer.send_and_wait(topic, value, key=b"abuse", partition=partition)
                    sent[topic][(meta.partition, meta.offset)] = kind
    finally:
        await producer.stop()

    for topic, records in sent.items():
        dead = await dead_letters(stack.kafka_access(), topic, set(records), copies=len(consumers[topic]))
        for origin, kind in records.items():
            copies = dead[origin]
            assert len(copies) >= len(consumers[topic]), (topic, origin, kind, copies)
            assert all(c["dlq-reason"] for c in copies), (topic, kind)
            if kind == "unknown type":
                assert all("unknown event type 'appeal.teleported.v1'" in c["dlq-reason"] for c in copies)
        offsets = Counter(offset for _, offset in records)
        for service in consumers[topic]:
            eventually(
                lambda s=service, t=topic, o=offsets: not o - dead_lettered_in_log(stack, s, t),
                f"{service} dead-lettering every bad message of {topic}",
            )

    # Every consumer went on: one appeal, followed through each of them.
    stats_before = httpx.get(
        stack.url("stats") + "/v1/stats/summary", headers=key(stack, "operator"), timeout=30
    ).json()["total"]
    accepted = submit(stack, appeal_body()).json()
    appeal_id, company = accepted["appeal_id"], {"X-Status-Token": accepted["status_token"]}
    lead = wait_status(stack, appeal_id, "routed")["lead"]  # router: appeals.submitted.v1

    def intake_view() -> dict:
        return httpx.get(stack.url("intake") + f"/v1/appeals/{appeal_id}", headers=company, timeout=30).json()

    # intake: appeals.lifecycle.v1 (status) and sla.events.v2 (deadlines); sla: appeals.lifecycle.v1 (clocks).
    eventually(lambda: (v := intake_view())["status"] == "routed" and v["deadlines"], "intake's status and deadlines")
    clocks = httpx.get(stack.url("sla") + f"/v1/appeals/{appeal_id}/sla", headers=key(stack, "operator"), timeout=30)
    assert clocks.status_code == 200 and clocks.json()["clocks"]

    # router: dept.<lead>.actions.v1, the department's own system accepting over Kafka as itself.
    action = make_event(
        "appeals/dept-system",
        EventType.department_action,
        appeal_id,
        DepartmentAction(appeal_id=appeal_id, department=lead, action="accept"),
    )
    producer = AIOKafkaProducer(**stack.kafka_access(department_principal(lead)).client_options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(department_actions_topic(lead), encode(action), key=appeal_id.encode())
    finally:
        await producer.stop()
    wait_status(stack, appeal_id, "accepted")

    # router: appeals.company.v1, the company's answer to a request for information.
    asked = httpx.post(
        stack.url("router") + f"/v1/appeals/{appeal_id}/actions",
        timeout=30,
        json={"action": "request_info", "note": "Send the loan contract"},
        headers=key(stack, f"department:{lead}"),
    )
    assert asked.status_code == 200, asked.text
    eventually(lambda: intake_view()["status"] == "info_requested", "intake seeing the request for information")
    answered = httpx.post(
        stack.url("intake") + f"/v1/appeals/{appeal_id}/info",
        headers=company,
        timeout=30,
        json={"information": "Contract 2026-0042"},
    )
    assert answered.status_code == 202, answered.text
    wait_status(stack, appeal_id, "accepted")

    # notify: appeals.submitted.v1 or appeals.lifecycle.v1, and sla.events.v2 (test_fast warns within seconds).
    def planned() -> set[str]:
        r = httpx.get(
            stack.url("notify") + "/v1/notifications",
            params={"appeal_id": appeal_id},
            headers=key(stack, "operator"),
            timeout=30,
        )
        return {n["event_type"] for n in r.json()}

    eventually(
        lambda: "sla.warning.v1" in planned() and planned() & {"appeal.submitted.v2", "appeal.routed.v1"},
        "notify planning notifications of the appeal and its clocks",
    )

    # stats: counts the appeal.
    eventually(
        lambda: (
            httpx.get(stack.url("stats") + "/v1/stats/summary", headers=key(stack, "operator"), timeout=30).json()[
                "total"
            ]
            > stats_before
        ),
        "stats counting the new appeal",
    )


# ---------------------------------------------------------------- schemathesis on every OpenAPI document


def error_format_problem(path: str, response: schemathesis.Response) -> str | None:
    """What is wrong with a 4xx answer, or None: a problem document, or under Open311 GeoReport's error list."""
    status = response.status_code
    content_type = ",".join(response.headers.get("content-type", []))
    try:
        body = response.json()
    except ValueError:
        return f"{status} body is not JSON ({content_type}): {response.text[:200]!r}"
    if path.startswith(OPEN311):
        # GeoReport v2: a list of {code, description}.
        ok = (
            isinstance(body, list)
            and body
            and all(
                isinstance(e, dict) and e.get("code") == status and isinstance(e.get("description"), str) for e in body
            )
        )
        return None if ok else f"{status} is not a GeoReport error list: {response.text[:200]!r}"
    if content_type != PROBLEM_JSON:
        return f"{status} answered as {content_type!r}, not {PROBLEM_JSON}: {response.text[:200]!r}"
    if not (isinstance(body, dict) and isinstance(body.get("title"), str) and body.get("status") == status):
        return f"{status} problem document without a title or with another status: {response.text[:200]!r}"
    return None


def verdict(path: str, response: schemathesis.Response) -> str | None:
    """None if the answer is acceptable: no 5xx, and every 4xx in its documented error format."""
    if response.status_code >= 500:
        return f"{response.status_code} server error: {response.text[:200]!r}"
    if response.status_code >= 400:
        return error_format_problem(path, response)
    return None


# The key each service's callers mostly hold first (Hypothesis leans on the first choices), then every other.
MAIN_SCOPE = {
    "intake": "channel:wechat",
    "router": "department",
    "sla": "operator",
    "notify": "admin",
    "stats": "operator",
}


def principals(stack, known: Known, service: str) -> list[str | None]:
    scopes = [MAIN_SCOPE[service], "operator", "channel:wechat", "department", "department:tax", "admin"]
    keys = [stack.keys[f"department:{known.lead}" if s == "department" else s] for s in scopes]
    return [*dict.fromkeys(keys), None, "ak_not-a-key"]


@pytest.mark.parametrize("service", SERVICES)
def test_generated_requests_get_no_server_error_and_every_refusal_in_its_error_format(stack, known, service):
    schema = schemathesis.openapi.from_path(API_DOCS / f"{service}.openapi.json")
    base_url = stack.url(service)
    keys = principals(stack, known, service)
    session = requests.Session()
    found: dict[tuple[str, str], str] = {}
    statuses: Counter[int] = Counter()
    real = {"appeal_id": known.appeal_id, "request_id": known.appeal_id, "code": known.lead, "fmt": "json"}

    def aim_at_known(case) -> None:
        """Point the case at the real appeal, its lead department, its status token and a channel's api_key."""
        for name in set(case.path_parameters or ()) & set(real):
            case.path_parameters[name] = real[name]
        for name, value in (("token", known.status_token), ("api_key", stack.keys["channel:wechat"])):
            if case.query and name in case.query:
                case.query[name] = value

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=25,
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(
                case=operation.as_strategy(generation_mode=mode), api_key=st.sampled_from(keys), known_ids=st.booleans()
            )
            def call(case, api_key, known_ids):
                if known_ids:
                    aim_at_known(case)
                response = case.call(
                    base_url=base_url, session=session, timeout=30, headers={"X-Api-Key": api_key} if api_key else {}
                )
                if case.operation.path not in ("/healthz", "/readyz"):
                    statuses[response.status_code] += 1
                problem = verdict(case.operation.path, response)
                if problem is not None:  # collected, not raised: no shrinking against a live stack
                    found.setdefault((case.operation.label, problem[:40]), f"{problem}\n    {case.as_curl_command()}")

            try:
                call()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to negate without parameters
    session.close()
    assert not found, "\n".join(f"{label}: {text}" for (label, _), text in sorted(found.items()))
    # The run reached the handlers, not only the key check.
    assert sum(n for s, n in statuses.items() if s < 300) >= 10 and statuses[401] and statuses[422], statuses


# ---------------------------------------------------------------- a known type on the wrong topic


async def test_a_known_event_type_on_a_topic_that_does_not_carry_it_does_not_stop_the_consumer(stack):
    appeal_id = submit(stack, appeal_body()).json()["appeal_id"]
    lead = wait_status(stack, appeal_id, "routed")["lead"]
    submitted = await read_topic(stack.kafka_access(), APPEALS_SUBMITTED_V2, lambda e: e.get("subject") == appeal_id)
    misplaced = {**submitted[0], "id": submitted[0]["id"][:-4] + "MISP"}  # valid appeal.submitted.v2, wrong topic
    accept = make_event(
        "appeals/dept-system",
        EventType.department_action,
        appeal_id,
        DepartmentAction(appeal_id=appeal_id, department=lead, action="accept"),
    )
    actions = department_actions_topic(lead)
    producer = AIOKafkaProducer(**stack.kafka_access(department_principal(lead)).client_options(), acks="all")
    await producer.start()
    try:
        # One partition: the department's accept waits behind the misplaced event.
        sent = await producer.send_and_wait(actions, json.dumps(misplaced).encode(), key=appeal_id.encode())
        await producer.send_and_wait(actions, encode(accept), key=appeal_id.encode())
    finally:
        await producer.stop()
    wait_status(stack, appeal_id, "accepted", timeout=30)
    dead = await dead_letters(stack.kafka_access(), actions, {(sent.partition, sent.offset)}, 1)
    copies = dead.popitem()[1]
    assert copies and f"'appeal.submitted.v2' does not travel on {actions}" in copies[0]["dlq-reason"]
