"""The Shenzhen seed through the whole platform: the demo command and its report of its own run, the daily report,
a rebuild, the dashboard."""

import asyncio
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import MongoClient

from libs.settings import PROJECT_ROOT
from services.stats.handlers import PROJECTED
from tests.helpers import bucket_differences, fresh_stack, stats_buckets

# The demo plays 463 appeals through every service; the whole module needs more than the default 300 s.
pytestmark = pytest.mark.timeout(1800)

SEED_SENTENCE = (
    "the platform received 463 appeals, 100 of which have been resolved. 172 were about financing "
    "(37%). 330 came from companies with fewer than 30 employees, 96 from companies with 30 to 100 "
    "employees"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """All five services as processes, on a broker and database of their own."""
    s = fresh_stack(tmp_path_factory, "seed-stack")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def played(stack):
    """`python -m devstack demo` run once against the stack; its output."""
    run = subprocess.run(
        [sys.executable, "-m", "devstack", "--data-dir", str(stack.data_dir), "demo"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def window() -> dict[str, str]:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return {"from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(hours=2)).isoformat()}


def operator(stack) -> dict[str, str]:
    return {"X-Api-Key": stack.keys["operator"]}


def test_the_seed_figures_come_out_of_the_daily_report(stack, played):
    assert SEED_SENTENCE in played, played[:2000]
    url = stack.url("stats") + "/v1/reports/daily"
    data = httpx.get(url, params=window(), headers=operator(stack), timeout=30).json()
    assert data["received"] == 463 and data["resolved"] == 100
    assert data["categories"][0] == {"key": "financing", "count": 172, "share": 0.3715, "label": None}
    bands = {b["key"]: b["count"] for b in data["size_bands"]}
    assert bands["micro"] == 330 and bands["small"] == 96 and sum(bands.values()) == 463
    assert sum(c["count"] for c in data["channels"]) == 463
    csv_text = httpx.get(url, params=window(), headers={**operator(stack), "Accept": "text/csv"}, timeout=30).text
    assert "total,received,463," in csv_text and "size_bands,micro,330,0.7127" in csv_text
    departments = httpx.get(
        stack.url("stats") + "/v1/stats/departments", params=window(), headers=operator(stack), timeout=30
    ).json()["departments"]
    assert sum(d["resolved"] for d in departments) == 100
    assert sum(d["assigned"] for d in departments) == 463
    assert any(d["rank"] for d in departments), "departments with 10 or more appeals are ranked"


def _metric_sums(stack) -> dict[str, float]:
    text = httpx.get(stack.url("stats") + "/metrics", timeout=30).text
    totals = {
        "appeals_submitted_total": 0.0,
        "appeals_resolved_total": 0.0,
        "appeals_open": 0.0,
        "appeal_resolution_seconds_count": 0.0,
    }
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def test_prometheus_sees_the_same_numbers(stack, played):
    deadline = time.monotonic() + 20
    while (totals := _metric_sums(stack))["appeals_resolved_total"] < 100 and time.monotonic() < deadline:
        time.sleep(0.5)  # the metrics reread the counts every 2 s
    assert totals == {
        "appeals_submitted_total": 463,
        "appeals_resolved_total": 100,
        "appeals_open": 363,
        "appeal_resolution_seconds_count": 100,
    }


def _wait_until_idle(stack, quiet_seconds: float = 15, timeout: float = 1200) -> None:
    """Until no projected topic grows for `quiet_seconds` and stats has consumed everything.

    sla and notify go on working through the seed's events for minutes on two busy cores.
    """

    async def ends() -> dict:
        consumer = AIOKafkaConsumer(**stack.kafka_access().client_options())
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in PROJECTED.topics for p in range(stack.partitions)]
            return await consumer.end_offsets(tps)
        finally:
            await consumer.stop()

    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = asyncio.run(ends())
        lag = sum(
            float(line.rsplit(" ", 1)[1])
            for line in httpx.get(stack.url("stats") + "/metrics").text.splitlines()
            if line.startswith("appeals_kafka_consumer_lag{")
        )
        if now != last or lag:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return
        time.sleep(3)
    raise AssertionError("the stack never went quiet")


def test_a_rebuild_from_the_topics_ends_with_the_same_figures(stack, played):
    env = {
        **os.environ,
        "STATS_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        **{f"STATS_{name}": value for name, value in stack.kafka_env("stats").items()},
        "STATS_MONGODB_URI": stack.mongo_uri("stats"),
    }
    client = MongoClient(stack.mongo_uri("stats"))
    try:
        _wait_until_idle(stack)
        run = subprocess.run(
            [sys.executable, "-m", "services.stats", "rebuild", "--database", "stats_rebuilt"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        live = stats_buckets(client, "stats")
        assert any(b.startswith("hd:") for b in live) and any(b.startswith("ld:") for b in live), (
            "the comparison covers the day buckets"
        )
        diff = bucket_differences(live, stats_buckets(client, "stats_rebuilt"))
        assert not diff
        assert "appeals=463 resolved=100" in run.stdout
        rebuilt = stats_buckets(client, "stats_rebuilt")
        # Rebuilding stats' own database: stop the service, replay, start it again; it rereads from its offsets.
        stack.kill_service("stats")
        try:
            run = subprocess.run(
                [sys.executable, "-m", "services.stats", "rebuild"],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            stack.start_service("stats")  # the dashboard test after this one needs it either way
            stack.wait_ready("stats")
        assert run.returncode == 0, run.stderr[-3000:]
        time.sleep(3)
        assert not bucket_differences(stats_buckets(client, "stats"), rebuilt)
    finally:
        client.close()


def test_the_dashboard_draws_its_charts_in_headless_chromium(stack, played, tmp_path):
    url = stack.url("stats") + "/dashboard#key=" + stack.keys["operator"]
    common = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1100",
        "--virtual-time-budget=15000",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "<b>463</b>" in dom and "<b>100</b>" in dom, "the tiles show the received and resolved figures"
    assert "Contributions late<b>" in dom, "a tile for the co-handlers' parts late or missing"
    charts = ("by-channel", "by-category", "size-bands", "open-work", "breach-rate", "three-rates", "extensions")
    supervision = ("send-backs", "send-back-rate", "transfers", "urgings", "contributions", "contribution-rate")
    for chart in (*charts, *supervision):
        start = dom.index(f'id="{chart}"')
        assert 'class="main-svg"' in dom[start : start + 400], f"{chart} was not drawn"
    assert dom.count('class="point"') > 50, "the bar charts hold data points"
    shot = stack.data_dir / "dashboard.png"
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000, "a screenshot with charts in it"


def figures(report: str) -> str:
    """The demo's report without what names the run and its window: its figures, sentences and tables."""
    heading, body = report.split("\n", 1)
    assert heading.startswith("# Demo run "), report[:300]
    return re.sub(r"^Between .+? the platform received", "the platform received", body.strip(), count=1)


def test_the_demo_plays_again_on_the_same_stack_and_reports_its_own_run_alone(stack, played):
    """A second run's appeals are its own (not duplicates of the first run's still open), and its report counts them
    alone: the same figures as the first run's, though stats now holds both runs in the same hours."""
    again = subprocess.run(
        [sys.executable, "-m", "devstack", "--data-dir", str(stack.data_dir), "demo"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    assert figures(again.stdout) == figures(played)
    assert SEED_SENTENCE in again.stdout
    departments = again.stdout.split("## Departments", 1)[1]
    rows = [line.split("|")[2:5] for line in departments.splitlines() if line.startswith("| ") and "Routed" not in line]
    assert [sum(int(row[i]) for row in rows) for i in (0, 1)] == [463, 100], "routed and resolved, per department"
