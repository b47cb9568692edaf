"""The urging ladder's last level (督办) through notify on the real broker and database: an `sla.reported.v2`
carrying an `sla.urged.v1` report tells the department's leadership and the city's supervisor, once each."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from asgi_lifespan import LifespanManager

from devstack import servers
from devstack.sinks import Sinks
from libs.config import load_city
from libs.contract import SLA_EVENTS_V2
from libs.events import SlaClockChanged
from libs.ids import new_id
from libs.kafka.publishing import make_event, publish
from libs.kinds import ClockKind, ClockState, EventType
from libs.settings import PROJECT_ROOT
from services.notify.app import create_app
from services.notify.settings import NotifySettings
from tests.helpers import MovableClock, packed

DEPT = "futian-finance"
CITY = load_city(PROJECT_ROOT / "config")
CITY_SUPERVISOR = "city:supervisor"
SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)  # a Tuesday morning: nothing is held
SUBSCRIBED = "duban.en@example.org"  # the city supervisor's own address, by its subscription


@pytest.fixture(scope="module")
async def notify(real_servers, demo_keys):
    """Notify in-process with its clock in office hours and sinks for every channel; the city supervisor
    subscribed (by an admin) to read in English at an address of its own."""
    keys, key_file = demo_keys
    sinks = Sinks(*servers.free_ports(2))
    sinks.start()
    clock = MovableClock()
    clock.advance(OFFICE_TIME - clock.now())
    run = new_id().lower()
    outbox = f"http://127.0.0.1:{sinks.http_port}"
    settings = NotifySettings(
        kafka_bootstrap_servers=real_servers.bootstrap,
        mongodb_uri=real_servers.mongodb_uri,
        mongodb_database=f"notify_{run}",
        consumer_group=f"notify-{run}",
        api_keys_file=key_file,
        smtp_port=sinks.smtp_port,
        sms_endpoint=outbox + "/sms",
        wechat_endpoint=outbox + "/wechat",
        retry_base_seconds=0.05,
        tick_seconds=0.1,
    )
    app = create_app(settings, clock=clock)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://notify") as client,
    ):
        subscription = {"email": SUBSCRIBED, "language": "en"}
        path = f"/v1/subscriptions/{CITY_SUPERVISOR}"
        refused = await client.put(path, headers={"X-Api-Key": keys[f"department:{DEPT}"]}, json=subscription)
        assert refused.status_code == 403, "a department's key does not manage the city's supervisor"
        r = await client.put(path, headers={"X-Api-Key": keys["admin"]}, json=subscription)
        assert r.status_code == 200, r.text
        r = await client.get(path, headers={"X-Api-Key": keys["operator"]})
        assert (r.status_code, r.json()["email"]) == (200, SUBSCRIBED)
        yield {"client": client, "sinks": sinks, "runtime": app.state.runtime, "keys": keys, "clock": clock}
    sinks.stop()


def level_3(appeal_id: str, at: datetime):
    """sla's report of the resolution clock reaching 督办, five working days and more after its due time."""
    due = datetime(2026, 11, 16, 18, 0, tzinfo=SHANGHAI).astimezone(UTC)
    data = SlaClockChanged(
        appeal_id=appeal_id,
        clock_id=f"{appeal_id}:resolution:1",
        clock=ClockKind.resolution,
        department=DEPT,
        state=ClockState.breached,
        target="72h",
        calendar="default",
        sla_profile="standard_72h",
        started_at=due - timedelta(hours=72),
        due_at=due,
        fired_at=at,
        urge_level=3,
    )
    return make_event("appeals/sla", EventType.sla_urged, appeal_id, data, time=at)


async def log_of(n, appeal_id, want, key="operator", timeout=20.0):
    """The delivery log once `want(log)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        r = await n["client"].get(
            "/v1/notifications", params={"appeal_id": appeal_id}, headers={"X-Api-Key": n["keys"][key]}
        )
        assert r.status_code == 200, r.text
        entries = r.json()
        if want(entries) or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.1)


def delivered(entries):
    return sorted((e["recipient"], e["audience"], e["channel"]) for e in entries if e["status"] == "delivered")


async def test_a_level_3_report_tells_the_leadership_and_the_city_supervisor_once_each_and_a_replay_nothing(notify):
    appeal_id = new_id()
    urged = level_3(appeal_id, notify["clock"].now().astimezone(UTC))
    report = packed(urged)
    await publish(notify["runtime"].broker, SLA_EVENTS_V2, report)
    told = [
        (f"{DEPT}:leadership", "leadership", "email"),
        (f"{DEPT}:leadership", "leadership", "wechat"),
        (CITY_SUPERVISOR, "city_supervisor", "email"),
        (CITY_SUPERVISOR, "city_supervisor", "wechat"),
    ]
    entries = await log_of(notify, appeal_id, lambda e: delivered(e) == sorted(told))
    assert delivered(entries) == sorted(told), "the ladder's level 3 audiences, on their staff channels; no SMS"
    assert {e["event_type"] for e in entries} == {"sla.urged.v1"}

    def mails():
        return [m for m in notify["sinks"].of("email") if m["delivery"].startswith(f"{urged.id}:")]

    leadership = [m for m in mails() if m["to"] == [CITY.department(DEPT).leadership.email]]
    city = [m for m in mails() if m["to"] == [SUBSCRIBED]]
    assert len(leadership) == 1 and len(city) == 1 and len(mails()) == 2
    assert leadership[0]["subject"] == f"督办：诉求 {appeal_id} 办结时限已超时7天16小时"
    assert "（截止时间 2026-11-16 18:00）" in leadership[0]["body"], "the missed due time, in the city's time"
    assert city[0]["subject"] == f"Supervision (督办): appeal {appeal_id}'s resolution time is 7 days 16 hours overdue"

    # sla publishes the same report again after a crash, alone or packed anew with another id: nothing more.
    await publish(notify["runtime"].broker, SLA_EVENTS_V2, report)
    await publish(notify["runtime"].broker, SLA_EVENTS_V2, packed(urged))
    await asyncio.sleep(3)
    again = await log_of(notify, appeal_id, lambda e: True)
    assert delivered(again) == sorted(told) and len(again) == len(told)
    assert len(mails()) == 2
    wechat = [w for w in notify["sinks"].of("wechat") if (w["delivery"] or "").startswith(f"{urged.id}:")]
    assert len(wechat) == 2

    # The delivery log shows a department its own people only: not the city's supervisor.
    own = await log_of(notify, appeal_id, lambda e: True, key=f"department:{DEPT}")
    assert {e["recipient"] for e in own} == {f"{DEPT}:leadership"}
    office = await log_of(notify, appeal_id, lambda e: True, key=f"department:{CITY.coordinating_office}")
    assert office == []
