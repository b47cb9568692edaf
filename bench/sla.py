"""`python -m bench.sla`: fire lag of SLA thresholds with many running clocks (docs/benchmarks.md, `sla`).

Each phase writes running clocks straight into a fresh sla database: `--due` of
them reach their 80 % warning and their breach inside the window, the rest are
due next week. The real sla service (its own process) fires them; a consumer of
`sla.events.v2` records when each threshold's report arrives. Lag is arrival minus the
threshold's due time. Two phases with the same number due and different numbers
running show whether the scheduler's cost follows the clocks due or running.
The baseline is a raw acks=all produce loop and a raw bulk_write on the same servers.
"""

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient, UpdateOne
from tqdm import tqdm

from bench.common import (
    bench_servers,
    cpu_seconds,
    exit_on_sigterm,
    median,
    percentile,
    print_table,
    rss_mb,
    start_service,
)
from devstack import servers
from libs.contract import SLA_EVENTS_V2
from libs.kafka.topics import ensure_topics
from libs.kafka_admin import partitions_of
from services.sla import service

LEAD_SECONDS = 8.0  # between the last insert and the first due threshold


def reports(value: bytes) -> list[dict]:
    """The clock reports of one `sla.reported.v2` record, each with its id, type and data."""
    return json.loads(value)["data"]["reports"]


def clock_doc(i: int, due: datetime, target: float, fired: list[int], prefix: str = "BENCH") -> dict:
    started = due - timedelta(seconds=target)
    pending = [lv for lv in (50, 80, 100) if lv not in fired]
    return {
        "_id": f"{prefix}{i:08d}:resolution:1",
        "appeal_id": f"{prefix}{i:08d}",
        "clock": "resolution",
        "generation": 1,
        "department": "nanshan-finance",
        "sla_profile": "standard_72h",
        "target": f"{target:g}s",
        "calendar": "default",
        "state": "running",
        "started_at": started,
        "segment_start": started,
        "consumed": 0.0,
        "budget": target,
        "levels_fired": fired,
        "version": 1,
        "due_at": due,
        "next_level": pending[0],
        "next_fire_at": started + timedelta(seconds=target * pending[0] / 100),
        "category": "financing",
        "district": "nanshan",
    }


def appeal_of(clock: dict) -> dict:
    """The appeal's document in sla's database, holding its one clock as sla keeps it."""
    return service.appeal_document(clock["appeal_id"], [clock])


async def baseline(bootstrap: str, mongodb_uri: str, n: int = 20_000) -> dict[str, float]:
    """Raw acks=all produce rate and raw bulk update rate on the same servers."""
    await ensure_topics(bootstrap, ["bench.baseline"], partitions=4)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    payload = b"x" * 600
    began = time.perf_counter()
    for start in range(0, n, 1000):
        await asyncio.gather(
            *[producer.send("bench.baseline", payload, key=str(i).encode()) for i in range(start, start + 1000)]
        )
    await producer.flush()
    publish_rate = n / (time.perf_counter() - began)
    await producer.stop()
    client = AsyncMongoClient(mongodb_uri)
    coll = client.bench_baseline.docs
    await coll.drop()
    await coll.insert_many([{"_id": i, "v": 0} for i in range(n)])
    began = time.perf_counter()
    for start in range(0, n, 1000):
        await coll.bulk_write([UpdateOne({"_id": i}, {"$inc": {"v": 1}}) for i in range(start, start + 1000)])
    write_rate = n / (time.perf_counter() - began)
    await client.close()
    return {"publish": publish_rate, "writes": write_rate}


async def phase(srv, running: int, due: int, window: float, label: str) -> dict:
    """One run: `running` clocks, `due` of them firing 80 % and 100 % within `window` seconds."""
    database = f"bench_sla_{label}"
    client = AsyncMongoClient(srv.mongodb_uri, tz_aware=True)
    appeals = client[database].appeals
    await appeals.drop()
    port = servers.free_port()
    proc = start_service(
        "sla",
        {
            "KAFKA_BOOTSTRAP_SERVERS": srv.bootstrap,
            "MONGODB_URI": srv.mongodb_uri,
            "MONGODB_DATABASE": database,
            "CONSUMER_GROUP": f"bench-{label}",
        },
        port,
        srv.workdir / f"sla-{label}.log",
    )
    target = window * 2.0  # 80 % and 100 % are 0.4 x window apart

    async def write(docs: list[dict], bar: tqdm) -> None:
        for start in range(0, len(docs), 2000):
            await appeals.insert_many([appeal_of(doc) for doc in docs[start : start + 2000]])
            bar.update(len(docs[start : start + 2000]))

    with tqdm(total=running, desc=f"{label}: writing clocks", unit="clock", leave=False) as bar:
        # The idle clocks first (due next week), then the ones due in the window, timed from when they are written.
        idle = [clock_doc(i, datetime.now(UTC) + timedelta(days=7), target, [50], label) for i in range(due, running)]
        await write(idle, bar)
        probe_started = time.perf_counter()
        await appeals.insert_many(
            [
                appeal_of(clock_doc(running + i, datetime.now(UTC) + timedelta(days=7), target, [50], "probe"))
                for i in range(500)
            ]
        )
        per_doc = (time.perf_counter() - probe_started) / 500
        await appeals.delete_many({"_id": {"$regex": "^probe"}})
        t0 = datetime.now(UTC) + timedelta(seconds=per_doc * due * 1.5 + LEAD_SECONDS)
        expected: dict[tuple[str, int], datetime] = {}
        busy = []
        for i in range(due):
            breach = t0 + timedelta(seconds=0.4 * window + window * 0.6 * i / max(due - 1, 1))
            doc = clock_doc(i, breach, target, [50], label)
            expected[(doc["_id"], 80)] = breach - timedelta(seconds=0.2 * target)
            expected[(doc["_id"], 100)] = breach
            busy.append(doc)
        await write(busy, bar)
    # What the service itself would have counted as it started the clocks (see service.running_counts).
    await client[database].counters.update_one({"_id": "running:resolution"}, {"$set": {"value": running}}, upsert=True)
    if datetime.now(UTC) > t0:
        print(f"warning: writing the clocks overran the lead time by {(datetime.now(UTC) - t0).total_seconds():.1f}s")

    consumer = AIOKafkaConsumer(bootstrap_servers=srv.bootstrap, enable_auto_commit=False)
    await consumer.start()
    parts = await partitions_of(srv.bootstrap, [SLA_EVENTS_V2])
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    cpu_before = cpu_seconds(proc.pid)
    ids_seen: dict[tuple[str, int], set[str]] = {}
    lags, service_lags = [], []
    deadline = time.monotonic() + window * 1.2 + 60
    with tqdm(total=len(expected), desc=f"{label}: thresholds fired", unit="event", leave=False) as bar:
        while time.monotonic() < deadline and len(ids_seen) < len(expected):
            batch_records = await consumer.getmany(timeout_ms=200)
            arrived = datetime.now(UTC)
            for records in batch_records.values():
                for event in (report for record in records for report in reports(record.value)):
                    key = (event["data"]["clock_id"], event["data"]["level"] or 0)
                    if key not in expected:
                        continue
                    first = key not in ids_seen
                    ids_seen.setdefault(key, set()).add(event["id"])
                    if first:
                        lags.append((arrived - expected[key]).total_seconds())
                        fired_at = datetime.fromisoformat(event["data"]["fired_at"])
                        service_lags.append((fired_at - expected[key]).total_seconds())
                        bar.update(1)
        await asyncio.sleep(2)  # late duplicates, if any
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for event in (report for record in records for report in reports(record.value)):
                key = (event["data"]["clock_id"], event["data"]["level"] or 0)
                if key in ids_seen:
                    ids_seen[key].add(event["id"])
    cpu = cpu_seconds(proc.pid) - cpu_before
    rss = rss_mb(proc.pid)
    await consumer.stop()
    proc.terminate()
    proc.wait(20)
    await client.close()
    return {
        "label": label,
        "running": running,
        "expected": len(expected),
        "fired": len(ids_seen),
        "duplicates": sum(1 for v in ids_seen.values() if len(v) > 1),
        "p50": median(lags),
        "p99": percentile(lags, 99),
        "max": max(lags, default=0.0),
        "service_p99": percentile(service_lags, 99),
        "cpu": cpu,
        "rss": rss,
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.sla", description=__doc__.splitlines()[0])
    parser.add_argument("--running", type=int, default=100_000, help="clocks running in the large phase")
    parser.add_argument("--due", type=int, default=5_000, help="clocks reaching 80 %% and breach in the window")
    parser.add_argument("--window", type=float, default=120.0, help="seconds over which due times are spread")
    args = parser.parse_args()
    with bench_servers() as srv:
        base = asyncio.run(baseline(srv.bootstrap, srv.mongodb_uri))
        small = asyncio.run(phase(srv, args.due, args.due, args.window, "small"))
        large = asyncio.run(phase(srv, args.running, args.due, args.window, "large"))
    fires_per_s = [r["fired"] / args.window for r in (small, large)]
    rows = []
    for r, rate in zip((small, large), fires_per_s, strict=True):
        rows.append(
            [
                f"{r['running']:,}",
                f"{r['expected']:,}",
                f"{r['fired']:,}",
                r["duplicates"],
                r["p50"],
                r["p99"],
                r["max"],
                r["service_p99"],
                round(r["cpu"] / max(r["fired"], 1) * 1000, 3),
                round(r["rss"], 1),
                f"{rate:,.0f}/s ({rate / base['publish']:.3f} of raw publish)",
            ]
        )
    print_table(
        "sla: fire lag of warnings (80 %) and breaches (100 %), seconds after due",
        [
            "running clocks",
            "due",
            "fired",
            "duplicates",
            "lag p50",
            "lag p99",
            "lag max",
            "lag p99 at sla",
            "sla CPU s / 1000 fires",
            "sla RSS MB",
            "fires (ratio)",
        ],
        rows,
    )
    print_table(
        "baseline on the same servers",
        ["raw acks=all publish msg/s", "raw bulk_write updates/s"],
        [[f"{base['publish']:,.0f}", f"{base['writes']:,.0f}"]],
    )


if __name__ == "__main__":
    main()
