"""`python -m bench.stats`: report latency over the projections of 1,000,000 appeals (docs/benchmarks.md, `stats`).

The appeals' events (submitted, routed, accepted, resolved for a third of them,
their three clocks, some feedback) are folded with stats' own projection code
into documents whose counts are summed into the hourly buckets and, as the live
consumer adds them, into the local day buckets, exactly what it would have
written, and the buckets are stored in a fresh stats database. All appeals fall
on one day, so the daily report of that day covers every one of them and reads
its day bucket. A real stats process then answers the daily report (JSON,
Markdown), the department rates and a summary; the baseline is the same
process's bare /healthz and raw reads of the day's bucket documents.
"""

import argparse
import asyncio
import random
import time
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from pymongo import AsyncMongoClient
from tqdm import tqdm

from bench.common import bench_servers, exit_on_sigterm, median, percentile, print_table, rss_mb, start_service
from devstack import servers
from devstack.keys import provision
from libs.config import load_city
from libs.kinds import AppealStatus, ClockKind
from libs.settings import PROJECT_ROOT
from services.stats import projection, service
from services.stats.service import collection_of

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 3, 4, tzinfo=TZ)


def appeal_document(i: int, rng: random.Random, departments: list[str]) -> dict:
    """The stats document one appeal ends with after its events were folded."""
    submitted = DAY + timedelta(seconds=rng.uniform(0, 86_399))
    dept = departments[i % len(departments)]
    at = submitted + timedelta(seconds=rng.uniform(1, 5))
    outcome = rng.random()
    doc = projection.new_document(f"A{i:09d}")
    doc.update(
        submitted_at=submitted,
        category=rng.choice(CATEGORIES),
        size_band=rng.choice(BANDS),
        channel=rng.choice(CHANNELS),
        district=rng.choice(DISTRICTS),
        department=dept,
        assignments=[{"d": dept, "at": at, "responded": None}],
        tally={f"routed|{dept}|standard_72h": 1},
    )
    doc["status"] = AppealStatus.routed.value
    if outcome < 0.6:
        doc["assignments"][0]["responded"] = at + timedelta(seconds=rng.expovariate(1 / 3600))
        doc["status"] = AppealStatus.accepted.value
    if outcome < 0.33:
        seconds = int(rng.expovariate(1 / 30_000)) + 60
        doc["status"] = AppealStatus.resolved.value
        doc["resolution"] = {"d": dept, "at": submitted + timedelta(seconds=seconds), "seconds": seconds, "kept": True}
        doc["resolution_times"] = [seconds]
        doc["tally"][f"resolved|{dept}|{doc['category']}"] = 1
        if outcome < 0.1:
            doc["feedback"] = [{"at": doc["resolution"]["at"], "d": dept, "s": rng.randint(1, 5)}]
    return doc


def clock_documents(doc: dict, rng: random.Random) -> dict[str, dict]:
    """Its three clocks, as its document keeps them: met when answered, breached for some, running otherwise."""
    out = {}
    for kind in ClockKind:
        started_at = doc["assignments"][0]["at"]
        clock = {"clock": kind.value, "department": doc["department"], "started_at": started_at, "state": "running"}
        answered = doc["status"] != AppealStatus.routed.value
        if answered and rng.random() < 0.9:
            clock["state"] = "met"
        elif rng.random() < 0.3:
            clock["breached"] = True
        out[f"{kind.value}:1"] = clock
    return out


CATEGORIES = [
    "financing",
    "labour",
    "tax",
    "sci_tech",
    "social_security",
    "export",
    "tariffs",
    "customs",
    "operations",
    "trade",
    "legal",
    "insurance",
    "materials",
    "approvals",
    "other",
]
BANDS = ["micro", "small", "medium", "large"]
CHANNELS = ["wechat", "web", "app", "hotline_12345", "kiosk"]
DISTRICTS = ["nanshan", "futian", "baoan"]


def build_buckets(n: int, overdue: int, departments: list[str]) -> tuple[dict, list[dict], float]:
    """Fold n appeals into summed buckets; also `overdue` running clocks past due, in the documents of their
    appeals as "running past due" reads them. Returns (buckets, those documents, seconds)."""
    rng = random.Random(1)
    buckets: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with_overdue, overdue_left = [], overdue
    began = time.perf_counter()
    for i in tqdm(range(n), desc="folding appeals", unit="appeal", unit_scale=True):
        doc = appeal_document(i, rng, departments)
        for bucket, fields in projection.with_days(projection.appeal_counts(doc), TZ).items():
            target = buckets[bucket]
            for name, value in fields.items():
                target[name] += value
        overdue_clocks = {}
        for key, clock in clock_documents(doc, rng).items():
            for bucket, fields in projection.with_days(projection.clock_counts(clock), TZ).items():
                for name, value in fields.items():
                    buckets[bucket][name] += value
            if overdue_left and clock["state"] == "running" and not clock.get("breached"):
                clock["live_due"] = clock["started_at"] + timedelta(hours=6)
                overdue_clocks[key] = clock
                overdue_left -= 1
        if overdue_clocks:
            appeal = {**projection.new_document(doc["_id"]), "clocks": overdue_clocks}
            projection.set_live_due(appeal)
            with_overdue.append(appeal)
    return buckets, with_overdue, time.perf_counter() - began


async def store(mongodb_uri: str, buckets: dict, appeals: list[dict]) -> None:
    client = AsyncMongoClient(mongodb_uri)
    db = client.stats
    # As a rebuild does: the database is new, so every day bucket is whole.
    await service.prepare_days(db, TZ, DAY)
    for name in buckets:
        await db[collection_of(name)].insert_one({"_id": name, "c": dict(buckets[name]), "wm": {}})
    await db.appeals.create_index("live_due", sparse=True)
    for start in range(0, len(appeals), 5000):
        await db.appeals.insert_many(appeals[start : start + 5000])
    await client.close()


async def raw_read(mongodb_uri: str, rounds: int, query: dict) -> list[float]:
    """Baseline: read the day's count buckets that `query` selects straight from MongoDB."""
    client = AsyncMongoClient(mongodb_uri)
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        await client.stats.buckets.find(query).to_list()
        times.append(time.perf_counter() - began)
    await client.close()
    return times


def timed(client: httpx.Client, url: str, rounds: int, **kwargs) -> list[float]:
    """Seconds each of `rounds` sequential GETs of `url` took."""
    times = []
    for _ in tqdm(range(rounds), desc=httpx.URL(url).path, leave=False):
        began = time.perf_counter()
        response = client.get(url, **kwargs)
        times.append(time.perf_counter() - began)
        response.raise_for_status()
    return times


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__)
    parser.add_argument("--appeals", type=int, default=1_000_000)
    parser.add_argument(
        "--overdue",
        type=int,
        default=100,
        help="running clocks past due with no breach yet (sla lagging), found at query time",
    )
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    city = load_city(PROJECT_ROOT / "config")
    buckets, with_overdue, fold_seconds = build_buckets(args.appeals, args.overdue, [d.code for d in city.departments])
    with bench_servers() as bench:
        asyncio.run(store(bench.mongodb_uri, buckets, with_overdue))
        keys = provision(city, bench.workdir)
        port = servers.free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap,
            "MONGODB_URI": bench.mongodb_uri,
            "API_KEYS_FILE": str(bench.workdir / "api-keys.json"),
            "TIMEZONE": TZ.key,
        }
        proc = start_service("stats", env, port, bench.workdir / "stats.log")
        try:
            base = f"http://127.0.0.1:{port}"
            headers = {"X-Api-Key": keys["operator"]}
            day = {"date": DAY.date().isoformat()}
            next_day = DAY + timedelta(days=1)
            window = {"from": "2026-03-04", "to": "2026-03-05"}
            with httpx.Client(timeout=60) as client:
                report = client.get(base + "/v1/reports/daily", params=day, headers=headers).json()
                assert report["received"] == args.appeals, report["received"]
                results = {
                    "bare /healthz (baseline)": timed(client, base + "/healthz", args.rounds),
                    "raw read of the day's 24 hour buckets (baseline)": asyncio.run(
                        raw_read(
                            bench.mongodb_uri,
                            args.rounds,
                            {
                                "_id": {
                                    "$gte": "h:" + projection.hour_of(DAY),
                                    "$lt": "h:" + projection.hour_of(next_day),
                                }
                            },
                        )
                    ),
                    "raw read of the day's day bucket (baseline)": asyncio.run(
                        raw_read(bench.mongodb_uri, args.rounds, {"_id": "hd:" + DAY.date().isoformat()})
                    ),
                    "daily report, JSON": timed(
                        client, base + "/v1/reports/daily", args.rounds, params=day, headers=headers
                    ),
                    "daily report, Markdown": timed(
                        client,
                        base + "/v1/reports/daily",
                        args.rounds,
                        params=day,
                        headers={**headers, "Accept": "text/markdown"},
                    ),
                    "department rates": timed(
                        client, base + "/v1/stats/departments", args.rounds, params=window, headers=headers
                    ),
                    "summary by category": timed(
                        client,
                        base + "/v1/stats/summary",
                        args.rounds,
                        params={**window, "group_by": "category"},
                        headers=headers,
                    ),
                }
            rss = rss_mb(proc.pid)
        finally:
            servers.stop(proc)
    healthz = median(results["bare /healthz (baseline)"])
    rows = [[name, median(t) * 1000, percentile(t, 99) * 1000, median(t) / healthz] for name, t in results.items()]
    print_table(
        f"stats: {args.appeals:,} appeals on one day, {len(buckets)} bucket documents, "
        f"{sum(len(a['clocks']) for a in with_overdue):,} clocks running past due; {args.rounds} requests each",
        ["request", "p50 ms", "p99 ms", "p50 / healthz p50"],
        rows,
    )
    print(
        f"\nfolding {args.appeals:,} appeals into buckets in-process: {fold_seconds:.1f} s "
        f"({args.appeals / fold_seconds:,.0f} appeals/s); stats RSS after the run: {rss:.0f} MB"
    )


if __name__ == "__main__":
    main()
