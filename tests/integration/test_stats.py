"""Stats in this process on the real broker and database: counting once, crash recovery, metrics after restart."""

import asyncio
import csv
import io
import logging
import random
import shutil
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from devstack import servers
from libs.contract import (
    APPEALS_LIFECYCLE,
    APPEALS_SUBMITTED,
    NOTIFY_DELIVERIES,
    SLA_EVENTS,
    SLA_EVENTS_V2,
    dead_letter_topic,
)
from libs.ids import new_id
from libs.kafka.publishing import encode
from libs.kafka.topics import ensure_topics
from libs.kinds import AppealStatus, ClockState, EventType
from services.stats import projection, service
from services.stats.app import create_app
from services.stats.handlers import PROJECTED
from services.stats.rebuild import rebuild
from services.stats.service import Delivered
from services.stats.settings import StatsSettings
from tests.conftest import Servers, start_broker
from tests.helpers import packed, read_topic, valid_uscc
from tests.unit.test_stats import T0, changed, clock_event, submitted

# A quiet hour of its own, so that appeals other tests submit now never mix in.
HOUR = datetime(2021, 5, 5, 10, 7, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW = {"from": "2021-05-05T10:00:00+00:00", "to": "2021-05-05T11:00:00+00:00"}
DEPT = "stats-test-dept"
EVER, NEVER = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def settings(place: Servers, demo_keys, run: str) -> StatsSettings:
    return StatsSettings(
        kafka_bootstrap_servers=place.bootstrap,
        mongodb_uri=place.mongodb_uri,
        api_keys_file=demo_keys[1],
        environment="test",
        mongodb_database=f"stats_{run}",
        consumer_group=f"stats-{run}",
        metrics_refresh_seconds=0.2,
    )


async def publish(bootstrap: str, items: list[tuple[str, object]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, event in items:
            await producer.send_and_wait(topic, encode(event), key=event.subject.encode())
    finally:
        await producer.stop()


async def eventually(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.3)


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def quiet_servers(real_servers, tmp_path_factory):
    """The session's database and a broker of this module's own.

    Other modules' intake and router run for the whole session and would route the
    appeals published here, adding routing events of their own to what is counted.
    """
    kafka, bootstrap = start_broker(tmp_path_factory.mktemp("stats-kafka"))
    yield Servers(bootstrap, real_servers.mongodb_uri, kafka, real_servers.mongo)
    servers.stop(kafka)


@pytest.fixture(scope="module")
async def stats(quiet_servers, demo_keys):
    run = new_id().lower()
    app = create_app(settings(quiet_servers, demo_keys, run))
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://stats") as client,
    ):
        yield client, run, {"X-Api-Key": demo_keys[0]["operator"]}


async def test_appeals_count_once_when_events_are_redelivered_or_republished(stats, quiet_servers):
    client, _, headers = stats
    ids = [new_id() for _ in range(3)]
    items = []
    for i, appeal_id in enumerate(ids):
        at = HOUR + timedelta(minutes=i)
        items.append((APPEALS_SUBMITTED, submitted(at=at, appeal_id=appeal_id)))
        items.append(
            (
                APPEALS_LIFECYCLE,
                changed(
                    EventType.appeal_routed,
                    AppealStatus.routed,
                    1,
                    at + timedelta(seconds=1),
                    department=DEPT,
                    appeal_id=appeal_id,
                    submitted_at=at,
                ),
            )
        )
    # The router's outbox may publish an event twice (same id, new offset): it must count once.
    items += [items[0], items[1]]
    await publish(quiet_servers.bootstrap, items)

    async def counted():
        body = (await client.get("/v1/stats/summary", params=WINDOW, headers=headers)).json()
        # Submissions and routings come on two topics: wait until no appeal is still unassigned.
        departments = body["groups"]["department"]
        return (
            body if body["total"] == 3 and departments and "unassigned" not in {g["key"] for g in departments} else None
        )

    body = await eventually(counted)
    assert body, "stats did not count the three appeals and their routing"
    assert body["groups"]["department"] == [{"key": DEPT, "count": 3, "share": 1.0, "label": None}]
    assert body["groups"]["status"] == [{"key": "routed", "count": 3, "share": 1.0, "label": None}]
    await asyncio.sleep(1.0)  # a late duplicate would show now
    again = (await client.get("/v1/stats/summary", params=WINDOW, headers=headers)).json()
    assert again["total"] == 3


async def test_business_metrics_come_back_the_same_after_a_restart(stats, quiet_servers, demo_keys):
    client, run, _ = stats

    async def open_now():
        text = (await client.get("/metrics")).text
        value = metric(text, "appeals_open", department=DEPT)
        return text if value == 3 else None

    text = await eventually(open_now)
    assert text, "appeals_open did not reach 3"
    assert metric(text, "appeals_routed_total", department=DEPT, sla_profile="policy_24h") == 3
    assert metric(text, "appeals_open", department="finance") is not None, "every department is exported"
    restarted = create_app(settings(quiet_servers, demo_keys, run))
    async with (
        LifespanManager(restarted, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(restarted), base_url="http://stats") as second,
    ):
        text = (await second.get("/metrics")).text
    assert metric(text, "appeals_open", department=DEPT) == 3
    assert metric(text, "appeals_routed_total", department=DEPT, sla_profile="policy_24h") == 3


async def test_a_crash_between_documents_and_buckets_is_finished_when_the_batch_comes_again(real_servers, monkeypatch):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"stats_crash_{new_id().lower()}"]
    appeal_id = new_id()
    events = [
        submitted(at=HOUR, appeal_id=appeal_id),
        changed(
            EventType.appeal_routed,
            AppealStatus.routed,
            1,
            HOUR,
            department=DEPT,
            appeal_id=appeal_id,
            submitted_at=HOUR,
        ),
    ]
    batch = [Delivered(APPEALS_SUBMITTED, 0, 40, events[0]), Delivered(APPEALS_LIFECYCLE, 0, 70, events[1])]
    real_apply = service.apply_changes

    async def crash(*_):
        raise ConnectionError("killed before the buckets were written")

    try:
        await service.prepare_days(db, SHANGHAI, HOUR)
        monkeypatch.setattr(service, "apply_changes", crash)
        with pytest.raises(ConnectionError):
            await service.project(db, batch, SHANGHAI)
        monkeypatch.setattr(service, "apply_changes", real_apply)
        await service.project(db, batch, SHANGHAI)  # redelivered after the restart
        await service.project(db, batch, SHANGHAI)  # and once more, after it had succeeded
        republished = [Delivered(APPEALS_LIFECYCLE, 0, 95, events[1])]
        await service.project(db, republished, SHANGHAI)
        counts = service.add_up(await service.hourly(db, "h:", HOUR - timedelta(hours=1), HOUR + timedelta(hours=1)))
        assert counts["n"] == 1 and counts[f"assigned|{DEPT}"] == 1 and counts[f"department|{DEPT}"] == 1
        day = datetime(2021, 5, 5, tzinfo=SHANGHAI)
        assert projection.cover(day, day + timedelta(days=1), SHANGHAI, date.min) == (["2021-05-05"], [])
        assert await service.window(db, "h:", day, day + timedelta(days=1), SHANGHAI) == counts
        assert (await service.totals(db))[f"routed|{DEPT}|policy_24h"] == 1
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_company_appealing_on_two_days_counts_once_in_both_and_after_a_rebuild(stats, quiet_servers, demo_keys):
    client, run, headers = stats
    # Two local days of their own (Shanghai): 2021-06-01 and 2021-06-02.
    day1 = datetime(2021, 6, 1, 2, 10, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    lanhai, qiming = valid_uscc(), valid_uscc()
    listed = {"lists": ["key_sme"], "flags": ["key_enterprise"]}
    story: list[tuple[str, object]] = []

    def appeal(at: datetime, uscc: str, steps: list[tuple[EventType, AppealStatus, dict]], **facts) -> None:
        appeal_id = new_id()
        story.append((APPEALS_SUBMITTED, submitted(at=at, appeal_id=appeal_id, uscc=uscc)))
        for seq, (type_, status, extra) in enumerate(steps, start=1):
            event = changed(
                type_, status, seq, at + timedelta(minutes=seq), appeal_id=appeal_id, submitted_at=at, **facts, **extra
            )
            story.append((APPEALS_LIFECYCLE, event))

    routed = (EventType.appeal_routed, AppealStatus.routed, {})
    # Lanhai (on the key SME list) on day 1: solved; on day 2: asked for information, not solved yet.
    appeal(day1, lanhai, [routed, (EventType.appeal_resolved, AppealStatus.resolved, {"resolution": "Done"})], **listed)
    extension = {"due_at": day2 + timedelta(days=12), "previous_due_at": day2 + timedelta(days=3), "reason": "Audit"}
    appeal(
        day2,
        lanhai,
        [
            routed,
            (EventType.appeal_info_requested, AppealStatus.info_requested, {}),
            (EventType.appeal_extension_requested, AppealStatus.info_requested, extension),
            (EventType.appeal_extension_approved, AppealStatus.info_requested, extension),
        ],
        **listed,
    )
    # Qiming (on no list) on day 2: declined with guidance, an answer but no solution; and one not answered yet.
    appeal(day2, qiming, [routed, (EventType.appeal_declined, AppealStatus.declined, {"guidance": "Ask tax"})])
    appeal(day2, qiming, [routed])
    story += story[:3]  # redelivered: counts once
    await publish(quiet_servers.bootstrap, story)

    async def companies(params: dict) -> dict:
        response = await client.get("/v1/stats/companies", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    both = {"from": "2021-06-01", "to": "2021-06-03"}

    async def all_four() -> dict | None:
        body = await companies(both)
        return body if body["appeals"] == 4 else None

    everything_in = await eventually(all_four)
    assert everything_in, "stats did not read the four appeals"
    assert {k: everything_in[k] for k in ("companies", "answered", "solved", "appeals", "appeals_per_company")} == {
        "companies": 2,
        "answered": 2,
        "solved": 0,
        "appeals": 4,
        "appeals_per_company": 2.0,
    }
    first = await companies({"from": "2021-06-01", "to": "2021-06-02"})
    second = await companies({"from": "2021-06-02", "to": "2021-06-03"})
    assert (first["companies"], first["answered"], first["solved"]) == (1, 1, 1)
    assert (second["companies"], second["answered"], second["solved"], second["appeals"]) == (2, 2, 0, 3)
    per_list = {row["list"]: row for row in everything_in["lists"]}
    assert (per_list["key_sme"]["companies"], per_list["key_sme"]["appeals"]) == (1, 2)
    assert (per_list["none"]["companies"], per_list["none"]["appeals"]) == (1, 2)
    only_listed = await companies({**both, "list": "key_sme"})
    assert (only_listed["list"], only_listed["companies"], only_listed["appeals"]) == ("key_sme", 1, 2)
    unknown = await client.get("/v1/stats/companies", params={**both, "list": "friends"}, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "list"

    summary = (await client.get("/v1/stats/summary", params=both, headers=headers)).json()
    assert summary["companies"]["companies"] == 2
    assert {g["key"]: g["count"] for g in summary["groups"]["list"]} == {"key_sme": 2, "none": 2}
    daily = (await client.get("/v1/reports/daily", params={"date": "2021-06-02"}, headers=headers)).json()
    assert daily["companies"]["companies"] == 2 and daily["companies"]["solved"] == 0
    assert "The 3 appeals were put forward by 2 companies: 2 of them have got an answer" in daily["text"]
    assert [(r["department"], r["extensions_requested"], r["extensions_approved"]) for r in daily["supervision"]] == [
        ("nanshan-finance", 1, 1)
    ]

    # A rebuild from the topics gives the same rows, so the same figures for any period.
    rebuilt = f"stats_{run}_rebuilt"
    await rebuild(settings(quiet_servers, demo_keys, run), rebuilt)
    mongo = AsyncMongoClient(quiet_servers.mongodb_uri)
    try:
        start, end = datetime(2021, 5, 31, 16, tzinfo=UTC), datetime(2021, 6, 2, 16, tzinfo=UTC)
        live = await service.company_rows(mongo[f"stats_{run}"], start, end)
        again = await service.company_rows(mongo[rebuilt], start, end)
        assert sorted(sorted(row.items()) for row in live) == sorted(sorted(row.items()) for row in again)
        assert len(live) == 4
        counters = [await service.window(mongo[db], "h:", start, end, SHANGHAI) for db in (f"stats_{run}", rebuilt)]
        assert counters[0] == counters[1] and counters[0]["extensions_approved|nanshan-finance"] == 1
    finally:
        await mongo.drop_database(rebuilt)
        await mongo.close()


async def test_extensions_count_per_department_move_the_overdue_figures_and_rebuild_the_same(
    stats, quiet_servers, demo_keys
):
    client, run, headers = stats
    # Near now, since "running past due" is read against the present: two days back, in an hour of its own.
    now = datetime.now(UTC)
    hour = (now - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    at = hour + timedelta(minutes=7)
    window = {"from": hour.isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    lead = "futian-tax"  # a city department of this test's own: /v1/stats/departments lists the city's
    due, extended_due = now - timedelta(days=1), now + timedelta(days=5)
    extended, rejected = new_id(), new_id()

    def lifecycle(type_, seq, appeal_id, minutes, **extra):
        status = AppealStatus.routed if type_ == EventType.appeal_routed else AppealStatus.accepted
        event = changed(
            type_, status, seq, at + timedelta(minutes=minutes), department=lead, appeal_id=appeal_id, submitted_at=at
        )
        for name, value in extra.items():
            setattr(event.data, name, value)
        return APPEALS_LIFECYCLE, event

    def clock(type_, appeal_id, minutes, due_at, **extra):
        event = clock_event(
            type_, ClockState.running, at + timedelta(minutes=minutes), "resolution", due_at, lead, appeal_id=appeal_id
        )
        event.data.started_at = at
        for name, value in extra.items():
            setattr(event.data, name, value)
        return event

    asked = {"due_at": extended_due, "previous_due_at": due, "reason": "Waiting for the land bureau"}
    story = []
    for appeal_id in (extended, rejected):
        story += [
            (APPEALS_SUBMITTED, submitted(at=at, appeal_id=appeal_id)),
            lifecycle(EventType.appeal_routed, 1, appeal_id, 1),
            (SLA_EVENTS_V2, packed(clock(EventType.sla_started, appeal_id, 1, due))),
            lifecycle(EventType.appeal_extension_requested, 2, appeal_id, 10, **asked),
        ]
    approved = lifecycle(EventType.appeal_extension_approved, 3, extended, 20, **asked)
    moved = (SLA_EVENTS_V2, packed(clock(EventType.sla_extended, extended, 20, extended_due, original_due_at=due)))
    story += [approved, moved, lifecycle(EventType.appeal_extension_rejected, 3, rejected, 25, note="Not needed")]
    story += [approved, moved]  # republished by the outboxes: counted once
    await publish(quiet_servers.bootstrap, story)

    async def row() -> dict | None:
        body = (await client.get("/v1/stats/departments", params=window, headers=headers)).json()
        (found,) = [d for d in body["departments"] if d["department"] == lead]
        return found if found["extensions_rejected"] and found["clocks"]["resolution"]["overdue"] else None

    figures = await eventually(row)
    assert figures, "stats did not count the extensions"
    await asyncio.sleep(1.0)  # a duplicate counted twice would show now
    figures = await row()
    assert figures["assigned"] == 2, "an extension is no assignment"
    assert (figures["extensions_requested"], figures["extensions_approved"], figures["extensions_rejected"]) == (
        2,
        1,
        1,
    )
    # Both clocks were due a day ago; the extended one is due in five days, so only the other runs past due.
    assert figures["clocks"]["resolution"] == {"met": 0, "breached": 0, "overdue": 1, "running": 1, "cancelled": 0}
    assert figures["breach_rate"]["resolution"] == 1.0

    async def exported() -> str | None:
        text = (await client.get("/metrics")).text
        return (
            text if metric(text, "appeals_supervision_total", department=lead, figure="extensions_rejected") else None
        )

    text = await eventually(exported)
    assert text, "the metric did not reach the extensions"
    for figure, n in (("extensions_requested", 2), ("extensions_approved", 1), ("extensions_rejected", 1)):
        assert metric(text, "appeals_supervision_total", department=lead, figure=figure) == n
    assert metric(text, "appeals_supervision_total", department="baoan-tax", figure="extensions_requested") == 0

    rebuilt = f"stats_{run}_extensions"
    await rebuild(settings(quiet_servers, demo_keys, run), rebuilt)
    mongo = AsyncMongoClient(quiet_servers.mongodb_uri, tz_aware=True)
    try:
        start, end = hour, hour + timedelta(hours=1)
        live, again = mongo[f"stats_{run}"], mongo[rebuilt]
        counts = [await service.window(db, "h:", start, end, SHANGHAI) for db in (live, again)]
        assert counts[0] == counts[1] and counts[0][f"extensions_requested|{lead}"] == 2
        overdue = [await service.overdue_clocks(db, datetime.now(UTC), start, end) for db in (live, again)]
        # The rejected one, at its own due time (to the millisecond MongoDB keeps).
        assert overdue[0] == overdue[1] and len(overdue[0]) == 1
        assert abs(overdue[0][0]["due_at"] - due) < timedelta(milliseconds=1)
        totals = [await service.totals(db) for db in (live, again)]
        assert {k: v for k, v in totals[0].items() if lead in k} == {k: v for k, v in totals[1].items() if lead in k}
    finally:
        await mongo.drop_database(rebuilt)
        await mongo.close()


async def test_send_backs_transfers_and_urgings_count_per_department_once_and_rebuild_the_same(
    stats, quiet_servers, demo_keys
):
    """The office's governance on the bus: send-backs and their review, a chosen department's decline, transfers
    asked, refused and granted, urging by hand and the urging ladder, some republished."""
    client, run, headers = stats
    hour = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    at = hour + timedelta(minutes=5)
    window = {"from": hour.isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    # City departments of this test's own: /v1/stats/departments lists the city's, and the metric is all-time.
    declining, taking, asking = "baoan-finance", "baoan-hrss", "baoan-mii"
    overruled, chosen, confirmed, moved = new_id(), new_id(), new_id(), new_id()
    story: list[tuple[str, object]] = []

    def lifecycle(appeal_id, type_, status, seq, minutes, department, **extra):
        event = changed(
            type_,
            status,
            seq,
            at + timedelta(minutes=minutes),
            department=department,
            appeal_id=appeal_id,
            submitted_at=at,
        )
        for name, value in extra.items():
            setattr(event.data, name, value)
        story.append((APPEALS_LIFECYCLE, event))
        return APPEALS_LIFECYCLE, event

    def sent_back(appeal_id, **extra):
        story.append((APPEALS_SUBMITTED, submitted(at=at, appeal_id=appeal_id)))
        lifecycle(appeal_id, EventType.appeal_routed, AppealStatus.routed, 1, 1, declining)
        lifecycle(
            appeal_id,
            EventType.appeal_declined,
            AppealStatus.declined,
            2,
            10,
            declining,
            guidance="Ask the labour bureau",
            target_department=taking,
            actor=declining,
            **extra,
        )
        lifecycle(
            appeal_id, EventType.appeal_rerouted, AppealStatus.routed, 3, 10, taking, previous_department=declining
        )

    sent_back(overruled, chosen=False)
    returned = lifecycle(
        overruled,
        EventType.appeal_decline_overruled,
        AppealStatus.routed,
        4,
        20,
        declining,
        previous_department=taking,
        since=at + timedelta(minutes=1),
        actor="coord",
    )
    sent_back(chosen, chosen=True)
    sent_back(confirmed)  # no `chosen`, as router wrote declines before it marked a chosen department's
    lifecycle(confirmed, EventType.appeal_decline_confirmed, AppealStatus.routed, 4, 25, taking, actor="coord")
    lifecycle(confirmed, EventType.appeal_urged, AppealStatus.routed, 5, 26, taking, actor="coord", note="Today")

    story.append((APPEALS_SUBMITTED, submitted(at=at, appeal_id=moved)))
    lifecycle(moved, EventType.appeal_routed, AppealStatus.routed, 1, 1, asking)
    asked = {"reason": "Not ours", "target_department": taking, "actor": asking}
    lifecycle(moved, EventType.appeal_transfer_requested, AppealStatus.routed, 2, 5, asking, **asked)
    lifecycle(moved, EventType.appeal_transfer_refused, AppealStatus.routed, 3, 6, asking, actor="coord", note="No")
    lifecycle(moved, EventType.appeal_transfer_requested, AppealStatus.routed, 4, 7, asking, **asked)
    granted = lifecycle(
        moved,
        EventType.appeal_transferred,
        AppealStatus.routed,
        5,
        8,
        taking,
        previous_department=asking,
        actor="coord",
    )

    def rung(type_, minutes, level=None):
        event = clock_event(
            type_, ClockState.breached, at + timedelta(minutes=minutes), "response", department=asking, appeal_id=moved
        )
        event.data.started_at, event.data.fired_at, event.data.urge_level = at, event.time, level
        return event

    breach, level_2, level_3 = (
        rung(EventType.sla_breached, 4),
        rung(EventType.sla_urged, 30, 2),
        rung(EventType.sla_urged, 40, 3),
    )
    again = rung(EventType.sla_urged, 41, 3)  # level 3 fired again under another id after a crash: one urging
    story += [(SLA_EVENTS_V2, packed(breach)), (SLA_EVENTS_V2, packed(level_2)), (SLA_EVENTS_V2, packed(level_3))]
    story += [(SLA_EVENTS, breach), (SLA_EVENTS_V2, packed(again))]
    story += [returned, granted, (SLA_EVENTS_V2, packed(level_2))]  # republished by the outboxes: counted once
    await publish(quiet_servers.bootstrap, story)

    async def rows() -> dict | None:
        body = (await client.get("/v1/stats/departments", params=window, headers=headers)).json()
        found = {d["department"]: d for d in body["departments"] if d["department"] in (declining, taking, asking)}
        done = found[declining]["send_backs_confirmed"] and found[taking]["urgings_by_hand"]
        return found if done and found[asking]["urgings_level_3"] and found[asking]["transfers_granted"] else None

    assert await eventually(rows), "stats did not count the governance events"
    await asyncio.sleep(1.0)  # a duplicate counted twice would show now
    found = await rows()
    assert found
    figures = {code: {f: row[f] for f in projection.FIGURES if row[f]} for code, row in found.items()}
    assert figures == {
        declining: {"send_backs": 2, "send_backs_overruled": 1, "send_backs_confirmed": 1, "chosen_declines": 1},
        taking: {"urgings_by_hand": 1},
        asking: {
            "transfers_requested": 2,
            "transfers_refused": 1,
            "transfers_granted": 1,
            "urgings_level_1": 1,
            "urgings_level_2": 1,
            "urgings_level_3": 1,
        },
    }
    # Three routings to the declining department; the overrule returned one of them, no new assignment.
    assert [found[code]["assigned"] for code in (declining, taking, asking)] == [3, 4, 1]
    assert found[declining]["send_back_rate"] == round(2 / 3, 4) and found[taking]["send_back_rate"] == 0.0

    async def exported() -> str | None:
        text = (await client.get("/metrics")).text
        return text if metric(text, "appeals_supervision_total", department=asking, figure="urgings_level_3") else None

    text = await eventually(exported)
    assert text, "the metric did not reach the urgings"
    for department, figure, n in (
        (declining, "send_backs", 2),
        (declining, "send_backs_overruled", 1),
        (declining, "chosen_declines", 1),
        (asking, "transfers_granted", 1),
        (asking, "urgings_level_1", 1),
        (taking, "urgings_by_hand", 1),
        (taking, "send_backs", 0),
    ):
        assert metric(text, "appeals_supervision_total", department=department, figure=figure) == n, figure
    assert metric(text, "appeals_assigned_total", department=declining) == 3
    assert metric(text, "appeals_assigned_total", department=taking) == 4

    daily = await client.get("/v1/reports/daily", params=window, headers={**headers, "Accept": "text/csv"})
    assert daily.status_code == 200 and f"send_back_rate,{declining},2,0.6667" in daily.text.splitlines()
    report = (await client.get("/v1/reports/daily", params=window, headers=headers)).json()
    assert "Departments sent back 2 appeals; the coordinating office overruled 1 and confirmed 1." in report["text"]

    rebuilt = f"stats_{run}_governance"
    await rebuild(settings(quiet_servers, demo_keys, run), rebuilt)
    mongo = AsyncMongoClient(quiet_servers.mongodb_uri, tz_aware=True)
    try:
        start, end = hour, hour + timedelta(hours=1)
        live, again_db = mongo[f"stats_{run}"], mongo[rebuilt]
        # A counter that went up and back down (an appeal counted unassigned, then routed) is 0 live and absent
        # once rebuilt from the whole story: the figures are the same.
        counts = [
            {k: v for k, v in (await service.window(db, "h:", start, end, SHANGHAI)).items() if v}
            for db in (live, again_db)
        ]
        assert counts[0] == counts[1] and counts[0][f"send_backs|{declining}"] == 2
        assert counts[0][f"assigned|{declining}"] == 3 and counts[0][f"urgings_level_2|{asking}"] == 1
        totals = [await service.totals(db) for db in (live, again_db)]
        ours = [{k: v for k, v in t.items() if any(code in k for code in (declining, taking, asking))} for t in totals]
        assert ours[0] == ours[1] and ours[0][f"transfers_granted|{asking}"] == 1
    finally:
        await mongo.drop_database(rebuilt)
        await mongo.close()


async def test_two_cohandlers_contributions_one_met_one_breached_count_against_each_and_rebuild_the_same(
    stats, quiet_servers, demo_keys
):
    """Routed with two co-handlers, each with its contribution clock: one contributes in time, the other's clock
    breaches and its part comes late. Each counts against its co-handler, apart from the lead's clocks, once though
    republished, in /v1/stats/departments, the metric and the daily report; a rebuild gives the same."""
    client, run, headers = stats
    hour = (datetime.now(UTC) - timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    at = hour + timedelta(minutes=5)
    window = {"from": hour.isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    # City departments of this test's own: /v1/stats/departments lists the city's, and the metric is all-time.
    lead, prompt, late = "futian-finance", "futian-hrss", "futian-mii"
    appeal_id = new_id()
    due = at + timedelta(minutes=30)

    def lifecycle(type_, status, seq, minutes, **extra):
        event = changed(
            type_,
            status,
            seq,
            at + timedelta(minutes=minutes),
            department=lead,
            appeal_id=appeal_id,
            submitted_at=at,
            cohandlers=[prompt, late],
            **extra,
        )
        return APPEALS_LIFECYCLE, event

    def clock(type_, state, minutes, kind, department, generation=1):
        event = clock_event(
            type_, state, at + timedelta(minutes=minutes), kind, due, department, generation, appeal_id=appeal_id
        )
        event.data.started_at = at
        if type_ == EventType.sla_breached:
            event.data.fired_at, event.data.level = event.time, 100
        return event

    running, met = ClockState.running, ClockState.met
    started = packed(
        clock(EventType.sla_started, running, 0, "scope", lead),
        clock(EventType.sla_started, running, 0, "contribution", prompt, 1),
        clock(EventType.sla_started, running, 0, "contribution", late, 2),
    )
    in_time = packed(clock(EventType.sla_met, met, 10, "contribution", prompt, 1))
    breach = clock(EventType.sla_breached, ClockState.breached, 30, "contribution", late, 2)
    breached = packed(breach)
    story = [
        (APPEALS_SUBMITTED, submitted(at=at, appeal_id=appeal_id)),
        lifecycle(EventType.appeal_routed, AppealStatus.routed, 1, 0),
        (SLA_EVENTS_V2, started),
        lifecycle(EventType.appeal_contributed, AppealStatus.routed, 2, 10, actor=prompt, note="Our part"),
        (SLA_EVENTS_V2, in_time),
        lifecycle(EventType.appeal_resolved, AppealStatus.resolved, 3, 20, resolution="Done"),
        (SLA_EVENTS_V2, packed(clock(EventType.sla_met, met, 20, "scope", lead))),
        (SLA_EVENTS_V2, breached),
        # The late part only ends the breached clock: sla publishes nothing for it.
        lifecycle(EventType.appeal_contributed, AppealStatus.resolved, 4, 40, actor=late, note="Late, sorry"),
    ]
    story += [(SLA_EVENTS_V2, in_time), (SLA_EVENTS_V2, breached), (SLA_EVENTS, breach)]
    await publish(quiet_servers.bootstrap, story)

    async def rows() -> dict | None:
        body = (await client.get("/v1/stats/departments", params=window, headers=headers)).json()
        found = {d["department"]: d for d in body["departments"] if d["department"] in (lead, prompt, late)}
        done = found[prompt]["contributions_on_time"] and found[late]["contributions_late"]
        return found if done and found[lead]["resolved"] and found[lead]["clocks"]["scope"]["met"] else None

    assert await eventually(rows), "stats did not count the contributions"
    await asyncio.sleep(1.0)  # a duplicate counted twice would show now
    found = await rows()
    assert found
    figures = {
        code: (row["contributions_on_time"], row["contributions_late"], row["contribution_rate"])
        for code, row in found.items()
    }
    assert figures == {lead: (0, 0, None), prompt: (1, 0, 1.0), late: (0, 1, 0.0)}
    assert found[late]["clocks"]["contribution"] == {
        "met": 0,
        "breached": 1,
        "overdue": 0,
        "running": 0,
        "cancelled": 0,
    }
    assert found[late]["breach_rate"]["contribution"] == 1.0 and found[late]["urgings_level_1"] == 1
    assert found[prompt]["breach_rate"]["contribution"] == 0.0 and found[prompt]["assigned"] == 0
    # The lead's figures hold its own clocks alone: the missing part is not its breach.
    assert found[lead]["breach_rate"] == {"scope": 0.0, "response": None, "resolution": None, "contribution": None}
    assert found[lead]["response_rate"] == 1.0 and found[lead]["urgings_level_1"] == 0
    assert (found[lead]["assigned"], found[lead]["resolved"]) == (1, 1), "a contribution is no assignment"

    async def exported() -> str | None:
        text = (await client.get("/metrics")).text
        return text if metric(text, "appeals_supervision_total", department=late, figure="contributions_late") else None

    text = await eventually(exported)
    assert text, "the metric did not reach the contributions"
    for department, figure, n in (
        (prompt, "contributions_on_time", 1),
        (prompt, "contributions_late", 0),
        (late, "contributions_late", 1),
        (late, "contributions_on_time", 0),
        (lead, "contributions_on_time", 0),
        (lead, "contributions_late", 0),
    ):
        assert metric(text, "appeals_supervision_total", department=department, figure=figure) == n, (
            department,
            figure,
        )

    daily = await client.get("/v1/reports/daily", params=window, headers={**headers, "Accept": "text/csv"})
    lines = daily.text.splitlines()
    assert f"contribution_rate,{prompt},1,1.0" in lines and f"contribution_rate,{late},0,0.0" in lines
    report = (await client.get("/v1/reports/daily", params=window, headers=headers)).json()
    assert "Co-handlers gave 1 contribution on time; 1 came late or not at all (50% on time)." in report["text"]

    rebuilt = f"stats_{run}_contributions"
    await rebuild(settings(quiet_servers, demo_keys, run), rebuilt)
    mongo = AsyncMongoClient(quiet_servers.mongodb_uri, tz_aware=True)
    try:
        start, end = hour, hour + timedelta(hours=1)
        live, again = mongo[f"stats_{run}"], mongo[rebuilt]
        counts = [await service.window(db, "h:", start, end, SHANGHAI) for db in (live, again)]
        assert counts[0] == counts[1]
        assert counts[0][f"clock|{prompt}|contribution|met"] == counts[0][f"clock|{late}|contribution|breached"] == 1
        totals = [await service.totals(db) for db in (live, again)]
        ours = [{k: v for k, v in t.items() if any(code in k for code in (lead, prompt, late))} for t in totals]
        assert ours[0] == ours[1]
        assert ours[0][f"contributions_on_time|{prompt}"] == ours[0][f"contributions_late|{late}"] == 1
        docs = [await db.appeals.find_one({"_id": appeal_id}) for db in (live, again)]
        assert docs[0]["clocks"] == docs[1]["clocks"] and len(docs[0]["clocks"]) == 3
    finally:
        await mongo.drop_database(rebuilt)
        await mongo.close()


async def test_stats_refuses_periods_it_cannot_count_and_says_which_period_it_counted(stats):
    client, _, headers = stats
    bad = await client.get("/v1/stats/summary", params={"from": "2021-05-05T10:30:00+00:00"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "from"
    before = await client.get("/v1/stats/summary", params={"from": "1999-12-31"}, headers=headers)
    assert before.status_code == 422 and before.json()["errors"][0]["field"] == "from"
    # What the document's pattern takes is counted: a backwards period is the empty one, a long one its last 400 days.
    backwards = await client.get(
        "/v1/stats/departments", params={"from": "2021-05-06", "to": "2021-05-05"}, headers=headers
    )
    assert backwards.status_code == 200 and backwards.json()["from"] == backwards.json()["to"]
    assert backwards.json()["from"].startswith("2021-05-06T00:00:00")
    long = await client.get("/v1/stats/summary", params={"from": "2020-01-01", "to": "2026-01-01"}, headers=headers)
    assert long.status_code == 200, long.text
    assert (long.json()["from"][:10], long.json()["to"][:10]) == ("2024-11-27", "2026-01-01")
    assert (await client.get("/v1/stats/summary", params={"group_by": "colour"}, headers=headers)).status_code == 422
    assert (await client.get("/v1/stats/summary")).status_code == 401


async def test_an_unreadable_delivery_goes_to_the_dead_letter_topic_and_counting_goes_on(stats, quiet_servers):
    client, _, headers = stats
    marker = new_id()
    producer = AIOKafkaProducer(bootstrap_servers=quiet_servers.bootstrap, acks="all")
    await producer.start()
    try:
        # Only stats consumes notify.deliveries.v1, so this copy in the .dlq is stats'.
        await producer.send_and_wait(NOTIFY_DELIVERIES, f'{{"type": "mystery.v1", "id": "{marker}"}}'.encode())
    finally:
        await producer.stop()
    dead = await read_topic(
        quiet_servers.bootstrap, dead_letter_topic(NOTIFY_DELIVERIES), lambda e: e.get("id") == marker
    )
    assert dead, "the unreadable message did not reach the .dlq"
    before = (await client.get("/v1/stats/summary", params=WINDOW, headers=headers)).json()["total"]
    appeal_id = new_id()
    at = HOUR + timedelta(minutes=30)
    await publish(quiet_servers.bootstrap, [(APPEALS_SUBMITTED, submitted(at=at, appeal_id=appeal_id))])

    async def counted():
        body = (await client.get("/v1/stats/summary", params=WINDOW, headers=headers)).json()
        return body["total"] == before + 1

    assert await eventually(counted), "stats stopped counting after the bad message"


async def test_districts_no_city_has_count_as_themselves_and_stop_nothing(stats, quiet_servers):
    """What intake refuses, written straight to the bus: values that would nest, break or split a counter's name,
    and a formula. Each counts under its own name, the next appeals count too, and every report renders."""
    client, _, headers = stats
    start = datetime(2021, 7, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    window = {"from": "2021-07-07T02:00:00+00:00", "to": "2021-07-07T03:00:00+00:00"}
    odd = ["nanshan.x", "a..b", "$where", "a|b", "100%", '=HYPERLINK("http://evil.example","x")', "<b>*x*</b>"]
    items = []
    for i, district in enumerate([*odd, "nanshan", "nanshan"]):
        event = submitted(at=start + timedelta(minutes=i), appeal_id=new_id(), uscc=valid_uscc(i))
        event.data.enterprise.district = district
        items.append((APPEALS_SUBMITTED, event))
    await publish(quiet_servers.bootstrap, items)

    async def counted():
        body = (await client.get("/v1/stats/summary", params=window, headers=headers)).json()
        return body if body["total"] == len(items) else None

    body = await eventually(counted)
    assert body, "stats stopped counting at a district it could not store"
    assert {g["key"]: g["count"] for g in body["groups"]["district"]} == {**dict.fromkeys(odd, 1), "nanshan": 2}
    daily = {"date": "2021-07-07"}
    rows = list(
        csv.reader(
            io.StringIO(
                (await client.get("/v1/reports/daily", params=daily, headers={**headers, "Accept": "text/csv"})).text
            )
        )
    )
    districts = {row[1] for row in rows if row[0] == "districts"}
    assert "'" + odd[5] in districts and not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)
    markdown = (
        await client.get("/v1/reports/daily", params=daily, headers={**headers, "Accept": "text/markdown"})
    ).text
    assert "| a\\|b | 1 |" in markdown and "\\<b\\>\\*x\\*\\</b\\>" in markdown
    assert (await client.get("/metrics")).status_code == 200
    dead = await read_topic(quiet_servers.bootstrap, dead_letter_topic(APPEALS_SUBMITTED), lambda e: True, timeout=2)
    assert dead == [], "nothing was dead-lettered: every value counts"


def appeals_over_days(start: datetime, n: int) -> list[Delivered]:
    """n appeals, one every 97 minutes from `start`: routed, answered, a third resolved, some confirmed; in order."""
    rng = random.Random(n)
    timed = []
    for i in range(n):
        appeal_id, at = new_id(), start + timedelta(minutes=97 * i)
        routed = at + timedelta(seconds=5)
        answered, resolved = (
            at + timedelta(minutes=rng.uniform(5, 600)),
            at + timedelta(minutes=rng.uniform(600, 3000)),
        )
        story = [
            (at, APPEALS_SUBMITTED, submitted(at=at, appeal_id=appeal_id)),
            (
                routed,
                APPEALS_LIFECYCLE,
                changed(EventType.appeal_routed, AppealStatus.routed, 1, routed, appeal_id=appeal_id, submitted_at=at),
            ),
            (
                answered,
                APPEALS_LIFECYCLE,
                changed(
                    EventType.appeal_accepted,
                    AppealStatus.accepted,
                    2,
                    answered,
                    appeal_id=appeal_id,
                    submitted_at=at,
                    note="On it",
                ),
            ),
        ]
        if i % 3 == 0:
            story.append(
                (
                    resolved,
                    APPEALS_LIFECYCLE,
                    changed(
                        EventType.appeal_resolved,
                        AppealStatus.resolved,
                        3,
                        resolved,
                        appeal_id=appeal_id,
                        submitted_at=at,
                        resolution="Done",
                    ),
                )
            )
        if i % 6 == 0:
            confirmed = resolved + timedelta(hours=5)
            story.append(
                (
                    confirmed,
                    APPEALS_LIFECYCLE,
                    changed(
                        EventType.appeal_confirmed,
                        AppealStatus.confirmed,
                        4,
                        confirmed,
                        appeal_id=appeal_id,
                        submitted_at=at,
                        satisfaction=rng.randint(1, 5),
                    ),
                )
            )
        timed += [(when, topic, i % 2 if topic == APPEALS_LIFECYCLE else 0, event) for when, topic, event in story]
    timed.sort(key=lambda t: t[0])
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    out = []
    for _, topic, partition, event in timed:
        out.append(Delivered(topic, partition, offsets[(topic, partition)], event))
        offsets[(topic, partition)] += 1
    return out


async def _day_buckets_add_up_their_hours(db, tz: ZoneInfo) -> int:
    """Every day bucket equals the sum of the hour buckets that add into it; returns how many there are."""
    days, sums = {}, defaultdict(lambda: defaultdict(int))
    for collection in (service.BUCKETS, service.SKETCHES):
        async for doc in db[collection].find({}, {"c": 1}):
            name, c = doc["_id"], {k: v for k, v in doc.get("c", {}).items() if v}
            if name.startswith(("hd:", "ld:")):
                days[name] = c
            elif day := projection.day_of(name, tz):
                for k, v in c.items():
                    sums[day][k] += v
    assert days == {d: dict(c) for d, c in sums.items()}
    return len(days)


def periods(tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    def at(day: int, hour: int = 0) -> datetime:
        return datetime(2026, 3, day, hour, tzinfo=tz)

    return [
        (at(27, 10), at(30, 15)),  # mid-day to mid-day over days, 29 March (DST in Berlin) among them
        (at(29), at(30)),  # exactly the day of the change
        (at(27), at(31)),  # whole days only
        (at(28, 3), at(28, 19)),  # within one day
        (at(28, 13), at(29)),  # mid-day to midnight
        (at(30), at(31, 7)),  # midnight to mid-day
        (datetime(2026, 3, 27, 5, tzinfo=UTC), datetime(2026, 3, 31, 5, tzinfo=UTC)),  # UTC hours
        (at(20), at(31) + timedelta(days=10)),
    ]  # all of it and empty days around


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "Asia/Kolkata"])
async def test_whole_days_read_from_day_buckets_add_up_to_the_same_as_their_hours(real_servers, zone):
    tz = ZoneInfo(zone)
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"stats_days_{new_id().lower()}"]
    deliveries = appeals_over_days(datetime(2026, 3, 26, 20, tzinfo=UTC), 90)
    try:
        await service.prepare_days(db, tz, datetime.now(UTC))
        for start in range(0, len(deliveries), 37):
            await service.project(db, deliveries[start : start + 37], tz)
        await service.project(db, deliveries[74:111], tz)  # redelivered: counts nothing twice, days included
        days = await _day_buckets_add_up_their_hours(db, tz)
        assert (days == 0) == (zone == "Asia/Kolkata"), "no day buckets where hours straddle midnight"
        since = await service.days_since(db, tz)
        used = 0
        for start, end in periods(tz):
            for prefix in ("h:", "l:"):
                hourly = service.add_up(await service.hourly(db, prefix, start, end))
                assert await service.window(db, prefix, start, end, tz) == hourly, (prefix, start, end)
                assert hourly, "every period holds appeals"
            used += len(projection.cover(start, end, tz, since)[0])
        assert (used == 0) == (zone == "Asia/Kolkata")
        total = service.add_up(await service.hourly(db, "h:", *periods(tz)[-1]))
        assert total["n"] == 90 and total["resolved"] == 30
        starts = [s for s, _ in periods(tz)]
        sums = await service.windows(db, "h:", periods(tz), tz)
        assert [s["n"] for s in sums] == [
            service.add_up(await service.hourly(db, "h:", s, e)).get("n", 0) for s, e in periods(tz)
        ], starts
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_days_counted_before_there_were_day_buckets_are_read_by_the_hour(real_servers, caplog):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"stats_upgrade_{new_id().lower()}"]
    deliveries = appeals_over_days(datetime(2026, 3, 26, 20, tzinfo=UTC), 60)
    start, end = datetime(2026, 3, 27, tzinfo=SHANGHAI), datetime(2026, 4, 1, tzinfo=SHANGHAI)
    upgraded = datetime(2026, 3, 28, 12, tzinfo=SHANGHAI)
    before = len([d for d in deliveries if d.event.time < upgraded])
    try:
        # A database of the hourly-only version: its hours, no day buckets, no note of them.
        await service.project(db, deliveries[:before], SHANGHAI)
        await db[service.BUCKETS].delete_many({"_id": {"$regex": "^hd:"}})
        await db[service.SKETCHES].delete_many({"_id": {"$regex": "^ld:"}})
        await service.prepare_days(db, SHANGHAI, upgraded)
        assert await service.days_since(db, SHANGHAI) == date(2026, 3, 29)
        await service.project(db, deliveries[before:], SHANGHAI)
        days, _ = projection.cover(start, end, SHANGHAI, await service.days_since(db, SHANGHAI))
        assert days == ["2026-03-29", "2026-03-30", "2026-03-31"]
        hourly = service.add_up(await service.hourly(db, "h:", start, end))
        assert await service.window(db, "h:", start, end, SHANGHAI) == hourly and hourly["n"] == 60
        await service.prepare_days(db, SHANGHAI, datetime(2026, 4, 2, tzinfo=SHANGHAI))
        assert await service.days_since(db, SHANGHAI) == date(2026, 3, 29), "decided once"
        berlin = ZoneInfo("Europe/Berlin")
        with caplog.at_level(logging.WARNING, logger=service.__name__):
            await service.prepare_days(db, berlin, datetime(2026, 4, 2, tzinfo=berlin))
        assert "another time zone" in caplog.text
        assert await service.days_since(db, berlin) is None and await service.days_since(db, SHANGHAI) is None
        assert await service.window(db, "h:", start, end, berlin) == hourly
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_partition_that_begins_again_counts_its_new_events_and_no_old_one_twice(real_servers):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"stats_lives_{new_id().lower()}"]
    first = [Delivered(APPEALS_SUBMITTED, 0, n, submitted(at=HOUR, appeal_id=new_id())) for n in range(5)]
    # The topic was deleted and created again: its offsets start at 0 again, under other events.
    second = [Delivered(APPEALS_SUBMITTED, 0, n, submitted(at=HOUR, appeal_id=new_id())) for n in range(3)]

    async def total() -> int:
        return service.add_up(await service.hourly(db, "h:", HOUR, HOUR + timedelta(hours=1))).get("n", 0)

    try:
        await service.project(db, first, SHANGHAI)
        await service.project(db, first[2:], SHANGHAI)  # a redelivery in the same life
        assert await total() == 5
        await service.project(db, second, SHANGHAI)
        assert await total() == 8, "the new life's events were taken for ones already counted"
        await service.project(db, second, SHANGHAI)
        await service.project(db, first, SHANGHAI)  # events of the old life again: counted already
        assert await total() == 8
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_stats_counts_what_comes_after_the_broker_lost_its_data(real_servers, demo_keys, tmp_path):
    """The broker's data wiped (a new cluster on the same address): offsets start at 0 again, nothing is skipped."""
    port, controller = servers.free_ports(2)
    broker = servers.start_kafka(port, controller, tmp_path / "kafka", tmp_path / "kafka.log")
    bootstrap = f"127.0.0.1:{port}"
    own = settings(real_servers, demo_keys, new_id().lower()).model_copy(update={"kafka_bootstrap_servers": bootstrap})
    hour = datetime(2021, 6, 6, 10, 7, tzinfo=UTC)
    window = {"from": "2021-06-06T10:00:00+00:00", "to": "2021-06-06T11:00:00+00:00"}
    try:
        await ensure_topics(bootstrap, PROJECTED.topics, partitions=1)
        app = create_app(own)
        async with (
            LifespanManager(app, startup_timeout=60),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://stats") as client,
        ):
            headers = {"X-Api-Key": demo_keys[0]["operator"]}

            async def counted(n: int):
                body = (await client.get("/v1/stats/summary", params=window, headers=headers)).json()
                return body["total"] == n

            await publish(bootstrap, [(APPEALS_SUBMITTED, submitted(at=hour, appeal_id=new_id())) for _ in range(5)])
            assert await eventually(lambda: counted(5), timeout=60)
            servers.stop(broker)
            shutil.rmtree(tmp_path / "kafka")
            broker = servers.start_kafka(port, controller, tmp_path / "kafka", tmp_path / "kafka.log")
            await ensure_topics(bootstrap, PROJECTED.topics, partitions=1)
            await publish(bootstrap, [(APPEALS_SUBMITTED, submitted(at=hour, appeal_id=new_id())) for _ in range(3)])
            assert await eventually(lambda: counted(8), timeout=90), "events at offsets counted before were skipped"
    finally:
        servers.stop(broker)


async def test_clocks_kept_apart_by_an_earlier_version_join_their_appeals_and_count_the_same(real_servers):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"stats_adopt_{new_id().lower()}"]
    appeal_id = new_id()
    scope_due, resolution_due = T0 + timedelta(hours=6), T0 + timedelta(hours=72)
    scope = clock_event(EventType.sla_started, "running", T0, due=scope_due, appeal_id=appeal_id, department=DEPT)
    resolution = clock_event(
        EventType.sla_started,
        "running",
        T0,
        clock="resolution",
        due=resolution_due,
        appeal_id=appeal_id,
        department=DEPT,
    )
    try:
        await service.prepare_days(db, SHANGHAI, T0)
        await service.project(db, [Delivered(APPEALS_SUBMITTED, 0, 1, submitted(at=T0, appeal_id=appeal_id))], SHANGHAI)
        # The earlier layout: one document per clock, beside the appeal's, its counts in the buckets already.
        for n, event in enumerate((scope, resolution)):
            doc = projection.new_document(appeal_id)
            delta = projection.record(doc, event)
            await service.apply_changes(db, [service.Counted("sla_events_v1:0", n, delta)], SHANGHAI)
            (kept,) = doc["clocks"].values()
            await db.clocks.insert_one(
                {
                    "_id": event.data.clock_id,
                    "appeal_id": appeal_id,
                    "version": 1,
                    **kept,
                    "applied": [event.id],
                    "deltas": {},
                }
            )
        before = service.add_up(await service.hourly(db, "h:", EVER, NEVER))
        assert before[f"clock|{DEPT}|scope|live"] == 1 and before["n"] == 1

        await service.ensure_indexes(db)
        assert await db.clocks.count_documents({}) == 0
        appeal = await db.appeals.find_one({"_id": appeal_id})
        assert set(appeal["clocks"]) == {"scope:1", "resolution:1"} and appeal["live_due"] == scope_due
        overdue = await service.overdue_clocks(db, T0 + timedelta(hours=10), T0, T0 + timedelta(hours=1))
        assert [(c["department"], c["clock"]) for c in overdue] == [(DEPT, "scope")]

        # Redelivered, an adopted clock's event counts nothing again; a new one counts where it belongs.
        met = clock_event(EventType.sla_met, "met", T0 + timedelta(hours=1), appeal_id=appeal_id, department=DEPT)
        changed_now = await service.project(
            db, [Delivered(SLA_EVENTS, 0, 0, scope), Delivered(SLA_EVENTS, 0, 2, met)], SHANGHAI
        )
        after = service.add_up(await service.hourly(db, "h:", EVER, NEVER))
        assert changed_now == 1
        assert after[f"clock|{DEPT}|scope|met"] == 1 and after.get(f"clock|{DEPT}|scope|live", 0) == 0
        assert after[f"clock|{DEPT}|resolution|live"] == 1 and after["n"] == 1
        assert (await db.appeals.find_one({"_id": appeal_id}))["live_due"] == resolution_due
        assert await service.adopt_clock_documents(db) == 0, "adopted once"
    finally:
        await client.drop_database(db.name)
        await client.close()
