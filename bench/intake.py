"""`python -m bench.intake`: how many appeals intake accepts, durably, per second (docs/benchmarks.md, `intake`).

wrk keeps `--connections` keep-alive connections posting new, valid appeals to a
real intake process (each 202 means a MongoDB write and an acks=all publish) for
`--seconds`. Then a steady load at about half that rate (each connection pausing
between requests) shows latency when not saturated.
The same wrk load against a bare FastAPI endpoint with intake's request model,
in the same run, is the baseline.
"""

import argparse
import time

from bench.baseline import bare_endpoint
from bench.common import bench_servers, exit_on_sigterm, print_table, rss_mb, run_wrk, start_service
from devstack import servers
from devstack.keys import provision
from libs.config import load_city
from libs.settings import PROJECT_ROOT


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with bench_servers() as srv:
        keys = provision(load_city(PROJECT_ROOT / "config"), srv.workdir)
        port = servers.free_port()
        proc = start_service(
            "intake",
            {
                "KAFKA_BOOTSTRAP_SERVERS": srv.bootstrap,
                "MONGODB_URI": srv.mongodb_uri,
                "API_KEYS_FILE": str(srv.workdir / "api-keys.json"),
            },
            port,
            srv.workdir / "intake.log",
        )
        url = f"http://127.0.0.1:{port}/v1/appeals"
        try:
            print(f"wrk: {args.connections} connections for {args.seconds} s against intake ...", flush=True)
            full = run_wrk(
                url,
                args.seconds,
                args.connections,
                {"BENCH_API_KEY": keys["channel:web"], "BENCH_RUN": str(time.time_ns())},
                label="wrk, saturating",
            )
            accepted = (full.requests - full.non_2xx) / args.seconds
            pause_ms = round(1000 * args.connections / max(1.0, accepted / 2))
            half = run_wrk(
                url,
                args.seconds,
                args.connections,
                {
                    "BENCH_API_KEY": keys["channel:web"],
                    "BENCH_RUN": str(time.time_ns()),
                    "BENCH_PAUSE_MS": str(pause_ms),
                },
                label=f"steady, {pause_ms} ms pauses",
            )
            intake_rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(20)
        print("wrk: the same load against the bare endpoint ...", flush=True)
        bare, bare_rss = bare_endpoint(srv.workdir, args.seconds, args.connections)
    print_table(
        "intake: new appeals accepted (202 only once in MongoDB and acked by Kafka)",
        ["load", "accepted/s", "p50 ms", "p99 ms", "not 202", "ratio to bare"],
        [
            [
                f"wrk, {args.connections} connections",
                f"{accepted:,.0f}",
                full.p50_ms,
                full.p99_ms,
                full.non_2xx,
                f"{accepted / bare.requests_per_s:.3f}",
            ],
            [
                f"wrk, {args.connections} connections, steady near half",
                f"{half.requests_per_s:,.0f}",
                half.p50_ms,
                half.p99_ms,
                half.non_2xx,
                "",
            ],
        ],
    )
    print_table(
        "baseline in the same run",
        ["what", "req/s", "p50 ms", "p99 ms"],
        [["bare FastAPI endpoint, intake's model (wrk)", f"{bare.requests_per_s:,.0f}", bare.p50_ms, bare.p99_ms]],
    )
    print_table(
        "memory", ["process", "RSS MB"], [["intake", round(intake_rss, 1)], ["bare endpoint", round(bare_rss, 1)]]
    )


if __name__ == "__main__":
    main()
