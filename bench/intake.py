"""`python -m bench.intake`: how many appeals intake accepts, durably, per second (QUALITY.md, `intake`).

wrk keeps `--connections` keep-alive connections posting new, valid appeals to a
real intake process (each 202 means a MongoDB write and an acks=all publish) for
`--seconds`. Then a steady load at half that rate shows latency when not saturated.
The same wrk load against a bare FastAPI endpoint with intake's request model,
in the same run, is the baseline.
"""

import argparse
import asyncio
import time

import httpx
from tqdm import tqdm

from bench.baseline import bare_endpoint
from bench.common import bench_servers, exit_on_sigterm, percentile, print_table, rss_mb, run_wrk, start_service
from devstack import servers
from devstack.keys import provision
from libs.config import load_city
from libs.settings import PROJECT_ROOT
from services.intake.uscc import check_character


def appeal(run: str, n: int) -> dict:
    """A new, valid appeal (the same shape bench/post_appeals.lua posts)."""
    first17 = f"91440300MB{n:07d}"
    return {"channel_ref": f"steady-{run}-{n}",
            "enterprise": {"uscc": first17 + check_character(first17), "name": f"Bench Company {n}",
                           "employees": n % 400, "industry": "manufacturing", "district": "nanshan"},
            "contact": {"name": "Bench Contact", "phone": "13800138000"}, "category": "financing",
            "title": "Loan falls due", "description": "Our working-capital loan falls due; we ask for deferral."}


async def steady(url: str, key: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Post at a fixed `rate` for `seconds` (not waiting for answers to send the next); latencies in ms, errors."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers={"X-Api-Key": key}) as client:
        async def one(n: int) -> None:
            nonlocal errors
            began = time.perf_counter()
            try:
                r = await client.post(url, json=appeal(str(int(time.time())), n))
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append((time.perf_counter() - began) * 1000)
            errors += r.status_code != 202

        tasks = []
        total = int(rate * seconds)
        began = time.perf_counter()
        for n in tqdm(range(total), desc=f"steady load {rate:.0f}/s", unit="req", leave=False):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return latencies, errors


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with bench_servers() as srv:
        keys = provision(load_city(PROJECT_ROOT / "config"), srv.workdir)
        port = servers.free_port()
        proc = start_service("intake", {"KAFKA_BOOTSTRAP_SERVERS": srv.bootstrap, "MONGODB_URI": srv.mongodb_uri,
                                        "API_KEYS_FILE": str(srv.workdir / "api-keys.json")},
                             port, srv.workdir / "intake.log")
        url = f"http://127.0.0.1:{port}/v1/appeals"
        try:
            print(f"wrk: {args.connections} connections for {args.seconds} s against intake ...", flush=True)
            full = run_wrk(url, args.seconds, args.connections,
                           {"BENCH_API_KEY": keys["channel:web"], "BENCH_RUN": str(time.time_ns())})
            accepted = (full.requests - full.non_2xx) / args.seconds
            half = asyncio.run(steady(url, keys["channel:web"], max(1.0, accepted / 2), args.seconds))
            intake_rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(20)
        print("wrk: the same load against the bare endpoint ...", flush=True)
        bare, bare_rss = bare_endpoint(srv.workdir, args.seconds, args.connections)
    latencies, errors = half
    print_table("intake: new appeals accepted (202 only once in MongoDB and acked by Kafka)",
                ["load", "accepted/s", "p50 ms", "p99 ms", "not 202", "ratio to bare"],
                [[f"wrk, {args.connections} connections", f"{accepted:,.0f}", full.p50_ms, full.p99_ms,
                  full.non_2xx, f"{accepted / bare.requests_per_s:.3f}"],
                 [f"steady {accepted / 2:,.0f}/s (half)", f"{len(latencies) / args.seconds:,.0f}",
                  percentile(latencies, 50), percentile(latencies, 99), errors, ""]])
    print_table("baseline in the same run", ["what", "req/s", "p50 ms", "p99 ms"],
                [["bare FastAPI endpoint, intake's model (wrk)", f"{bare.requests_per_s:,.0f}", bare.p50_ms,
                  bare.p99_ms]])
    print_table("memory", ["process", "RSS MB"],
                [["intake", round(intake_rss, 1)], ["bare endpoint", round(bare_rss, 1)]])


if __name__ == "__main__":
    main()
