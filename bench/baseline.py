"""`python -m bench.baseline`: what the bare parts do on this machine (docs/benchmarks.md, `baseline`).

- Kafka: a FastStream subscriber that republishes each message (consume -> publish,
  acks=all), fed by a producer; messages/s through the loop.
- MongoDB: insert_one one after another, and bulk_write in batches of 1,000.
- HTTP: a bare FastAPI endpoint with intake's request model (no Kafka, no MongoDB)
  under wrk posting new appeals, the same load the intake benchmark uses.
The other benchmarks measure these again in their own run and print ratios to them.
"""

import argparse
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient, InsertOne
from tqdm import tqdm

from bench.common import bench_servers, exit_on_sigterm, print_table, rss_mb, run_wrk, start_process
from devstack import servers
from libs.kafka.access import KafkaAccess, access_of
from libs.kafka.topics import ensure_topics


async def kafka_loop(kafka: KafkaAccess | str, n: int) -> float:
    """Messages per second through a FastStream consume -> publish loop (acks=all), as `kafka`'s principal."""
    access = access_of(kafka)
    await ensure_topics(access, ["bench.loop.in", "bench.loop.out"], partitions=4)
    # Per-message log lines would be the bottleneck.
    broker = KafkaBroker(access.bootstrap_servers, security=access.security(), acks="all", logger=None)

    @broker.subscriber("bench.loop.in", group_id="bench-loop", auto_offset_reset="earliest")
    @broker.publisher("bench.loop.out")
    async def relay(body: bytes) -> bytes:
        return body

    reader = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False)
    producer = AIOKafkaProducer(**access.client_options(), acks="all")
    async with broker:
        await broker.start()
        await reader.start()
        await producer.start()
        parts = [TopicPartition("bench.loop.out", p) for p in range(4)]
        reader.assign(parts)
        await reader.seek_to_end(*parts)
        for p in parts:
            await reader.position(p)
        began = time.perf_counter()
        for start in range(0, n, 500):
            await asyncio.gather(
                *[
                    producer.send("bench.loop.in", b"message %d" % i, key=b"%d" % i)
                    for i in range(start, min(n, start + 500))
                ]
            )
        seen = 0
        with tqdm(total=n, desc="kafka consume -> publish", unit="msg", leave=False) as bar:
            while seen < n and time.perf_counter() - began < 300:
                got = sum(len(r) for r in (await reader.getmany(timeout_ms=500)).values())
                seen += got
                bar.update(got)
        elapsed = time.perf_counter() - began
        await producer.stop()
        await reader.stop()
    return seen / elapsed


async def mongo_writes(uri: str, n: int) -> tuple[float, float]:
    """insert_one per second (one after another) and documents per second with bulk_write of 1,000."""
    client = AsyncMongoClient(uri)
    coll = client.bench_baseline.docs
    await coll.drop()
    began = time.perf_counter()
    for i in tqdm(range(n // 10), desc="mongodb insert_one", unit="doc", leave=False):
        await coll.insert_one({"_id": f"one-{i}", "status": "submitted", "n": i})
    single = (n // 10) / (time.perf_counter() - began)
    began = time.perf_counter()
    for start in tqdm(range(0, n, 1000), desc="mongodb bulk_write", unit="batch", leave=False):
        await coll.bulk_write(
            [InsertOne({"_id": f"bulk-{i}", "status": "submitted", "n": i}) for i in range(start, start + 1000)]
        )
    bulk = n / (time.perf_counter() - began)
    await client.close()
    return single, bulk


def bare_endpoint(workdir, seconds: int, connections: int):
    """wrk against the bare endpoint: (result, RSS MB of its process)."""
    port = servers.free_port()
    proc = start_process(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        workdir / "bare.log",
        f"http://127.0.0.1:{port}/docs",
    )
    try:
        result = run_wrk(f"http://127.0.0.1:{port}/v1/appeals", seconds, connections, {"BENCH_RUN": "bare"})
        return result, rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)


def measure(srv, messages: int, writes: int, seconds: int, connections: int) -> dict:
    """All three baselines on the given servers."""
    loop = asyncio.run(kafka_loop(srv.bootstrap, messages))
    single, bulk = asyncio.run(mongo_writes(srv.mongodb_uri, writes))
    http, rss = bare_endpoint(srv.workdir, seconds, connections)
    return {"loop": loop, "insert_one": single, "bulk": bulk, "http": http, "bare_rss": rss}


def baseline_rows(base: dict) -> list[list]:
    """The baseline table's rows, shared by every benchmark that prints its baselines."""
    http = base["http"]
    return [
        ["FastStream consume -> publish (acks=all)", f"{base['loop']:,.0f} msg/s", ""],
        ["MongoDB insert_one", f"{base['insert_one']:,.0f} docs/s", ""],
        ["MongoDB bulk_write (1,000 per call)", f"{base['bulk']:,.0f} docs/s", ""],
        [
            "bare FastAPI endpoint (wrk)",
            f"{http.requests_per_s:,.0f} req/s",
            f"p50 {http.p50_ms:.1f} ms, p99 {http.p99_ms:.1f} ms, RSS {base['bare_rss']:.0f} MB",
        ],
    ]


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=15, help="wrk duration")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with bench_servers() as srv:
        base = measure(srv, args.messages, args.writes, args.seconds, args.connections)
        rss = [["Apache Kafka", round(rss_mb(srv.kafka_pid), 1)], ["SecantusDB", round(rss_mb(srv.mongo_pid), 1)]]
    print_table("baseline: the bare parts on this machine", ["what", "rate", "detail"], baseline_rows(base))
    print_table("servers", ["process", "RSS MB"], rss)


if __name__ == "__main__":
    main()
