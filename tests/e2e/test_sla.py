"""SLA clocks on the running stack: targets of seconds (the test_fast profile), two sla replicas, kill -9."""

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from libs.contract import APPEALS_COMPANY
from libs.events import CompanyInfoProvided
from libs.kafka.publishing import encode, make_event
from libs.kinds import EventType
from tests.helpers import appeal_body, fresh_stack, read_topic

# test_fast: scope 4 s, response 8 s, resolution 12 s; warnings at 50 % and 80 %.
ALL_THRESHOLDS = {(clock, level) for clock in ("scope", "response", "resolution") for level in (50, 80, 100)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Intake, router, notify and two sla replicas (stats is not needed here); every appeal gets test_fast."""
    s = fresh_stack(
        tmp_path_factory,
        "sla-stack",
        fast_sla=True,
        env={"NOTIFY_CLAIM_SECONDS": "3"},
        only=("intake", "router", "sla", "notify"),
    )
    s.start_service("sla", replica=2)
    s.wait_ready("sla-2")
    yield s
    s.stop()


def submit(stack) -> str:
    r = httpx.post(
        stack.url("intake") + "/v1/appeals",
        json=appeal_body(),
        headers={"X-Api-Key": stack.keys["channel:web"]},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    return r.json()["appeal_id"]


def sla_view(stack, appeal_id, key="operator"):
    return httpx.get(stack.url("sla") + f"/v1/appeals/{appeal_id}/sla", headers={"X-Api-Key": stack.keys[key]})


async def lead_of(stack, appeal_id) -> str:
    """The department the appeal's first clocks hold to account, once sla has started them."""
    deadline = time.monotonic() + 20
    while sla_view(stack, appeal_id).status_code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return sla_view(stack, appeal_id).json()["clocks"][0]["department"]


async def sla_events(stack, appeal_ids, types, count, timeout=40.0):
    wanted = set(appeal_ids)
    return await read_topic(
        stack.kafka_access(),
        "sla.events.v2",
        lambda e: e.get("subject") in wanted and e.get("type") in types,
        count=count,
        timeout=timeout,
        unpack=True,
    )


def thresholds(events):
    """(appeal, clock, level) -> distinct event ids; one id per threshold means it fired once."""
    ids: dict[tuple, set] = {}
    for e in events:
        ids.setdefault((e["subject"], e["data"]["clock"], e["data"]["level"]), set()).add(e["id"])
    return ids


async def test_unanswered_appeal_warns_then_breaches_every_clock_once(stack):
    appeal_id = submit(stack)
    events = await sla_events(stack, [appeal_id], {"sla.warning.v1", "sla.breached.v1"}, count=9)
    fired = thresholds(events)
    assert {(c, lv) for _, c, lv in fired} == ALL_THRESHOLDS
    assert all(len(ids) == 1 for ids in fired.values()), fired
    lead = next(e["data"]["department"] for e in events if e["data"]["clock"] == "scope")
    copies = await read_topic(
        stack.kafka_access(),
        f"dept.{lead}.v1",
        lambda e: e.get("subject") == appeal_id and e["type"].startswith("sla."),
        count=9,
    )
    assert {(e["data"]["clock"], e["data"]["level"]) for e in copies} == ALL_THRESHOLDS
    view = sla_view(stack, appeal_id)
    assert view.status_code == 200
    clocks = {c["clock"]: c for c in view.json()["clocks"]}
    assert all(c["state"] == "breached" and c["breached"] and c["remaining_seconds"] < 0 for c in clocks.values())
    assert sla_view(stack, appeal_id, key="department:tax").status_code == 403

    # Notify, in the same stack, told the company and the supervisor through the local receivers.
    mail_log = stack.data_dir / "outbox" / "email.jsonl"
    deadline = time.monotonic() + 30
    subjects: list[str] = []
    while time.monotonic() < deadline:
        if mail_log.exists():
            subjects = [json.loads(line)["subject"] for line in mail_log.read_text().splitlines()]
            if sum(appeal_id in s and "超时" in s for s in subjects) >= 3 and any(
                appeal_id in s and "已受理" in s for s in subjects
            ):
                break
        await asyncio.sleep(0.5)
    assert any(appeal_id in s and "已受理" in s for s in subjects), "the company's acknowledgement"
    assert sum(appeal_id in s and "超时" in s for s in subjects) >= 3, "breach mail to handler, head and supervisor"


async def test_answers_stop_clocks_and_information_requests_pause_resolution(stack):
    appeal_id = submit(stack)
    lead = await lead_of(stack, appeal_id)
    act = stack.url("router") + f"/v1/appeals/{appeal_id}/actions"
    headers = {"X-Api-Key": stack.keys[f"department:{lead}"]}
    assert httpx.post(act, json={"action": "accept", "note": "we call the bank today"}, headers=headers).is_success
    assert httpx.post(act, json={"action": "request_info", "note": "send the contract"}, headers=headers).is_success
    paused = await sla_events(stack, [appeal_id], {"sla.paused.v1"}, count=1)
    assert paused[0]["data"]["clock"] == "resolution"
    await asyncio.sleep(1.0)
    view = {c["clock"]: c for c in sla_view(stack, appeal_id).json()["clocks"]}
    assert view["scope"]["state"] == "met" and view["response"]["state"] == "met"
    assert view["resolution"]["paused"] and view["resolution"]["due_at"] is None
    left_while_paused = view["resolution"]["remaining_seconds"]
    await asyncio.sleep(1.0)
    again = {c["clock"]: c for c in sla_view(stack, appeal_id).json()["clocks"]}
    assert again["resolution"]["remaining_seconds"] == left_while_paused, "a paused clock does not count"

    producer = AIOKafkaProducer(**stack.kafka_access().client_options(), acks="all")
    await producer.start()
    try:
        info = make_event(
            "appeals/intake",
            EventType.company_info_provided,
            appeal_id,
            CompanyInfoProvided(appeal_id=appeal_id, information="contract attached"),
        )
        await producer.send_and_wait(APPEALS_COMPANY, encode(info), key=appeal_id.encode())
    finally:
        await producer.stop()
    resumed = await sla_events(stack, [appeal_id], {"sla.resumed.v1"}, count=1)
    assert resumed[0]["data"]["remaining_seconds"] == pytest.approx(left_while_paused, abs=0.5)
    assert httpx.post(act, json={"action": "resolve", "resolution": "deferred"}, headers=headers).is_success
    met = await sla_events(stack, [appeal_id], {"sla.met.v1"}, count=3)
    assert {e["data"]["clock"] for e in met} == {"scope", "response", "resolution"}
    warned = await sla_events(stack, [appeal_id], {"sla.breached.v1"}, count=1, timeout=3)
    assert {e["data"]["clock"] for e in warned} <= {"resolution"}, "answered clocks never breach"


async def test_at_risk_and_calendars(stack):
    appeal_id = submit(stack)
    lead = await lead_of(stack, appeal_id)
    risky = httpx.get(
        stack.url("sla") + "/v1/sla/at-risk",
        params={"within": "1h"},
        headers={"X-Api-Key": stack.keys[f"department:{lead}"]},
    ).json()
    assert {c["department"] for c in risky} == {lead}
    assert appeal_id in {c["clock_id"].split(":")[0] for c in risky}
    forbidden = httpx.get(
        stack.url("sla") + "/v1/sla/at-risk",
        params={"department": "tax"},
        headers={"X-Api-Key": stack.keys[f"department:{lead}"]},
    )
    assert forbidden.status_code == 403 or lead == "tax"
    calendars = {c["name"]: c for c in httpx.get(stack.url("sla") + "/v1/calendars").json()}
    assert calendars["default"]["working_day_hours"] == 7
    metrics = httpx.get(stack.url("sla") + "/metrics").text
    assert "sla_clocks_running" in metrics and "sla_fire_lag_seconds_bucket" in metrics


async def test_two_replicas_and_a_kill_9_fire_every_threshold_exactly_once(stack):
    ids = [submit(stack) for _ in range(20)]
    await asyncio.sleep(2.5)  # the first scope warnings are falling due
    stack.kill_service("sla")
    await asyncio.sleep(1.0)
    stack.start_service("sla")
    stack.wait_ready("sla")
    events = await sla_events(stack, ids, {"sla.warning.v1", "sla.breached.v1"}, count=9 * len(ids), timeout=60)
    fired = thresholds(events)
    per_appeal = Counter(appeal for appeal, _, _ in fired)
    assert per_appeal == {appeal_id: 9 for appeal_id in ids}, "every threshold of every clock fired"
    duplicates = {k: v for k, v in fired.items() if len(v) > 1}
    assert duplicates == {}, "no threshold fired twice"
    breaches = sum(
        float(line.split()[-1])
        for name in ("sla", "sla-2")
        for line in httpx.get(stack.url(name) + "/metrics").text.splitlines()
        if line.startswith("sla_breaches_total{")
    )
    assert breaches >= 1
    assert json.loads((stack.data_dir / "stack.json").read_text())["services"]["sla"]


@pytest.mark.timeout(600)
async def test_notify_killed_mid_run_loses_nothing_and_resends_under_the_same_id(stack):
    ids = [submit(stack) for _ in range(10)]
    stack.kill_service("notify")
    await asyncio.sleep(0.5)
    stack.start_service("notify")
    stack.wait_ready("notify")
    mail_log = stack.data_dir / "outbox" / "email.jsonl"
    # The module's earlier tests leave notify hundreds of events to work through first (three
    # channels each); on two busy cores that takes minutes, so the wait is generous.
    deadline = time.monotonic() + 300
    acks: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        acks = {}
        for line in mail_log.read_text().splitlines() if mail_log.exists() else []:
            mail = json.loads(line)
            for appeal_id in ids:
                if appeal_id in mail["subject"] and "已受理" in mail["subject"]:
                    acks.setdefault(appeal_id, set()).add(mail["delivery"])
        if len(acks) == len(ids):
            break
        await asyncio.sleep(0.5)
    assert set(acks) == set(ids), "every company got its acknowledgement after the crash"
    assert all(len(deliveries) == 1 for deliveries in acks.values()), "one notification each; a resend keeps its id"
