"""Notify on the real broker and database, delivering to a real SMTP server and real HTTP receivers."""

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiohttp import web
from asgi_lifespan import LifespanManager

from devstack import servers
from devstack.sinks import Sinks
from libs.contract import (
    APPEALS_LIFECYCLE,
    APPEALS_SUBMITTED,
    COMPANY_MESSAGES,
    ENTERPRISES,
    NOTIFY_DELIVERIES,
    SLA_EVENTS,
    dead_letter_topic,
)
from libs.events import (
    AppealChanged,
    AppealSubmitted,
    CompanyMessage,
    Contact,
    Enterprise,
    EnterpriseChanged,
    SlaClockChanged,
)
from libs.ids import new_id
from libs.kafka.publishing import make_event, publish
from libs.kinds import AppealStatus, ClockKind, ClockState, EventType
from services.notify import adopt, dispatch, notices, planning
from services.notify.app import create_app
from services.notify.book import Memory
from services.notify.settings import NotifySettings
from tests.helpers import MovableClock, read_topic, valid_uscc

DEPT = "futian-finance"  # default calendar: offices open 09:00-12:00, 14:00-18:00
SECRET = "a-webhook-secret-of-some-length"
OFFICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Tuesday morning
LOOPBACK = [ip_network("127.0.0.0/8"), ip_network("::1/128")]
HOOKED = "baoan-approvals"  # a department whose webhooks only the webhook tests below subscribe


@pytest.fixture(scope="module")
async def notify(real_servers, demo_keys):
    """Notify in-process with its clock in office hours, sinks for every channel, staff subscribed by webhook."""
    keys, key_file = demo_keys
    sinks = Sinks(*servers.free_ports(2))
    sinks.start()
    for role in ("handler", "head", "supervisor"):
        sinks.add_secret(role, SECRET)
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
        webhook_allowed_networks=LOOPBACK,  # the sinks and the receivers here are on loopback
    )
    app = create_app(settings, clock=clock)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://notify") as client,
    ):
        admin = {"X-Api-Key": keys["admin"]}
        for role in ("handler", "head", "supervisor"):
            r = await client.put(
                f"/v1/subscriptions/{DEPT}:{role}",
                headers=admin,
                json={"webhook_url": f"{outbox}/webhook/{role}", "webhook_secret": SECRET},
            )
            assert r.status_code == 200, r.text
        yield {
            "client": client,
            "sinks": sinks,
            "runtime": app.state.runtime,
            "keys": keys,
            "clock": clock,
            "bootstrap": real_servers.bootstrap,
        }
    sinks.stop()


def submitted(appeal_id: str, channel: str = "web", uscc: str | None = None) -> AppealSubmitted:
    return AppealSubmitted(
        appeal_id=appeal_id,
        channel=channel,
        channel_ref=f"ref-{appeal_id}",
        enterprise=Enterprise(
            uscc=uscc or valid_uscc(), name="Lanhai", employees=20, industry="internet", district="futian"
        ),
        contact=Contact(name="Li Wei", phone="13800138000", email="liwei@example.com", wechat_openid="o-company-1"),
        category="financing",
        size_band="micro",
        title="Loan due",
        description="Need deferred repayment",
        submitted_at=datetime.now(UTC),
    )


def changed(appeal_id: str, status: AppealStatus, sequence: int, **extra) -> AppealChanged:
    return AppealChanged(
        appeal_id=appeal_id,
        status=status,
        sequence=sequence,
        department=DEPT,
        category="financing",
        channel="web",
        district="futian",
        size_band="micro",
        sla_profile="standard_72h",
        submitted_at=datetime.now(UTC),
        **extra,
    )


def sla(appeal_id: str, level: int) -> SlaClockChanged:
    now = datetime.now(UTC)
    return SlaClockChanged(
        appeal_id=appeal_id,
        clock_id=f"{appeal_id}:scope:1",
        clock=ClockKind.scope,
        department=DEPT,
        state=ClockState.breached if level == 100 else ClockState.running,
        level=level,
        target="6h",
        calendar="default",
        sla_profile="standard_72h",
        started_at=now,
        due_at=now + timedelta(hours=1),
        fired_at=now,
    )


async def send(n, topic, type_, data, event=None):
    event = event or make_event("test", type_, data.appeal_id, data, time=n["clock"].now())
    await publish(n["runtime"].broker, topic, event)
    return event


async def log_of(n, appeal_id, want, timeout=15.0):
    """The delivery log once `want(log)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        r = await n["client"].get(
            "/v1/notifications", params={"appeal_id": appeal_id}, headers={"X-Api-Key": n["keys"]["operator"]}
        )
        entries = r.json()
        if want(entries) or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.1)


def delivered(entries, **match):
    return [e for e in entries if e["status"] == "delivered" and all(e[k] == v for k, v in match.items())]


async def test_company_hears_each_step_on_its_channels(notify):
    appeal_id = new_id()
    await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id))
    steps = [
        (EventType.appeal_routed, AppealStatus.routed, {}),
        (EventType.appeal_declined, AppealStatus.declined, {"guidance": "Ask the customs office"}),
        (EventType.appeal_info_requested, AppealStatus.info_requested, {"note": "Send the loan contract"}),
        (EventType.appeal_resolved, AppealStatus.resolved, {"resolution": "Repayment deferred"}),
    ]
    for seq, (type_, status, extra) in enumerate(steps, start=1):
        await send(notify, APPEALS_LIFECYCLE, type_, changed(appeal_id, status, seq, **extra))
    expected = {
        (t, ch)
        for t in (
            "appeal.submitted.v1",
            "appeal.routed.v1",
            "appeal.declined.v1",
            "appeal.info_requested.v1",
            "appeal.resolved.v1",
        )
        for ch in ("sms", "email")
    }

    def company_steps(entries):
        return {(e["event_type"], e["channel"]) for e in delivered(entries, audience="company")}

    entries = await log_of(notify, appeal_id, lambda e: company_steps(e) >= expected)
    assert company_steps(entries) == expected
    assert all("13800138000" not in e["to"] and "liwei@" not in e["to"] for e in entries), "addresses are masked"
    mails = [m for m in notify["sinks"].of("email") if appeal_id in m["subject"]]
    bodies = "\n".join(m["body"] for m in mails)
    assert "Ask the customs office" in bodies and "Send the loan contract" in bodies and "Repayment deferred" in bodies
    assert any("已受理" in m["subject"] for m in mails), "Chinese is the default language"
    texts = [s["body"]["text"] for s in notify["sinks"].of("sms")]
    assert any(appeal_id in t for t in texts)
    handler = delivered(entries, recipient=f"{DEPT}:handler", event_type="appeal.routed.v1")
    assert {e["channel"] for e in handler} == {"email", "wechat", "webhook"}
    hooks = [h for h in notify["sinks"].of("webhook") if h["body"]["event"]["subject"] == appeal_id]
    assert hooks and all(h["verified"] for h in hooks), "webhook bodies carry a valid HMAC-SHA256 signature"


@pytest.mark.parametrize(
    ("level", "audiences"), [(50, {"handler"}), (80, {"handler", "head"}), (100, {"handler", "head", "supervisor"})]
)
async def test_sla_levels_reach_the_right_staff(notify, level, audiences):
    appeal_id = new_id()
    type_ = EventType.sla_breached if level == 100 else EventType.sla_warning
    await send(notify, SLA_EVENTS, type_, sla(appeal_id, level))
    entries = await log_of(
        notify,
        appeal_id,
        lambda e: {x["audience"] for x in delivered(e)} >= audiences and all(x["status"] == "delivered" for x in e),
    )
    assert {e["audience"] for e in delivered(entries)} == audiences
    sms = {e["recipient"] for e in delivered(entries, channel="sms")}
    assert sms == ({f"{DEPT}:{a}" for a in audiences} if level == 100 else set()), "SMS only for breaches"


async def test_a_redelivered_event_is_delivered_once(notify):
    appeal_id = new_id()
    event = await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id))
    await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, event.data, event=event)
    entries = await log_of(notify, appeal_id, lambda e: len(delivered(e, event_type="appeal.submitted.v1")) >= 2)
    await asyncio.sleep(1)
    # Only this event's mail: an in-process router of other tests may route the appeal too.
    mails = [m for m in notify["sinks"].of("email") if m["delivery"].startswith(event.id)]
    assert len(mails) == 1
    assert len([e for e in entries if e["event_type"] == "appeal.submitted.v1"]) == 2, "one SMS and one e-mail"


async def test_what_a_planner_stored_claimed_and_died_holding_is_sent_once_its_claim_runs_out(notify):
    runtime, clock = notify["runtime"], notify["clock"]
    appeal_id = new_id()
    event = make_event("test", EventType.appeal_submitted, appeal_id, submitted(appeal_id), time=clock.now())
    # The replica that planned the records claimed them as it stored them, then died before its send pass:
    # its claim (already run out here) is all that is left of it.
    died = notices.Ready(timedelta(seconds=1))
    then = clock.now() - timedelta(seconds=5)
    planned = await planning.plan_events(
        runtime.db, runtime.book, [event], then, runtime.settings.status_url, runtime.memory, died
    )
    assert planned == 2 and len(died.docs) == 1, "one notice holds the SMS and the e-mail"
    entries = await log_of(notify, appeal_id, lambda e: len(delivered(e)) == 2, timeout=20)
    assert len(delivered(entries)) == 2, "released by the sweep and sent by a pass that claimed them"
    await asyncio.sleep(0.5)
    mails = [m for m in notify["sinks"].of("email") if m["delivery"].startswith(event.id)]
    assert len(mails) == 1


def old_record(event, recipient, channel, to, now, **fields):
    """A delivery record as notify kept it before notices: one document per (event, recipient, channel)."""
    notification_id = f"{event.id}:{recipient}:{channel}"
    return {
        "_id": notification_id,
        "appeal_id": event.subject,
        "event_id": event.id,
        "event_type": event.type,
        "recipient": recipient,
        "audience": "company",
        "channel": channel,
        "to": to,
        "secret": None,
        "urgent": False,
        "template": "submitted",
        "language": "zh",
        "subject": f"Appeal {event.subject} received",
        "body": f"Your appeal {event.subject} was received.",
        "payload": {"notification_id": notification_id, "event": event.model_dump(mode="json")},
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "traceparent": None,
        "due_at": now,
        "version": 1,
        **fields,
    }


async def test_records_of_an_earlier_version_are_adopted_sent_once_and_kept_in_the_log(notify):
    runtime, now = notify["runtime"], notify["clock"].now()
    # A database of its own: the service's sweep adopts only from its own, so every step here is this test's.
    db = runtime.mongo[f"adopt_{new_id().lower()}"]
    await notices.ensure_indexes(db)
    appeal_id, busy_appeal = new_id(), new_id()
    event = make_event("test", EventType.appeal_submitted, appeal_id, submitted(appeal_id), time=now)
    other = make_event("test", EventType.appeal_submitted, busy_appeal, submitted(busy_appeal), time=now)
    sent_at = now - timedelta(minutes=1)
    await db.notifications.insert_many(
        [
            old_record(
                event, "company", "sms", "13800138000", now, status="delivered", attempts=1, delivered_at=sent_at
            ),
            old_record(event, "company", "email", "old@example.org", now),
            # A dispatcher of the earlier version is sending this one: it stays where it is until its claim ends.
            old_record(
                other, "company", "email", "busy@example.org", now, claim="old", claim_until=now + timedelta(hours=1)
            ),
        ]
    )
    memory, status_url = Memory(), runtime.settings.status_url
    assert await planning.plan_events(db, runtime.book, [event], now, status_url, memory) == 0, (
        "an event read again before adoption is left to its records"
    )
    assert await adopt.adopt_records(db, memory, now) == 2 and memory.records_left

    async def send() -> list[tuple[str, str]]:
        results = await dispatch.dispatch(db, runtime.broker, runtime.senders, runtime.settings, now)
        return [(r.channel, r.outcome) for r in results]

    assert await send() == [("email", "delivered")], "the pending record is sent, the delivered one is not"
    entries, _ = await notices.delivery_log(db, appeal_id, limit=500)
    assert {(e["_id"], e["status"], e["attempts"]) for e in entries} == {
        (f"{event.id}:company:sms", "delivered", 1),
        (f"{event.id}:company:email", "delivered", 1),
    }
    # Read once more after adoption: the notice is there already, and nothing is due.
    await planning.plan_events(db, runtime.book, [event], now, status_url, memory)
    assert await send() == []
    mails = [m for m in notify["sinks"].of("email") if m["delivery"].strip().startswith(event.id)]
    assert len(mails) == 1
    assert await db.notifications.count_documents({"appeal_id": appeal_id}) == 0
    assert await db.notifications.count_documents({"appeal_id": busy_appeal}) == 1
    assert await db.notices.count_documents({"_id": other.id}) == 0


async def test_a_webhook_failing_three_times_is_delivered_once(notify):
    appeal_id = new_id()
    notify["sinks"].fail_next("/webhook/head", 3)
    await send(notify, SLA_EVENTS, EventType.sla_warning, sla(appeal_id, 80))
    entries = await log_of(notify, appeal_id, lambda e: bool(delivered(e, audience="head", channel="webhook")))
    hook = delivered(entries, audience="head", channel="webhook")[0]
    assert hook["attempts"] == 4
    received = [
        h for h in notify["sinks"].of("webhook") if h["name"] == "head" and h["body"]["event"]["subject"] == appeal_id
    ]
    assert len(received) == 1


async def test_quiet_hours_hold_until_they_end(notify):
    client, clock = notify["client"], notify["clock"]
    local = clock.now().astimezone(ZoneInfo("Asia/Shanghai"))
    quiet = {
        "start": (local - timedelta(minutes=5)).strftime("%H:%M"),
        "end": (local + timedelta(minutes=30)).strftime("%H:%M"),
    }
    recipient = "futian-hrss:handler"
    key = {"X-Api-Key": notify["keys"]["department:futian-hrss"]}
    r = await client.put(
        f"/v1/subscriptions/{recipient}", headers=key, json={"email": "hrss-handler@example.org", "quiet_hours": quiet}
    )
    assert r.status_code == 200
    appeal_id = new_id()
    await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id))
    data = changed(appeal_id, AppealStatus.routed, 1).model_copy(update={"department": "futian-hrss"})
    await send(notify, APPEALS_LIFECYCLE, EventType.appeal_routed, data)
    entries = await log_of(notify, appeal_id, lambda e: any(x["recipient"] == recipient for x in e))
    assert {e["status"] for e in entries if e["recipient"] == recipient} == {"held"}
    breach = sla(appeal_id, 100).model_copy(update={"department": "futian-hrss"})
    await send(notify, SLA_EVENTS, EventType.sla_breached, breach)
    urgent = await log_of(
        notify, appeal_id, lambda e: bool(delivered(e, event_type="sla.breached.v1", recipient=recipient))
    )
    assert delivered(urgent, event_type="sla.breached.v1", recipient=recipient), "breaches go at once"
    clock.advance(timedelta(minutes=31))
    try:
        released = await log_of(
            notify, appeal_id, lambda e: bool(delivered(e, event_type="appeal.routed.v1", recipient=recipient))
        )
    finally:
        clock.advance(-timedelta(minutes=31))
    assert delivered(released, event_type="appeal.routed.v1", recipient=recipient)


async def test_an_unreachable_provider_ends_failed_with_the_reason(notify):
    runtime = notify["runtime"]
    runtime.settings.wechat_endpoint = f"http://127.0.0.1:{servers.free_port()}/wechat"
    try:
        appeal_id = new_id()
        await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id, channel="wechat"))
        # Only the company's own WeChat message: an in-process router of other tests may route the
        # appeal too, and the handler's WeChat message then fails the same way.
        entries = await log_of(
            notify,
            appeal_id,
            lambda e: any(x["status"] == "failed" and x["audience"] == "company" for x in e),
            timeout=30,
        )
    finally:
        runtime.settings.wechat_endpoint = f"http://127.0.0.1:{notify['sinks'].http_port}/wechat"
    failed = [e for e in entries if e["status"] == "failed" and e["audience"] == "company"]
    assert failed[0]["channel"] == "wechat" and failed[0]["attempts"] == 5
    assert "unreachable" in failed[0]["last_error"]
    outcome = await read_topic(
        notify["bootstrap"],
        NOTIFY_DELIVERIES,
        lambda e: (
            e.get("subject") == appeal_id
            and e["type"] == "notification.failed.v1"
            and e["data"]["audience"] == "company"
        ),
    )
    assert outcome[0]["data"]["reason"] == failed[0]["last_error"]
    dead = await read_topic(
        notify["bootstrap"], dead_letter_topic(NOTIFY_DELIVERIES), lambda e: e.get("subject") == appeal_id
    )
    assert dead and "13800138000" not in str(dead)

    def counted(text: str) -> bool:
        return any(
            line.startswith("notifications_total{")
            and 'channel="wechat"' in line
            and 'audience="company"' in line
            and 'outcome="failed"' in line
            for line in text.splitlines()
        )

    deadline = time.monotonic() + 5  # the counter moves when the dispatcher's pass returns
    while not counted(metrics := (await notify["client"].get("/metrics")).text) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert counted(metrics)


async def test_a_changed_subscription_takes_effect_for_the_next_event(notify):
    client, runtime = notify["client"], notify["runtime"]
    recipient, dept = "futian-tax:handler", "futian-tax"
    key = {"X-Api-Key": notify["keys"][f"department:{dept}"]}
    addresses = []
    for address in ("tax-first@example.org", "tax-second@example.org"):
        r = await client.put(f"/v1/subscriptions/{recipient}", headers=key, json={"email": address})
        assert r.status_code == 200
        appeal_id = new_id()
        await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id))
        breach = sla(appeal_id, 100).model_copy(update={"department": dept})
        await send(notify, SLA_EVENTS, EventType.sla_breached, breach)
        await log_of(notify, appeal_id, lambda e: any(x["recipient"] == recipient for x in e))
        notice = await runtime.db.notices.find_one({"appeal_id": appeal_id, "deliveries.recipient": recipient})
        addresses += [d["to"] for d in notice["deliveries"] if (d["recipient"], d["channel"]) == (recipient, "email")]
    assert addresses == ["tax-first@example.org", "tax-second@example.org"], "notify does not keep an old address"


async def test_an_event_read_before_its_submission_waits_for_it(notify):
    appeal_id = new_id()
    await send(notify, APPEALS_LIFECYCLE, EventType.appeal_routed, changed(appeal_id, AppealStatus.routed, 1))
    runtime = notify["runtime"]
    for _ in range(100):
        if await runtime.db.waiting.count_documents({"appeal_id": appeal_id}):
            break
        await asyncio.sleep(0.1)
    assert await runtime.db.waiting.count_documents({"appeal_id": appeal_id}) == 1, "kept until the submission"
    await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id))
    entries = await log_of(
        notify, appeal_id, lambda e: bool(delivered(e, event_type="appeal.routed.v1", audience="company")), timeout=30
    )
    assert delivered(entries, event_type="appeal.routed.v1", audience="company"), "the company hears of its routing"
    # Polled: an in-process router of other tests may route the appeal too, and its event can wait a moment as well.
    for _ in range(100):
        if not await runtime.db.waiting.count_documents({"appeal_id": appeal_id}):
            break
        await asyncio.sleep(0.1)
    assert await runtime.db.waiting.count_documents({"appeal_id": appeal_id}) == 0, "nothing left waiting"


async def test_a_liaison_hears_once_that_its_company_appeal_was_routed_declined_and_breached(notify):
    uscc, appeal_id = valid_uscc(), new_id()
    company = EnterpriseChanged(uscc=uscc, name="Lanhai", liaison="ma-qiang", version=1)
    await publish(
        notify["runtime"].broker, ENTERPRISES, make_event("test", EventType.enterprise_registered, uscc, company)
    )
    runtime = notify["runtime"]
    for _ in range(150):
        if await runtime.db.companies.find_one({"_id": uscc, "liaison": "ma-qiang"}):
            break
        await asyncio.sleep(0.1)
    await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id, uscc=uscc))
    routed = await send(notify, APPEALS_LIFECYCLE, EventType.appeal_routed, changed(appeal_id, AppealStatus.routed, 1))
    await send(notify, APPEALS_LIFECYCLE, EventType.appeal_routed, routed.data, event=routed)  # redelivered
    declined = changed(appeal_id, AppealStatus.declined, 2, guidance="Ask the customs office")
    declined = await send(notify, APPEALS_LIFECYCLE, EventType.appeal_declined, declined)
    await send(notify, SLA_EVENTS, EventType.sla_warning, sla(appeal_id, 80))
    breached = await send(notify, SLA_EVENTS, EventType.sla_breached, sla(appeal_id, 100))

    def liaison_heard(entries):
        return {(e["event_type"], e["channel"]) for e in delivered(entries, recipient="liaison:ma-qiang")}

    expected = {
        ("appeal.routed.v1", "email"),
        ("appeal.declined.v1", "email"),
        ("sla.breached.v1", "email"),
        ("sla.breached.v1", "sms"),  # a breach cannot wait
    }
    entries = await log_of(notify, appeal_id, lambda e: liaison_heard(e) >= expected)
    assert liaison_heard(entries) == expected, "routed, declined and breached; not the warning"
    # Only this test's events: other modules' routers on the session's broker route the appeal too.
    ours = (routed.id, declined.id, breached.id)
    mine = Counter(
        (e["event_type"], e["channel"])
        for e in entries
        if e["recipient"] == "liaison:ma-qiang" and e["notification_id"].startswith(ours)
    )
    assert set(mine.values()) == {1}, f"once per event and channel, the redelivered routing included: {mine}"
    assert {event_type for event_type, _ in mine} == {"appeal.routed.v1", "appeal.declined.v1", "sla.breached.v1"}
    mails = [
        m
        for m in notify["sinks"].of("email")
        if m["delivery"].startswith(ours) and ":liaison:ma-qiang:" in m["delivery"]
    ]
    assert len(mails) == 3 and any("Ask the customs office" in m["body"] for m in mails)
    assert all(m["subject"].isascii() for m in mails), "ma-qiang reads English (config/registry.yaml)"


async def test_an_approved_extension_tells_the_company_once_its_new_date_and_why_and_a_replay_nothing_more(notify):
    appeal_id, sinks = new_id(), notify["sinks"]
    await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id))
    granted = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 2026-12-01 10:00 in Shenzhen
    reason = "The bank decides on the deferral next week"
    extended = changed(
        appeal_id,
        AppealStatus.accepted,
        5,
        actor="coord",
        clerk="Chen Wei",
        due_at=granted,
        previous_due_at=granted - timedelta(days=4),
        reason=reason,
        note="Once only",
    )
    approved = await send(notify, APPEALS_LIFECYCLE, EventType.appeal_extension_approved, extended)

    def company_heard() -> list[str]:
        """What reached the company of this approval: each SMS's and e-mail's text."""
        ours = f"{approved.id}:company:"
        texts = [r["body"]["text"] for r in sinks.of("sms") if r["body"]["client_ref"].startswith(ours)]
        return texts + [m["subject"] + "\n" + m["body"] for m in sinks.of("email") if m["delivery"].startswith(ours)]

    entries = await log_of(notify, appeal_id, lambda e: len(delivered(e, event_type=approved.type)) >= 5)
    heard = delivered(entries, event_type=approved.type)
    assert sorted((e["recipient"], e["channel"]) for e in heard) == [
        ("company", "email"),
        ("company", "sms"),
        (f"{DEPT}:handler", "email"),
        (f"{DEPT}:handler", "webhook"),
        (f"{DEPT}:handler", "wechat"),
    ], "the company once on each of its channels, and the lead's handler"
    assert len(company_heard()) == 2
    assert all("2026-12-01 10:00" in text and reason in text for text in company_heard())

    # The approval read again, then a rejection behind it on the appeal's partition: once the rejection is
    # planned and sent, the replay has been read too.
    await send(notify, APPEALS_LIFECYCLE, approved.type, approved.data, event=approved)
    fence = changed(appeal_id, AppealStatus.accepted, 6, actor="coord", note="No second extension")
    fence = await send(notify, APPEALS_LIFECYCLE, EventType.appeal_extension_rejected, fence)
    entries = await log_of(notify, appeal_id, lambda e: len(delivered(e, event_type=fence.type)) >= 3)
    assert len(delivered(entries, event_type=fence.type)) == 3, "the lead's handler hears of the rejection"
    await asyncio.sleep(0.5)
    assert len(company_heard()) == 2, "the replay sent nothing more"
    entries = await log_of(notify, appeal_id, lambda e: True)
    assert len([e for e in entries if e["event_type"] == approved.type]) == 5
    assert await notify["runtime"].db.notices.count_documents({"_id": approved.id}) == 1


async def test_an_overruled_send_back_tells_both_departments_handlers_once_and_a_replay_nothing_more(notify):
    """The office returns an appeal to DEPT, which had sent it back, and withdraws it from the department it had
    gone to: DEPT's handler and head and the withdrawn department's handler hear of it, the company does not."""
    appeal_id, sinks, withdrawn = new_id(), notify["sinks"], "futian-mii"
    await send(notify, APPEALS_SUBMITTED, EventType.appeal_submitted, submitted(appeal_id))
    comment = "The loan is yours to decide"
    returned = changed(
        appeal_id,
        AppealStatus.routed,
        4,
        previous_department=withdrawn,
        actor="coord",
        clerk="Chen Wei",
        note=comment,
        since=datetime(2026, 11, 24, 1, 30, tzinfo=UTC),  # 09:30 in Shenzhen
    )
    overruled = await send(notify, APPEALS_LIFECYCLE, EventType.appeal_decline_overruled, returned)

    def mails(event) -> list[dict]:
        """The e-mails sent for one event (other modules' routers may publish about the same appeal)."""
        return [m for m in sinks.of("email") if m["delivery"].startswith(f"{event.id}:")]

    told = [
        (f"{DEPT}:handler", "email"),
        (f"{DEPT}:handler", "webhook"),
        (f"{DEPT}:handler", "wechat"),
        (f"{DEPT}:head", "email"),
        (f"{DEPT}:head", "webhook"),
        (f"{DEPT}:head", "wechat"),
        (f"{withdrawn}:handler", "email"),
        (f"{withdrawn}:handler", "wechat"),
    ]
    entries = await log_of(notify, appeal_id, lambda e: len(delivered(e, event_type=overruled.type)) >= len(told))
    heard = delivered(entries, event_type=overruled.type)
    assert sorted((e["recipient"], e["channel"]) for e in heard) == told, "not the company, each of them once"
    by_recipient = {m["delivery"].split(":")[1]: m for m in mails(overruled)}
    assert sorted(by_recipient) == [DEPT, withdrawn]
    assert comment in by_recipient[DEPT]["body"] and "不能再退回该诉求" in by_recipient[DEPT]["body"]
    assert "撤回" in by_recipient[withdrawn]["subject"] and comment not in by_recipient[withdrawn]["body"]

    # The overrule read again, then the office refusing a transfer behind it on the appeal's partition: once the
    # refusal is sent to the lead, the replay has been read too.
    await send(notify, APPEALS_LIFECYCLE, overruled.type, overruled.data, event=overruled)
    refusal = changed(
        appeal_id, AppealStatus.routed, 5, actor="coord", note="It stays with you", target_department=withdrawn
    )
    fence = await send(notify, APPEALS_LIFECYCLE, EventType.appeal_transfer_refused, refusal)
    entries = await log_of(notify, appeal_id, lambda e: len(delivered(e, event_type=fence.type)) >= 3)
    assert sorted(e["recipient"] for e in delivered(entries, event_type=fence.type)) == [f"{DEPT}:handler"] * 3
    await asyncio.sleep(0.5)
    entries = await log_of(notify, appeal_id, lambda e: True)
    assert len([e for e in entries if e["event_type"] == overruled.type]) == len(told), "the replay added nothing"
    assert len(mails(overruled)) == 3, "one e-mail to each of the three, not two"
    assert await notify["runtime"].db.notices.count_documents({"_id": overruled.id}) == 1


async def test_a_liaison_manages_only_its_own_subscription(notify):
    keys, client = notify["keys"], notify["client"]
    body = {"email": "he.elsewhere@example.org"}
    own = await client.put("/v1/subscriptions/liaison:he-jun", json=body, headers={"X-Api-Key": keys["liaison:he-jun"]})
    assert own.status_code == 200, own.text
    other = await client.put(
        "/v1/subscriptions/liaison:liu-fang", json=body, headers={"X-Api-Key": keys["liaison:he-jun"]}
    )
    assert other.status_code == 403
    staff = await client.put(f"/v1/subscriptions/{DEPT}:head", json=body, headers={"X-Api-Key": keys["liaison:he-jun"]})
    assert staff.status_code == 403
    unknown = await client.put("/v1/subscriptions/liaison:nobody", json=body, headers={"X-Api-Key": keys["admin"]})
    assert unknown.status_code == 404


async def test_a_one_time_code_goes_by_sms_at_once_and_only_while_it_works(notify):
    now = notify["clock"].now()
    live = CompanyMessage(phone="13700009999", language="en", code="604213", expires_at=now + timedelta(minutes=10))
    stale = CompanyMessage(phone="13700008888", code="111111", expires_at=now - timedelta(minutes=1))
    first = make_event("test", EventType.company_code_issued, "k-live", live, time=now)
    for event in (first, make_event("test", EventType.company_code_issued, "k-stale", stale, time=now), first):
        await publish(notify["runtime"].broker, COMPANY_MESSAGES, event)

    def texts(phone: str) -> list[str]:
        return [r["body"]["text"] for r in notify["sinks"].of("sms") if r["body"]["to"] == phone]

    deadline = time.monotonic() + 15
    while not texts("13700009999") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # a second copy, or the stale code, would arrive by now
    assert len(texts("13700009999")) == 1 and "604213" in texts("13700009999")[0]
    assert "10 minutes" in texts("13700009999")[0]
    assert texts("13700008888") == [], "an expired code is not sent"


@pytest.fixture(scope="module")
async def receiver():
    """A real HTTP receiver of its own on loopback, keeping every request: /moved answers 302 to /landing,
    /broken 500 with a body of internal details, anything else 200."""
    port = servers.free_port()
    seen: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        await request.read()
        if request.path == "/moved":
            raise web.HTTPFound(f"http://127.0.0.1:{port}/landing")
        if request.path == "/broken":
            return web.Response(status=500, text="Traceback: db-internal-7:27017 refused")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port, seen=seen)
    await runner.cleanup()


@contextlib.contextmanager
def allowed_networks(notify, networks):
    """Notify's allowed webhook networks changed for a while (read at every check)."""
    settings = notify["runtime"].settings
    before, settings.webhook_allowed_networks = settings.webhook_allowed_networks, networks
    try:
        yield
    finally:
        settings.webhook_allowed_networks = before


async def subscribe_webhook(notify, recipient, url):
    key = {"X-Api-Key": notify["keys"][f"department:{recipient.split(':')[0]}"]}
    return await notify["client"].put(f"/v1/subscriptions/{recipient}", headers=key, json={"webhook_url": url})


async def breached_webhook(notify, recipient, timeout=30.0):
    """Breach an SLA of the recipient's department; its webhook's log entry once settled, and the log."""
    appeal_id = new_id()
    breach = sla(appeal_id, 100).model_copy(update={"department": recipient.split(":")[0]})
    await send(notify, SLA_EVENTS, EventType.sla_breached, breach)

    def settled(entries):
        return [
            e
            for e in entries
            if (e["recipient"], e["channel"]) == (recipient, "webhook") and e["status"] in ("delivered", "failed")
        ]

    entries = await log_of(notify, appeal_id, lambda e: bool(settled(e)), timeout=timeout)
    assert settled(entries), entries
    return appeal_id, settled(entries)[0]


async def outcome_of(notify, appeal_id, recipient):
    found = await read_topic(
        notify["bootstrap"],
        NOTIFY_DELIVERIES,
        lambda e: (
            e.get("subject") == appeal_id and e["data"]["recipient"] == recipient and e["data"]["channel"] == "webhook"
        ),
    )
    return found[0]


@pytest.mark.parametrize(
    ("url", "networks", "status", "wrong"),
    [
        ("http://127.0.0.1:{port}/ok", [], 403, "resolves to a loopback address"),
        ("http://localhost:{port}/ok", [], 403, "resolves to a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", LOOPBACK, 403, "resolves to a link-local address"),
        ("https://0.0.0.0:{port}/ok", LOOPBACK, 403, "resolves to an unspecified address"),
        ("https://10.0.0.8/hook", LOOPBACK, 403, "resolves to a private address"),
        ("https://100.64.0.1/hook", LOOPBACK, 403, "resolves to a shared (carrier-grade NAT) address"),
        ("http://93.184.215.14/hook", LOOPBACK, 403, "must use https"),  # a public address over plain http
        # The form is the document's (a pattern): the model refuses it, naming the field.
        ("ftp://127.0.0.1:{port}/ok", LOOPBACK, 422, "must be an https URL"),
        ("https://[::ffff:127.0.0.1]:{port}/ok", [], 422, "must name a host"),
    ],
)
async def test_a_webhook_target_is_refused_at_subscription_naming_what_is_wrong(
    notify, receiver, url, networks, status, wrong
):
    """The form of the URL is a 422 naming the field; where it leads, a 403: the network's rule, not the form."""
    with allowed_networks(notify, networks):
        r = await subscribe_webhook(notify, f"{HOOKED}:head", url.format(port=receiver.port))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if status == 422:
        assert r.json()["detail"] == "invalid fields: webhook_url"
        [error] = r.json()["errors"]
        assert error["field"] == "webhook_url" and wrong in error["message"]
    else:
        assert r.json()["detail"].startswith("webhook_url") and wrong in r.json()["detail"]
    if "localhost" in url:
        assert "127.0.0.1" not in r.text and "::1" not in r.text, "the address a name resolves to is not told"
    assert receiver.seen == [], "nothing is posted to check a target"


async def test_a_webhook_whose_name_does_not_resolve_yet_is_taken_and_each_delivery_resolves_it(notify):
    r = await subscribe_webhook(notify, f"{HOOKED}:handler", "https://hooks.department.invalid/appeals")
    assert r.status_code == 200, r.text


async def test_a_webhook_into_an_allowed_network_is_accepted_by_address_or_name_until_it_is_not(notify, receiver):
    recipient = f"{HOOKED}:head"
    for url in (f"{receiver.url}/ok", f"http://localhost:{receiver.port}/ok"):
        accepted = await subscribe_webhook(notify, recipient, url)
        assert accepted.status_code == 200, accepted.text
        with allowed_networks(notify, [ip_network("10.20.0.0/16")]):  # the extranet only
            refused = await subscribe_webhook(notify, recipient, url)
        assert refused.status_code == 403, refused.text


async def test_a_target_refused_after_its_subscription_is_refused_at_delivery_without_a_status(notify, receiver):
    recipient = f"{HOOKED}:supervisor"
    r = await subscribe_webhook(notify, recipient, f"http://localhost:{receiver.port}/ok")
    assert r.status_code == 200, r.text
    with allowed_networks(notify, []):  # the operators no longer allow loopback
        appeal_id, entry = await breached_webhook(notify, recipient)
    assert entry["status"] == "failed" and entry["attempts"] == 1, "a refusal is not tried again"
    assert entry["last_error"] == "webhook refused: resolves to a loopback address"
    assert receiver.seen == [], "no connection reached the target"
    outcome = await outcome_of(notify, appeal_id, recipient)
    assert outcome["type"] == "notification.failed.v1" and outcome["data"]["reason"] == entry["last_error"]


async def test_a_redirect_is_not_followed_and_the_caller_learns_only_unreachable(notify, receiver):
    recipient = f"{HOOKED}:handler"
    r = await subscribe_webhook(notify, recipient, f"{receiver.url}/moved")
    assert r.status_code == 200, r.text
    appeal_id, entry = await breached_webhook(notify, recipient)
    assert entry["status"] == "failed" and entry["attempts"] == 1, "a redirect is a failure, not tried again"
    assert entry["last_error"] == "webhook unreachable"
    await asyncio.sleep(0.3)
    assert "/moved" in receiver.seen and "/landing" not in receiver.seen, "the second URL never gets a request"
    assert (await outcome_of(notify, appeal_id, recipient))["data"]["reason"] == "webhook unreachable"


async def test_a_receiver_answering_500_leaves_the_caller_seeing_no_status(notify, receiver):
    recipient = f"{HOOKED}:head"
    r = await subscribe_webhook(notify, recipient, f"{receiver.url}/broken")
    assert r.status_code == 200, r.text
    appeal_id, entry = await breached_webhook(notify, recipient)
    assert entry["status"] == "failed" and entry["attempts"] == 5, "a 500 is tried again, then given up"
    assert entry["last_error"] == "webhook unreachable"
    assert entry["to"] == f"{receiver.url}/***", "the log shows the target's origin only"
    own = await notify["client"].get(
        "/v1/notifications",
        params={"appeal_id": appeal_id},
        headers={"X-Api-Key": notify["keys"][f"department:{HOOKED}"]},
    )
    mine = [e for e in own.json() if (e["recipient"], e["channel"]) == (recipient, "webhook")]
    assert mine and all(e["last_error"] == "webhook unreachable" for e in mine)
    assert "db-internal" not in own.text and "/broken" not in own.text, "nothing of the answer, nor the path"
    outcome = await outcome_of(notify, appeal_id, recipient)
    assert outcome["data"]["reason"] == "webhook unreachable"
