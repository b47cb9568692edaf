"""The embedded stack as a user runs it: every service its own process, real servers, HTTP and Kafka clients."""

import asyncio
import json
import os
import re
import signal
import subprocess
import time

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from devstack import kcat
from libs.config import load_city
from libs.contract import (
    APPEALS_ACTIONS,
    APPEALS_CONTACTS,
    APPEALS_LIFECYCLE,
    APPEALS_SUBMITTED,
    TOPICS,
    department_actions_topic,
    department_topic,
    topic_config,
)
from libs.events import DepartmentAction
from libs.kafka.access import KafkaAccess
from libs.kafka.publishing import encode, make_event
from libs.kafka_admin import partitions_of
from libs.kinds import EventType
from tests.helpers import (
    Databases,
    answered_anonymously,
    appeal_body,
    assert_routed_once,
    fresh_stack,
    read_topic,
    valid_uscc,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack on free ports, MongoDB in memory, started and stopped by this module."""
    # A closed appeal's contact is kept 15 s here instead of 180 days: long enough to erase one on request first.
    env = {"INTAKE_PUBLISH_TIMEOUT_SECONDS": "2", "INTAKE_CONTACT_RETENTION": "15", "INTAKE_ERASURE_CHECK_SECONDS": "1"}
    s = fresh_stack(tmp_path_factory, "stack", env=env)
    yield s
    s.stop()


def post(stack, body, channel="wechat"):
    return httpx.post(
        stack.url("intake") + "/v1/appeals",
        json=body,
        headers={"X-Api-Key": stack.keys[f"channel:{channel}"]},
        timeout=30,
    )


def wait_status(stack, appeal_id, status, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers={"X-Api-Key": stack.keys["operator"]})
        if r.status_code == 200 and r.json()["status"] == status:
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"{appeal_id} not {status} within {timeout}s")


def wait_routed(stack, appeal_id, timeout=20.0):
    return wait_status(stack, appeal_id, "routed", timeout)


def test_stack_writes_its_manifest_and_every_service_is_observable(stack):
    manifest = json.loads((stack.data_dir / "stack.json").read_text())
    assert set(manifest["services"]) >= {"intake", "router"}
    assert manifest["keys"]["channel:wechat"].startswith("ak_")
    for svc in manifest["services"].values():
        assert httpx.get(svc["url"] + "/healthz").json()["status"] == "ok"
        assert httpx.get(svc["url"] + "/readyz").status_code == 200
        if svc["url"] != stack.url("web"):  # web serves pages, not an API
            assert httpx.get(svc["url"] + "/openapi.json").json()["info"]["title"]
        metrics = httpx.get(svc["url"] + "/metrics").text
        assert "http_requests_total" in metrics or "http_request" in metrics


async def test_department_reads_its_topic_with_aiokafka_and_kcat(stack, tmp_path):
    body = appeal_body(
        enterprise={"district": "futian"},
        category="tax",
        description="As a small-scale taxpayer, can we use the reduced VAT rate?",
    )
    r = post(stack, body)
    assert r.status_code == 202, r.text
    appeal_id = r.json()["appeal_id"]
    doc = wait_routed(stack, appeal_id)
    topic = f"dept.{doc['lead']}.v1"
    events = await read_topic(stack.kafka_access(), topic, lambda e: e.get("subject") == appeal_id)
    assert events[0]["type"] == "assignment.created.v1" and events[0]["data"]["sla_profile"] == "policy_24h"

    # kcat as the department's own system runs it: with its principal from stack.json, as `make run` prints.
    line, env = kcat.command(department(stack, doc["lead"]), "-C", "-t", topic, "-o", "beginning", "-e", "-q")
    out = subprocess.run(
        [*line, "-f", "%k\t%s\n"], capture_output=True, text=True, timeout=60, check=True, env=env
    ).stdout
    lines = [line.split("\t", 1) for line in out.splitlines() if line.startswith(appeal_id)]
    assert len(lines) == 1, out
    assert json.loads(lines[0][1])["data"]["appeal"]["title"] == body["title"]


def listed(stack) -> set[str]:
    """The ids an Open311 client sees when it lists today's requests (an operator's key lists every channel's)."""
    r = httpx.get(
        stack.url("intake") + "/open311/v2/requests.json",
        params={"api_key": stack.keys["operator"]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return {request["service_request_id"] for request in r.json()}


def department(stack, code: str) -> KafkaAccess:
    """Department `code`'s principal on the stack's Kafka, as stack.json gives it to the department."""
    kafka = json.loads((stack.data_dir / "stack.json").read_text())["kafka"]
    user = kafka["principals"][f"department:{code}"]
    return KafkaAccess(stack.bootstrap, kafka["security_protocol"], kafka["sasl_mechanism"], **user)


async def refused(access: KafkaAccess, topic: str, value: bytes) -> bool:
    """Whether the broker refuses `access` writing to `topic`."""
    producer = AIOKafkaProducer(**access.client_options(), acks="all", request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"probe")
        return False
    except TopicAuthorizationFailedError:
        return True
    finally:
        await producer.stop()


async def test_a_department_acts_on_its_own_topic_and_the_broker_refuses_it_everywhere_else(stack):
    appeal_id = post(stack, appeal_body()).json()["appeal_id"]
    lead = wait_routed(stack, appeal_id)["lead"]
    own = department(stack, lead)
    accept = make_event(
        f"dept/{lead}",
        EventType.department_action,
        appeal_id,
        DepartmentAction(appeal_id=appeal_id, department=lead, action="accept"),
    )
    assert not await refused(own, department_actions_topic(lead), encode(accept))
    assert wait_status(stack, appeal_id, "accepted")
    other = next(d.code for d in load_city(stack.config_dir).departments if d.code != lead)
    spoof = make_event(
        f"dept/{lead}",
        EventType.department_action,
        appeal_id,
        DepartmentAction(appeal_id=appeal_id, department=other, action="transfer", target_department=lead),
    )
    for topic in (department_actions_topic(other), APPEALS_ACTIONS, APPEALS_LIFECYCLE, APPEALS_SUBMITTED):
        assert await refused(own, topic, encode(spoof)), topic
    assert await refused(stack.kafka_access("sla"), APPEALS_LIFECYCLE, encode(spoof)), (
        "only router writes the lifecycle"
    )
    line, env = kcat.command(own, "-C", "-t", department_topic(other), "-o", "beginning", "-e", "-q")
    read = subprocess.run(line, capture_output=True, text=True, timeout=60, env=env)
    assert read.returncode != 0 and "Topic authorization failed" in read.stderr, read.stderr[-500:]


def test_no_listener_of_the_embedded_kafka_answers_a_client_that_did_not_authenticate(stack):
    assert not answered_anonymously(stack.kafka_port, "metadata")
    assert not answered_anonymously(stack.kafka_controller_port, "describe_cluster")


def test_broker_frozen_gives_503_and_a_retry_makes_one_appeal(stack):
    body = appeal_body()
    before = listed(stack)
    os.kill(stack.kafka.pid, signal.SIGSTOP)
    try:
        frozen = post(stack, body)
        assert listed(stack) == before, "an appeal answered 503 is not listed to anyone"
    finally:
        os.kill(stack.kafka.pid, signal.SIGCONT)
    assert frozen.status_code == 503, frozen.text
    assert frozen.headers["retry-after"].isdigit()
    assert frozen.headers["content-type"] == "application/problem+json"
    deadline = time.monotonic() + 60
    while True:
        retry = post(stack, body)
        if retry.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert retry.status_code == 202, retry.text
    assert listed(stack) - before == {retry.json()["appeal_id"]}, "listed once the retry went through"
    wait_routed(stack, retry.json()["appeal_id"])
    by_ref = httpx.get(
        stack.url("router") + f"/v1/appeals/{retry.json()['appeal_id']}", headers={"X-Api-Key": stack.keys["operator"]}
    ).json()
    assert by_ref["channel"] == "wechat"


async def test_router_killed_mid_run_routes_every_appeal_once(stack):
    ids = []
    for i in range(30):
        r = post(stack, appeal_body())
        assert r.status_code == 202
        ids.append(r.json()["appeal_id"])
        if i == 10:
            stack.kill_service("router")
    stack.start_service("router")
    stack.wait_ready("router")
    for appeal_id in ids:
        wait_routed(stack, appeal_id, timeout=60)
    await assert_routed_once(stack.kafka_access(), ids)


def test_logs_and_metrics_hold_no_personal_data(stack):
    body = appeal_body(contact={"name": "Zhang Sanfeng", "phone": "13912345678"})
    assert post(stack, body).status_code == 202
    wait_routed(stack, post(stack, body).json()["appeal_id"])
    time.sleep(3)  # stats rereads its counts every 2 s
    secrets = ("13912345678", "Zhang Sanfeng", body["enterprise"]["uscc"])
    for name in stack.processes:
        text = (stack.data_dir / f"{name}.log").read_text()
        metrics = httpx.get(stack.url(name) + "/metrics", timeout=30).text
        assert "appeals_" in metrics or "http_request" in metrics
        if name in ("intake", "router"):
            # What an appeal costs the database, counted by the driver: the appeal was stored here.
            inserts = re.search(
                r'^appeals_mongodb_commands_total\{collection="appeals",command="insert"\} ([0-9.]+)$',
                metrics,
                re.MULTILINE,
            )
            assert inserts and float(inserts.group(1)) >= 1, name
        for secret in secrets:
            assert secret not in text, f"{name}'s log"
            assert secret not in metrics, f"{name}'s metrics"


def closed(stack, body) -> tuple[str, str]:
    """Submit `body`, have its department accept and resolve it and its company confirm: (appeal id, status token)."""
    accepted = post(stack, body).json()
    appeal_id, token = accepted["appeal_id"], accepted["status_token"]
    lead = wait_routed(stack, appeal_id)["lead"]
    for action in ({"action": "accept"}, {"action": "resolve", "resolution": "Deferred by six months."}):
        r = httpx.post(
            stack.url("router") + f"/v1/appeals/{appeal_id}/actions",
            json=action,
            headers={"X-Api-Key": stack.keys[f"department:{lead}"]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    wait_status(stack, appeal_id, "resolved")
    follow = stack.url("intake") + f"/v1/appeals/{appeal_id}"
    eventually(
        lambda: httpx.get(follow, headers={"X-Status-Token": token}, timeout=30).json()["status"] == "resolved",
        "the company's page showing the resolution",
    )
    feedback = httpx.post(
        stack.url("intake") + f"/v1/appeals/{appeal_id}/feedback",
        json={"resolved": True, "satisfaction": 5},
        headers={"X-Status-Token": token},
        timeout=30,
    )
    assert feedback.status_code == 202, feedback.text
    eventually(
        lambda: httpx.get(follow, headers={"X-Status-Token": token}, timeout=30).json()["status"] == "closed",
        "intake knowing the appeal closed",
    )
    return appeal_id, token


def contact_of(stack, appeal_id: str, token: str) -> dict:
    return httpx.get(
        stack.url("intake") + f"/v1/appeals/{appeal_id}/contact", headers={"X-Status-Token": token}, timeout=30
    ).json()


def eventually(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


# The topics kept for good: none may hold a contact, a token, a code or a link (docs/privacy.md).
KEPT_FOR_GOOD = [
    t.name for t in TOPICS if topic_config(t.name).get("retention.ms") == "-1" and t.name != APPEALS_CONTACTS
]


async def test_a_closed_appeal_s_contact_is_erased_everywhere_when_its_retention_ends(stack):
    body = appeal_body(contact={"name": "Ouyang Feng", "phone": "13987650001", "email": "ouyang@example.org"})
    appeal_id, token = closed(stack, body)
    assert contact_of(stack, appeal_id, token)["contact"]["phone"] == "+8613987650001"
    erased = eventually(lambda: contact_of(stack, appeal_id, token)["erased_at"], "intake erasing the contact", 90)
    assert erased and contact_of(stack, appeal_id, token)["contact"] is None
    mongo = Databases(stack)
    try:
        router_doc = await eventually_async(lambda: mongo.router.appeals.find_one({"_id": appeal_id, "contact": None}))
        assert router_doc["contact_erased"] and not await mongo.router.contacts.find_one({"_id": appeal_id})
        notify_doc = await eventually_async(
            lambda: mongo.notify.appeals.find_one({"_id": appeal_id, "contact_erased": True})
        )
        assert "contact" not in notify_doc and "follow_url" not in notify_doc
        async for notice in mongo.notify.notices.find({"appeal_id": appeal_id}):
            assert "13987650001" not in json.dumps(notice, default=str), notice["_id"]
    finally:
        await mongo.close()
    # Kafka: the contacts topic's last word on the appeal is a tombstone; no topic kept for good holds a trace.
    contacts = await raw_records(stack, APPEALS_CONTACTS, appeal_id)
    assert contacts[-1] is None and json.loads(contacts[-2])["type"] == "appeal.contact_erased.v1"
    for name in KEPT_FOR_GOOD:
        for value in await raw_records(stack, name, appeal_id):
            text = (value or b"").decode()
            for secret in ("13987650001", "Ouyang Feng", "ouyang@example.org", token):
                assert secret not in text, (name, secret)


async def test_an_admin_erases_a_company_s_contacts_closed_ones_now_open_ones_at_close_and_it_is_on_record(stack):
    uscc = valid_uscc(4242)
    done, done_token = closed(stack, appeal_body(enterprise={"uscc": uscc}, channel_ref=f"erase-a-{time.time_ns()}"))
    still = post(stack, appeal_body(enterprise={"uscc": uscc}, channel_ref=f"erase-b-{time.time_ns()}")).json()
    wait_routed(stack, still["appeal_id"])
    admin = {"X-Api-Key": stack.keys["admin"]}
    refused = httpx.post(
        stack.url("intake") + f"/v1/companies/{uscc}/erasure", headers={"X-Api-Key": stack.keys["operator"]}
    )
    assert refused.status_code == 403
    r = httpx.post(stack.url("intake") + f"/v1/companies/{uscc}/erasure", headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    entry = r.json()
    assert entry["appeals"] == [done] and entry["at_close"] == [still["appeal_id"]] and entry["erased"] == 1
    assert contact_of(stack, done, done_token)["contact"] is None
    assert contact_of(stack, still["appeal_id"], still["status_token"])["contact"], "its department still needs it"
    reasons = [
        json.loads(v)["data"]["reason"]
        for v in await raw_records(stack, APPEALS_CONTACTS, done)
        if v and b"erased" in v
    ]
    assert reasons == ["request"]
    log = (stack.data_dir / "intake.log").read_text()
    assert entry["erasure_id"] in log and uscc not in log, "on record, by whom and how many, never the company"


async def test_the_company_corrects_its_contact_and_only_others_reading_it_are_on_record(stack):
    accepted = post(stack, appeal_body()).json()
    appeal_id, token = accepted["appeal_id"], accepted["status_token"]
    lead = wait_routed(stack, appeal_id)["lead"]
    corrected = httpx.put(
        stack.url("intake") + f"/v1/appeals/{appeal_id}/contact",
        json={"name": "Li Wei", "phone": "13987650002"},
        headers={"X-Status-Token": token},
        timeout=30,
    )
    assert corrected.status_code == 202, corrected.text
    assert contact_of(stack, appeal_id, token)["contact"]["phone"] == "+8613987650002"

    def router_sees(key: str) -> dict:
        return httpx.get(
            stack.url("router") + f"/v1/appeals/{appeal_id}", headers={"X-Api-Key": key}, timeout=30
        ).json()

    eventually(lambda: router_sees(stack.keys[f"department:{lead}"])["contact"]["phone"] == "+8613987650002", "router")
    log = stack.data_dir / "router.log"

    def reads_on_record() -> int:
        lines = [json.loads(line) for line in read_lines(log) if "a contact was read" in line]
        return len([entry for entry in lines if entry.get("appeal_id") == appeal_id])

    before = reads_on_record()
    router_sees(stack.keys[f"department:{lead}"])
    assert reads_on_record() == before, "its department reads it as its work"
    assert router_sees(stack.keys["operator"])["contact"]["phone"] == "+8613987650002"
    assert reads_on_record() == before + 1, "an operator's read is on record"
    assert not any("13987650002" in line for line in read_lines(log))


def read_lines(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("{")]


async def eventually_async(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s")


async def raw_records(stack, topic: str, key: str) -> list[bytes | None]:
    """Every value of `topic` under `key`, in order, tombstones as None."""
    access = stack.kafka_access()
    partitions = await partitions_of(access, [topic])
    consumer = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[bytes | None] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(*partitions, timeout_ms=500)).values():
                found += [r.value for r in records if r.key == key.encode()]
        return found
    finally:
        await consumer.stop()


async def test_one_trace_runs_from_the_request_through_every_service(stack):
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    trace = "0af7651916cd43dd8448eb211c80319c"
    r = httpx.post(
        stack.url("intake") + "/v1/appeals",
        json=appeal_body(),
        headers={"X-Api-Key": stack.keys["channel:wechat"], "traceparent": caller},
        timeout=30,
    )
    assert r.status_code == 202 and r.headers["traceparent"] == caller
    appeal_id = r.json()["appeal_id"]
    lead = wait_routed(stack, appeal_id)["lead"]
    mine = lambda e: e.get("subject") == appeal_id  # noqa: E731
    events = {
        "intake": await read_topic(stack.kafka_access(), "appeals.submitted.v2", mine),
        "router": await read_topic(stack.kafka_access(), "appeals.lifecycle.v1", mine)
        + await read_topic(stack.kafka_access(), f"dept.{lead}.v1", mine),
        # The three clocks routing started, reported in one event.
        "sla": await read_topic(stack.kafka_access(), "sla.events.v2", mine),
        "notify": await read_topic(stack.kafka_access(), "notify.deliveries.v1", mine, timeout=60),
    }
    for service, found in events.items():
        assert found and {e["traceparent"].split("-")[1] for e in found} == {trace}, service
    spans = [e["traceparent"].split("-")[2] for found in events.values() for e in found]
    assert len(set(spans)) == len(spans), "each event is its own span in the one trace"
    for service in ("intake", "router", "sla", "notify"):
        lines = [
            json.loads(line)
            for line in (stack.data_dir / f"{service}.log").read_text().splitlines()
            # An operator's reading of the appeal (this test's polling) is a request of its own, in its own trace.
            if line.startswith("{") and appeal_id in line and "a contact was read" not in line
        ]
        assert lines and all(line.get("trace_id") == trace for line in lines), (service, lines[:3])
