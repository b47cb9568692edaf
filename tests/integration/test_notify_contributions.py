"""Co-handlers' contributions through notify on the real broker and database: an `appeal.contributed.v1` tells the
lead's handler once, and two co-handlers' contribution breaches on one appeal reach each its own department."""

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
from libs.contract import APPEALS_LIFECYCLE, SLA_EVENTS_V2
from libs.events import AppealChanged, SlaClockChanged
from libs.ids import new_id
from libs.kafka.publishing import make_event, publish
from libs.kinds import AppealStatus, ClockKind, ClockState, EventType
from libs.settings import PROJECT_ROOT
from services.notify.app import create_app
from services.notify.settings import NotifySettings
from services.sla.clocks import clock_id
from services.sla.service import threshold_event_id
from tests.helpers import MovableClock, packed

LEAD, TAX, HRSS = "futian-finance", "futian-tax", "futian-hrss"
CITY = load_city(PROJECT_ROOT / "config")
SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)  # a Tuesday morning: nothing is held
PART = "The deferral of the tax payment applies from December."
LINK = "https://files.example.org/deferral.pdf"


@pytest.fixture(scope="module")
async def notify(real_servers, demo_keys):
    """Notify in-process with its clock in office hours and sinks for every channel."""
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
        yield {"client": client, "sinks": sinks, "runtime": app.state.runtime, "keys": keys, "clock": clock}
    sinks.stop()


async def log_of(n, appeal_id, want, timeout=20.0):
    """The delivery log (as an operator reads it) once `want(log)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        r = await n["client"].get(
            "/v1/notifications", params={"appeal_id": appeal_id}, headers={"X-Api-Key": n["keys"]["operator"]}
        )
        assert r.status_code == 200, r.text
        entries = r.json()
        if want(entries) or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.1)


def delivered(entries):
    return sorted((e["recipient"], e["channel"]) for e in entries if e["status"] == "delivered")


def sent(n, kind: str, event_id: str):
    return [m for m in n["sinks"].of(kind) if (m["delivery"] or "").startswith(f"{event_id}:")]


async def test_a_contribution_tells_the_leads_handler_once_and_a_replay_nothing_more(notify):
    appeal_id = new_id()
    at = notify["clock"].now().astimezone(UTC)
    data = AppealChanged(
        appeal_id=appeal_id,
        status=AppealStatus.accepted,
        sequence=4,
        department=LEAD,
        cohandlers=[TAX],
        category="financing",
        channel="web",
        district="futian",
        size_band="micro",
        sla_profile="coordinated_72h",
        actor=TAX,
        clerk="Wei Hao",
        note=PART,
        attachments=[LINK],
        submitted_at=at - timedelta(days=2),
    )
    event = make_event("appeals/router", EventType.appeal_contributed, appeal_id, data, time=at)
    await publish(notify["runtime"].broker, APPEALS_LIFECYCLE, event)
    told = [(f"{LEAD}:handler", "email"), (f"{LEAD}:handler", "wechat")]
    entries = await log_of(notify, appeal_id, lambda e: delivered(e) == told)
    assert delivered(entries) == told, "the lead's handler on its staff channels; nobody else, no SMS"
    assert {e["event_type"] for e in entries} == {"appeal.contributed.v1"}
    [mail] = sent(notify, "email", event.id)
    assert mail["to"] == [CITY.department(LEAD).handler.email]
    assert mail["subject"] == f"{CITY.department(TAX).name}提交了诉求 {appeal_id} 的协办意见"
    assert "（Wei Hao）作为协办部门" in mail["body"] and f"意见：{PART}" in mail["body"] and LINK in mail["body"]

    # Redelivered (a consumer that crashed before committing): nothing more.
    await publish(notify["runtime"].broker, APPEALS_LIFECYCLE, event)
    await asyncio.sleep(3)
    again = await log_of(notify, appeal_id, lambda e: True)
    assert delivered(again) == told and len(again) == len(told)
    assert len(sent(notify, "email", event.id)) == 1 and len(sent(notify, "wechat", event.id)) == 1


async def test_two_co_handlers_contribution_breaches_on_one_appeal_each_reach_their_own_department(notify):
    appeal_id = new_id()
    due = (notify["clock"].now() - timedelta(hours=16)).astimezone(UTC)
    breaches = []
    for generation, code in ((1, TAX), (2, HRSS)):
        cid = clock_id(appeal_id, ClockKind.contribution, generation)
        data = SlaClockChanged(
            appeal_id=appeal_id,
            clock_id=cid,
            clock=ClockKind.contribution,
            department=code,
            state=ClockState.breached,
            level=100,
            target="3wd",
            calendar="default",
            sla_profile="coordinated_72h",
            started_at=due - timedelta(days=3),
            due_at=due,
            fired_at=due,
        )
        breaches.append(
            make_event(
                "appeals/sla", EventType.sla_breached, appeal_id, data, time=due, id=threshold_event_id(cid, 100, due)
            )
        )
    report = packed(*breaches)
    await publish(notify["runtime"].broker, SLA_EVENTS_V2, report)
    told = sorted(
        (f"{code}:{role}", channel)
        for code in (TAX, HRSS)
        for role in ("handler", "head", "supervisor")
        for channel in ("email", "wechat", "sms")
    )
    entries = await log_of(notify, appeal_id, lambda e: delivered(e) == told)
    assert delivered(entries) == told, "each co-handler's people, on every channel a breach takes"
    for breach, code in zip(breaches, (TAX, HRSS), strict=True):
        mails = sent(notify, "email", breach.id)
        assert sorted(m["to"][0] for m in mails) == sorted(
            getattr(CITY.department(code), role).email for role in ("handler", "head", "supervisor")
        )
        assert {m["subject"] for m in mails} == {f"超时警告：诉求 {appeal_id}（协办意见）已超时"}

    await publish(notify["runtime"].broker, SLA_EVENTS_V2, report)
    await asyncio.sleep(3)
    again = await log_of(notify, appeal_id, lambda e: True)
    assert delivered(again) == told and len(again) == len(told)
