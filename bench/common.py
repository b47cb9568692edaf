"""What every benchmark shares: its own servers, service processes, resource readings, the table."""

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm import tqdm

from devstack import servers
from libs.config import load_city
from libs.contract import all_topics
from libs.kafka.topics import ensure_topics, partitions_setting
from libs.settings import PROJECT_ROOT

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class BenchServers:
    bootstrap: str
    mongodb_uri: str
    kafka_pid: int
    mongo_pid: int
    workdir: Path


def exit_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit, so a benchmark that is killed still stops the servers it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@contextmanager
def bench_servers():
    """A fresh Apache Kafka and SecantusDB server on free ports, every topic created; stopped afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="appeals-bench-"))
    kafka_port, controller_port, mongo_port = servers.free_ports(3)
    kafka = servers.start_kafka(kafka_port, controller_port, workdir / "kafka", workdir / "kafka.log")
    mongo = servers.start_mongo(mongo_port, workdir / "mongodb", workdir / "mongodb.log")
    bootstrap = f"127.0.0.1:{kafka_port}"
    city = load_city(PROJECT_ROOT / "config")
    asyncio.run(
        ensure_topics(bootstrap, all_topics([d.code for d in city.departments]), partitions=partitions_setting())
    )
    try:
        yield BenchServers(bootstrap, servers.embedded_mongo_uri(mongo_port), kafka.pid, mongo.pid, workdir)
    finally:
        servers.stop(kafka)
        servers.stop(mongo)


def start_service(name: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """A service as its own process, ready when this returns."""
    prefix = name.upper() + "_"
    full = {
        **os.environ,
        **{prefix + k: v for k, v in env.items()},
        prefix + "HTTP_PORT": str(port),
        prefix + "LOG_LEVEL": "WARNING",
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=PROJECT_ROOT,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} not ready")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """A plain aligned table on stdout (easy to paste into the README)."""
    cells = [header] + [
        [f"{c:,.3f}".rstrip("0").rstrip(".") if isinstance(c, float) else str(c) for c in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number = text.rstrip("usm")
    return float(number) * _UNITS[text[len(number) :]]


def run_wrk(
    url: str, seconds: int, connections: int, env: dict[str, str], threads: int = 1, label: str = "wrk"
) -> WrkResult:
    """wrk (Debian) posting new appeals with bench/post_appeals.lua; throughput and latency percentiles."""
    script = PROJECT_ROOT / "bench" / "post_appeals.lua"
    with tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
            stdout=output,
            env={**os.environ, **env},
        )
        with tqdm(total=seconds, desc=label, unit="s", leave=False) as bar:
            for _ in range(seconds):
                if proc.poll() is not None:
                    break
                time.sleep(1)
                bar.update(1)
        if proc.wait(timeout=60) != 0:
            raise subprocess.CalledProcessError(proc.returncode, "wrk")
        output.seek(0)
        out = output.read()
    lines = out.splitlines()
    pct = {
        line.split()[0]: _ms(line.split()[1])
        for line in lines
        if line.strip().endswith(("s", "ms", "us")) and line.strip().split()[0] in ("50%", "75%", "90%", "99%")
    }
    total = next(int(line.split()[0]) for line in lines if "requests in" in line)
    rate = next(float(line.split()[1]) for line in lines if line.startswith("Requests/sec"))
    non_2xx = next((int(line.split()[-1]) for line in lines if "Non-2xx" in line), 0)
    return WrkResult(rate, pct["50%"], pct["99%"], total, non_2xx)


def start_process(args: list[str], log: Path, ready_url: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Any server process, ready when `ready_url` answers."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited; see {log}")
        try:
            httpx.get(ready_url, timeout=2)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{args} not ready")


def rss_table(processes: dict[str, int]) -> list[list]:
    """Rows of (process, RSS MB) for the table every benchmark prints."""
    return [[name, round(rss_mb(pid), 1)] for name, pid in processes.items()]
