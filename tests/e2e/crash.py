"""What the crash tests share: a run of appeals with departments acting, and what must hold afterwards.

A load task posts `n` distinct, valid appeals at a steady rate, retrying refused or
unanswered posts with the same body; simulated departments read their topics and
accept and resolve most assignments over router's HTTP API (with an Idempotency-Key,
retried while router is away), only accept some and leave others alone, so clocks
stop, warnings and breaches fire and notify sends. Every appeal runs on the
crash_test SLA profile (`crash_config`). Once the stack is quiet, what the broker,
the databases and the notification receivers hold must show:

- every body got one appeal (every 202 for it named the same one);
- each appeal was submitted, routed and assigned to its lead once: one event id each;
  a republished copy keeps its id (outboxes publish at least once), so copies are
  allowed, a second id is not; each department action made one lifecycle event;
- each appeal's three clocks started once, and each threshold (clock, level) fired
  under one id in sla.events.v2 and on the department's topic (`threshold_event_id`
  makes a refire after a crash a copy, not a second warning); clocks nobody answered
  reached every threshold: a crash loses no firing;
- stats counts each appeal once: submitted and resolved totals, lead assignments and
  clocks per kind, and breached clocks match what the topics hold;
- notify holds one notification per (event, recipient, channel) and the receivers got
  each under that one id; a resend after a crash (or an attempt that timed out) keeps
  the id and the very same message, which is what receivers deduplicate on; each
  notification has one outcome event; and none was lost: every company heard of its
  submission, routing and resolution, every warning and breach reached its audience.
"""

import asyncio
import json
import re
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from devstack.stack import Stack
from libs.config import load_city
from libs.contract import (
    APPEALS_ACTIONS,
    APPEALS_CONTACTS,
    APPEALS_LIFECYCLE,
    APPEALS_SUBMITTED_V2,
    CONSUMERS,
    NOTIFY_DELIVERIES,
    SLA_EVENTS,
    SLA_EVENTS_V2,
    SLA_TOPICS,
    department_topic,
    topics_of,
)
from libs.kafka_admin import partitions_of
from libs.settings import PROJECT_ROOT
from libs.uscc import check_character
from tests.helpers import Databases, sla_reports

CLOCKS = ("scope", "response", "resolution")
LEVELS = (50, 80, 100)
CATEGORIES = ("financing", "tax", "labour", "social_security", "approvals", "export")
DISTRICTS = ("nanshan", "futian", "baoan")
# Every consumer group of the platform and what it reads (each department's actions topic among router's).
GROUPS = {c.group: topics_of(c, [d.code for d in load_city(PROJECT_ROOT / "config").departments]) for c in CONSUMERS}


def crash_config(directory: Path) -> Path:
    """config/ with every appeal on the crash_test profile: targets of tens of seconds instead of test_fast's few.

    Notify sends a few messages a second on the shared two-core machine, and every
    breached clock owes nine (handler, head and supervisor, on three channels). On
    test_fast nearly every appeal breaches before a department can answer it; here
    most of the departments' answers (seconds after submission, more while router is
    down) meet their clocks, the appeals they ignore breach within a minute and a half,
    and a whole run stays short enough for `make test`.
    """
    shutil.copytree(PROJECT_ROOT / "config", directory, dirs_exist_ok=True)
    profiles = yaml.safe_load((directory / "sla_profiles.yaml").read_text())
    profiles["profiles"]["crash_test"] = {
        "description": "Kill tests: answers in time meet, silence breaches fast.",
        "scope": "30s",
        "response": "60s",
        "response_with_cohandlers": "60s",
        "resolution": "90s",
    }
    profiles["selection"] = [{"profile": "crash_test"}]
    (directory / "sla_profiles.yaml").write_text(yaml.safe_dump(profiles))
    return directory


def crash_appeal(tag: str, n: int) -> dict[str, Any]:
    """Appeal `n` of run `tag`: valid, distinct (channel_ref, credit code, title), spread over departments."""
    first17 = f"91440300MK{n:07d}"
    return {
        "channel_ref": f"crash-{tag}-{n}",
        "enterprise": {
            "uscc": first17 + check_character(first17),
            "name": f"Crash Test Company {n}",
            "employees": 5 + n % 350,
            "industry": "manufacturing",
            "district": DISTRICTS[n % len(DISTRICTS)],
        },
        "contact": {"name": "Crash Contact", "phone": "13800138000"},
        "category": CATEGORIES[n % len(CATEGORIES)],
        "title": f"Crash run {tag} appeal #{n}",
        "description": "Our working-capital loan falls due; we ask for deferred repayment of principal.",
    }


def plan_of(n: int) -> str:
    """What the departments do with appeal `n`: resolve it, only accept it, or leave it to breach."""
    return {3: "ignore", 6: "accept"}.get(n % 10, "resolve")


@dataclass
class Run:
    stack: Stack
    n: int
    rate: float
    tag: str = field(default_factory=lambda: str(time.time_ns()))
    answers: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # body -> appeal ids of its 202s
    assigned: dict[str, tuple[int, str]] = field(default_factory=dict)  # appeal id -> (body, lead department)
    done: dict[str, str] = field(default_factory=dict)  # appeal id -> last action that succeeded
    answered_after: list[float] = field(default_factory=list)  # seconds from submission to the department's accept
    errors: list[str] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    posted: bool = False
    began: float = field(default_factory=time.monotonic)

    @property
    def accepted(self) -> int:
        return len(self.answers)

    def appeal_of(self, n: int) -> str:
        return next(iter(self.answers[n]))


async def post_until_accepted(run: Run, client: httpx.AsyncClient, body: dict, deadline: float) -> str | None:
    """Post `body` until intake answers 202; refusals (503) and lost answers are retried with the same body."""
    while time.monotonic() < deadline:
        try:
            r = await client.post("/v1/appeals", json=body)
        except httpx.TransportError:
            await asyncio.sleep(0.5)  # intake is down or died mid-request: ask again
            continue
        if r.status_code == 202:
            return r.json()["appeal_id"]
        if r.status_code != 503:
            run.errors.append(f"{body['channel_ref']}: intake answered {r.status_code} {r.text[:200]}")
            return None
        await asyncio.sleep(min(float(r.headers.get("retry-after", "1")), 2.0))
    run.errors.append(f"{body['channel_ref']}: never accepted")
    return None


async def load(run: Run, deadline: float) -> None:
    """Post every appeal at `run.rate` per second, then post a sample again: the same body, the same appeal."""
    stack = run.stack
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=2)
    async with httpx.AsyncClient(
        base_url=stack.url("intake"), limits=limits, timeout=30, headers={"X-Api-Key": stack.keys["channel:web"]}
    ) as client:

        async def one(n: int) -> None:
            appeal_id = await post_until_accepted(run, client, crash_appeal(run.tag, n), deadline)
            if appeal_id:
                run.answers[n].add(appeal_id)

        tasks = []
        began = time.monotonic()
        for n in range(run.n):
            await asyncio.sleep(max(0.0, began + n / run.rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        # A client that never saw its answer posts again; every tenth body, intake's restart included.
        await asyncio.gather(*(one(n) for n in range(0, run.n, 10)))
    run.posted = True


async def act(
    run: Run, client: httpx.AsyncClient, appeal_id: str, department: str, body: dict, deadline: float
) -> bool:
    """One department action, retried under one Idempotency-Key while router is down or dies mid-request."""
    headers = {
        "X-Api-Key": run.stack.keys[f"department:{department}"],
        "Idempotency-Key": f"{run.tag}-{appeal_id}-{body['action']}",
    }
    while time.monotonic() < deadline:
        try:
            r = await client.post(f"/v1/appeals/{appeal_id}/actions", json=body, headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(1)
            continue
        if r.status_code == 200:
            return True
        if r.status_code not in (500, 503):
            run.errors.append(f"{appeal_id}: {body['action']} answered {r.status_code} {r.text[:200]}")
            return False
        await asyncio.sleep(1)
    run.errors.append(f"{appeal_id}: {body['action']} never succeeded")
    return False


async def departments(run: Run, deadline: float) -> None:
    """Read every department topic; accept and resolve, only accept, or ignore each new lead assignment."""
    stack = run.stack
    city = load_city(stack.config_dir)
    title = re.compile(rf"^Crash run {run.tag} appeal #(\d+)$")
    consumer = AIOKafkaConsumer(**stack.kafka_access().client_options(), enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(department_topic(d.code), p) for d in city.departments for p in range(stack.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=2)
    pending: set[asyncio.Task] = set()

    async def handle(appeal_id: str, n: int, department: str, submitted_at: datetime) -> None:
        if plan_of(n) == "ignore":
            return
        if await act(run, client, appeal_id, department, {"action": "accept"}, deadline):
            run.done[appeal_id] = "accept"
            run.answered_after.append((datetime.now(UTC) - submitted_at).total_seconds())
            if plan_of(n) == "resolve" and await act(
                run,
                client,
                appeal_id,
                department,
                {"action": "resolve", "resolution": "Deferred by 6 months."},
                deadline,
            ):
                run.done[appeal_id] = "resolve"

    try:
        async with httpx.AsyncClient(base_url=stack.url("router"), limits=limits, timeout=30) as client:
            while time.monotonic() < deadline and not (run.posted and len(run.assigned) >= run.accepted):
                for records in (await consumer.getmany(timeout_ms=500, max_records=1000)).values():
                    for record in records:
                        event = json.loads(record.value)
                        data = event.get("data", {})
                        if event.get("type") != "assignment.created.v1" or data.get("role") != "lead":
                            continue
                        match = title.match(data["appeal"]["title"])
                        if not match or event["subject"] in run.assigned:
                            continue
                        n = int(match.group(1))
                        run.assigned[event["subject"]] = (n, data["department"])
                        submitted_at = datetime.fromisoformat(data["appeal"]["submitted_at"])
                        task = asyncio.create_task(handle(event["subject"], n, data["department"], submitted_at))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
    finally:
        await consumer.stop()


# --- reading the broker and the databases --------------------------------------------------------------------------


async def read_all(stack: Stack, topics: list[str]) -> dict[str, list[dict]]:
    """Every event on `topics` from the beginning up to their ends as they are now."""
    consumer = AIOKafkaConsumer(**stack.kafka_access().client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await partitions_of(stack.kafka_access(), topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[str, list[dict]] = defaultdict(list)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).items():
                out[tp.topic].extend(json.loads(r.value) for r in records if r.offset < ends[tp])
        return out
    finally:
        await consumer.stop()


async def end_offsets(stack: Stack, topics: list[str]) -> dict[TopicPartition, int]:
    """The end of each partition of `topics`."""
    consumer = AIOKafkaConsumer(**stack.kafka_access().client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(await partitions_of(stack.kafka_access(), topics))
    finally:
        await consumer.stop()


async def consumer_lag(stack: Stack) -> dict[str, int]:
    """Records each consumer group of the platform has not committed yet, asked of the broker."""
    topics = sorted({t for ts in GROUPS.values() for t in ts})
    ends = await end_offsets(stack, topics)
    lag = {}
    for group, read in GROUPS.items():
        # A consumer that names the group but subscribes to nothing reads its commits without joining it.
        consumer = AIOKafkaConsumer(**stack.kafka_access().client_options(), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            lag[group] = 0
            for tp, end in ends.items():
                if tp.topic in read and end:
                    lag[group] += max(0, end - (await consumer.committed(tp) or 0))
        finally:
            await consumer.stop()
    return lag


async def stats_figures(stack: Stack) -> dict[str, int]:
    """Stats' counts for the last day: submitted, resolved, lead assignments, clocks per kind and outcome."""
    headers = {"X-Api-Key": stack.keys["operator"]}
    async with httpx.AsyncClient(base_url=stack.url("stats"), headers=headers, timeout=60) as client:
        summary = (await client.get("/v1/stats/summary")).raise_for_status().json()
        rows = (await client.get("/v1/stats/departments")).raise_for_status().json()["departments"]
    figures = Counter({"submitted": summary["total"], "resolved": summary["resolved"]})
    for row in rows:
        figures["assigned"] += row["assigned"]
        for kind, counts in row["clocks"].items():
            for outcome, n in counts.items():
                figures[f"{kind}|{outcome}"] += n
                figures[f"{kind}|all"] += n
    return dict(figures)


async def busy(run: Run, mongo: Databases) -> dict[str, int]:
    """Work still under way anywhere: consumer lag, outboxes, claims, clocks to fire, notifications to send.

    Each database question is a range on an indexed field, and none is asked while consumers lag:
    the stack shares its one database server with this polling.
    """
    lag = {group: n for group, n in (await consumer_lag(run.stack)).items() if n}
    if lag:
        return {"lag": lag}
    ever = datetime(2000, 1, 1)
    left = {
        "router outboxes": await mongo.router.appeals.count_documents({"outbox_since": {"$gte": ever}}),
        # Within the run's reach: the urging ladder's levels (working days after a breach) and co-handlers'
        # contributions (3wd) stay scheduled long after a run.
        "sla appeals with clocks to fire": await mongo.sla.appeals.count_documents(
            {"next_fire_at": {"$gte": ever, "$lte": datetime.now(UTC) + timedelta(minutes=10)}}
        ),
        "sla outboxes": await mongo.sla.appeals.count_documents({"outbox_since": {"$gte": ever}}),
        "sla claims": await mongo.sla.appeals.count_documents({"claim_until": {"$gte": ever}}),
        # Held messages wait for office hours; anything else with a due time is still to be sent.
        "notifications to send": await mongo.notify.notices.count_documents(
            {"due_at": {"$gte": ever}, "status": {"$ne": "held"}}
        ),
        "notify claims": await mongo.notify.notices.count_documents({"claim_until": {"$gte": ever}}),
        "appeals not yet assigned": run.accepted - len(run.assigned),
    }
    return {k: v for k, v in left.items() if v}


async def wait_until_quiet(
    run: Run, mongo: Databases, expected_submitted: int, timeout: float, stalled_after: float = 600.0
) -> None:
    """Poll until nothing is under way, stats has counted every appeal, and no topic grows for a while.

    However long the backlog, the wait goes on while it moves; it fails once nothing has changed for
    `stalled_after` seconds, or after `timeout`.
    """
    began = time.monotonic()
    topics = [
        APPEALS_SUBMITTED_V2,
        APPEALS_CONTACTS,
        APPEALS_LIFECYCLE,
        *SLA_TOPICS,
        NOTIFY_DELIVERIES,
        APPEALS_ACTIONS,
    ]
    last, left, moved, next_report = None, {}, began, began + 30
    while time.monotonic() - began < timeout and time.monotonic() - moved < stalled_after:
        left = await busy(run, mongo)
        submitted = (await stats_figures(run.stack))["submitted"] if not left else None
        if submitted not in (None, expected_submitted):
            left["stats submitted"] = submitted
        now = (left, await end_offsets(run.stack, topics))
        if not left and now == last:
            return
        if now != last:
            moved = time.monotonic()
        if time.monotonic() >= next_report:  # shown with -s: where a long run stands
            print(
                f"{time.monotonic() - run.began:.0f} s, waiting for quiet: {left or 'topics still growing'}", flush=True
            )
            next_report = time.monotonic() + 60
        last = now
        await asyncio.sleep(10)
    raise AssertionError(
        f"the stack never went quiet; still under way: {left} (stats expects {expected_submitted}); "
        f"{'nothing moved for %.0f s' % (time.monotonic() - moved) if last else ''}"
    )


# --- the invariants ------------------------------------------------------------------------------------------------


def ids_by(events: list[dict], key) -> dict[Any, set[str]]:
    """Distinct event ids per `key(event)` (None keys left out)."""
    out: dict[Any, set[str]] = defaultdict(set)
    for e in events:
        k = key(e)
        if k is not None:
            out[k].add(e["id"])
    return out


def twice(groups: dict[Any, set[str]]) -> dict[Any, set[str]]:
    return {k: v for k, v in groups.items() if len(v) > 1}


def copies(events: list[dict]) -> int:
    """Events seen more than once under the same id (at-least-once publishing)."""
    return sum(n - 1 for n in Counter(e["id"] for e in events).values())


def content_key(event: dict) -> tuple:
    """What an event is about, whatever its id: a second id for the same key is a second event."""
    data = event["data"]
    if event["type"] in ("sla.warning.v1", "sla.breached.v1"):
        return ("threshold", data["clock_id"], data["level"])
    if event["type"].startswith("sla."):
        return (event["type"], data["clock_id"])
    return (event["type"], event["subject"], data.get("sequence"))


def sink_records(outbox: Path) -> list[dict]:
    """What the local receivers got: e-mail, SMS, WeChat and webhook calls, each with its delivery id."""
    records = []
    for path in sorted(outbox.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return records


def sink_message(record: dict) -> str:
    """The message itself (not when it came): a resend under the same id must carry the same one."""
    return json.dumps(
        {k: record.get(k) for k in ("kind", "name", "to", "subject", "body")}, sort_keys=True, ensure_ascii=False
    )


async def check_invariants(run: Run, mongo: Databases, before: dict[str, int]) -> list[str]:
    stack = run.stack
    report: list[str] = []
    city = load_city(stack.config_dir)

    # Every body got one appeal, whichever of its 202s we look at.
    assert not run.errors, run.errors[:20]
    assert {n: len(ids) for n, ids in run.answers.items() if len(ids) != 1} == {}, "one body, one appeal"
    assert sorted(run.answers) == list(range(run.n))
    appeal_of = {run.appeal_of(n): n for n in range(run.n)}
    mine = set(appeal_of)
    assert len(mine) == run.n, "distinct bodies made distinct appeals"

    dept_topics = [department_topic(d.code) for d in city.departments]
    topics = await read_all(
        stack, [APPEALS_SUBMITTED_V2, APPEALS_LIFECYCLE, *SLA_TOPICS, NOTIFY_DELIVERIES, *dept_topics]
    )
    submitted = [e for e in topics[APPEALS_SUBMITTED_V2] if e.get("subject") in mine]
    lifecycle = [e for e in topics[APPEALS_LIFECYCLE] if e.get("subject") in mine]
    # Each clock's report as the sla.*.v1 event it stands for, whichever version carried it.
    reports = [*topics[SLA_EVENTS], *(r for packed in topics[SLA_EVENTS_V2] for r in sla_reports(packed))]
    sla = [e for e in reports if e.get("subject") in mine]
    deliveries = [e for e in topics[NOTIFY_DELIVERIES] if e.get("subject") in mine]
    on_dept = [e for t in dept_topics for e in topics[t] if e.get("subject") in mine]

    # Intake and router: one submission, one routing, one lead assignment, one event per department action.
    assert {a: len(ids) for a, ids in ids_by(submitted, lambda e: e["subject"]).items()} == dict.fromkeys(mine, 1)
    routed = ids_by(lifecycle, lambda e: e["subject"] if e["type"] == "appeal.routed.v1" else None)
    assert {a: len(routed.get(a, ())) for a in mine} == dict.fromkeys(mine, 1), "every appeal routed once"
    leads = ids_by(
        on_dept,
        lambda e: e["subject"] if e["type"] == "assignment.created.v1" and e["data"]["role"] == "lead" else None,
    )
    assert {a: len(leads.get(a, ())) for a in mine} == dict.fromkeys(mine, 1), "one lead assignment each"
    assert twice(ids_by(lifecycle, lambda e: (e["subject"], e["type"]))) == {}, "each transition once"
    assert twice(ids_by(lifecycle, lambda e: (e["subject"], e["data"]["sequence"]))) == {}
    types = Counter(e["type"] for e in {e["id"]: e for e in lifecycle}.values())
    resolved = {a for a, action in run.done.items() if action == "resolve"}
    accepted = set(run.done)
    assert types == Counter(
        {"appeal.routed.v1": run.n, "appeal.accepted.v1": len(accepted), "appeal.resolved.v1": len(resolved)}
    ), types
    assert {run.appeal_of(n) for n in range(run.n) if plan_of(n) != "ignore"} == accepted
    assert {run.appeal_of(n) for n in range(run.n) if plan_of(n) == "resolve"} == resolved
    report.append(
        f"copies under the same id: submitted {copies(submitted)}, lifecycle {copies(lifecycle)}, "
        f"department topics {copies(on_dept)}"
    )

    # SLA: three clocks per appeal, each started once; each threshold fired under one id, on both topics.
    started = ids_by(sla, lambda e: e["data"]["clock_id"] if e["type"] == "sla.started.v1" else None)
    assert set(started) == {f"{a}:{kind}:1" for a in mine for kind in CLOCKS}, "three clocks per appeal"
    assert twice(started) == {}, "each clock started once"
    kept = [c["_id"] async for doc in mongo.sla.appeals.find({"_id": {"$in": list(mine)}}) for c in doc["clocks"]]
    assert sorted(kept) == sorted(started), "each appeal's document holds its three clocks"
    assert twice(ids_by(sla, lambda e: content_key(e) if e["type"] != "sla.started.v1" else None)) == {}
    fired = ids_by(sla, lambda e: content_key(e) if e["type"] in ("sla.warning.v1", "sla.breached.v1") else None)
    assert twice(fired) == {}, "no warning or breach fired twice"
    fired_on_dept = ids_by(on_dept, lambda e: content_key(e) if e["type"].startswith("sla.") else None)
    assert fired_on_dept == fired, "the department topic has the same thresholds under the same ids"
    for n in range(run.n):
        a = run.appeal_of(n)
        owed = {c for c in CLOCKS if plan_of(n) == "ignore" or (plan_of(n) == "accept" and c != "scope")}
        reached = {(c, lv) for c in CLOCKS for lv in LEVELS if ("threshold", f"{a}:{c}:1", lv) in fired}
        assert {(c, lv) for c in owed for lv in LEVELS} <= reached, f"appeal {n} ({plan_of(n)}) lost a firing"
    thresholds = [e for e in sla if e["type"] in ("sla.warning.v1", "sla.breached.v1")]
    breached = {key[1] for key in fired if key[2] == 100}
    report.append(
        f"sla: {len(fired)} thresholds fired ({len(breached)} breaches), "
        f"{copies(thresholds)} redelivered copies under the same id"
    )

    # Stats: each appeal, assignment and clock counted once.
    figures = await stats_figures(stack)
    delta = {k: figures.get(k, 0) - before.get(k, 0) for k in figures.keys() | before.keys()}
    assert delta["submitted"] == run.n and delta["assigned"] == run.n, delta
    assert delta["resolved"] == len(resolved), delta
    for kind in CLOCKS:
        assert delta[f"{kind}|all"] == run.n, (kind, delta)
        assert delta[f"{kind}|breached"] == sum(1 for c in breached if c.split(":")[1] == kind), (kind, delta)
        assert delta.get(f"{kind}|running", 0) == delta.get(f"{kind}|overdue", 0) == 0, (kind, delta)

    # Notify: one delivery per (event, recipient, channel); one id per such triple as the receivers saw it.
    records = [
        {"_id": d["id"], "event": n["event"], "event_type": n["event_type"], "appeal_id": n["appeal_id"], **d}
        async for n in mongo.notify.notices.find(
            {"appeal_id": {"$in": list(mine)}},
            {"event": 1, "event_type": 1, "appeal_id": 1, "deliveries": 1},
        )
        for d in n["deliveries"]
    ]
    by_content: dict[tuple, set[str]] = defaultdict(set)
    for d in records:
        by_content[(content_key(d["event"]), d["recipient"], d["channel"])].add(d["_id"])
    assert twice(by_content) == {}, "a notification went twice under two ids"
    status = Counter(d["status"] for d in records)
    assert set(status) <= {"delivered", "held"}, status
    received: dict[str, list[dict]] = defaultdict(list)
    for r in sink_records(stack.data_dir / "outbox"):
        # Notify's e-mail header folds ids too long for one 78-character line ("X-Appeals-Delivery:\n <id>"),
        # and the receiver reads the folded value with its leading space: the id is the value without it.
        received[(r.get("delivery") or "").strip()].append(r)
    ours = {d["_id"]: d for d in records}
    delivered = {i for i, d in ours.items() if d["status"] == "delivered"}
    got = {i for i in received if i in ours}
    assert delivered <= got, f"{len(delivered - got)} delivered notifications never reached a receiver"
    assert got <= delivered | {i for i, d in ours.items() if d["status"] == "held"}
    differing = {i: len({sink_message(r) for r in received[i]}) for i in got}
    assert {i: n for i, n in differing.items() if n > 1} == {}, "a resend carries the very same message"
    outcomes = ids_by(deliveries, lambda e: e["data"]["notification_id"])
    assert set(outcomes) == delivered and twice(outcomes) == {}, "one outcome event per notification"
    # Nor was one lost to the crashes and the backlogs they leave: the company hears of its submission, its
    # routing and its resolution (docs/domain.md, "Notifications"), and each warning or breach reaches its audience.
    told = {(d["appeal_id"], d["event_type"]) for d in records if d["recipient"] == "company"}
    owed = {(a, t) for a in mine for t in ("appeal.submitted.v2", "appeal.routed.v1")} | {
        (a, "appeal.resolved.v1") for a in resolved
    }
    untold = sorted(owed - told)
    assert not untold, f"{len(untold)} company notices never planned, e.g. {untold[:5]}"
    audiences = {50: ("handler",), 80: ("handler", "head"), 100: ("handler", "head", "supervisor")}
    department = {content_key(e): e["data"]["department"] for e in thresholds}
    heard: dict[tuple, set[str]] = defaultdict(set)
    for d in records:
        if d["event_type"] in ("sla.warning.v1", "sla.breached.v1"):
            heard[content_key(d["event"])].add(d["recipient"])
    unheard = {key: sorted({f"{department[key]}:{role}" for role in audiences[key[2]]} - heard[key]) for key in fired}
    unheard = {key: who for key, who in unheard.items() if who}
    assert not unheard, f"{len(unheard)} thresholds not told to their audience, e.g. {list(unheard.items())[:3]}"
    company = Counter(t for _, t in told)
    resent = sum(len(received[i]) - 1 for i in got)
    report.append(
        f"notify: {len(records)} notifications {dict(status)}, {sum(len(received[i]) for i in got)} "
        f"received, {resent} resent under the same id; company notices {dict(company)}"
    )
    return report
