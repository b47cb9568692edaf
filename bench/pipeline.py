"""`python -m bench.pipeline`: appeals at a fixed rate through all five services (docs/benchmarks.md, `pipeline`).

The embedded stack runs as in `make run` (every service its own process, logs at
WARNING). A load generator posts new appeals to intake at `--rate` per second for
`--seconds`; simulated departments read their topics and accept, then resolve,
each assignment through router's HTTP API. A consumer records when each appeal's
`appeal.routed.v1` and its assignment arrive. Figures: the rate sustained from
202 to routed, latency submitted -> routed and routed -> department topic, what
each service's consumers still had to read when the run ended, and
how many events reached the lifecycle, sla, department and notify's outcome topics more
than once (an outcome published twice means its notification was sent twice), and
each service's RSS sampled every 5 s (once warm, peak, at the end: a 10-minute run,
`--seconds 600`, shows whether memory stays flat). The baseline, measured
first in the same run, is FastStream's own consume -> publish loop.

What one appeal costs, over the same span as the CPU: CPU ms of every process,
database statements each service sent (its `appeals_mongodb_commands_total`, counted by
the driver's command monitoring), and Kafka records produced to and consumed from
each topic (end offsets, and the consumer groups' committed offsets).
"""

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

from bench.baseline import kafka_loop
from bench.common import cpu_seconds, exit_on_sigterm, percentile, print_table, rss_mb
from devstack.otlp import OtlpReceiver, span_count
from devstack.stack import Stack
from libs.config import load_city
from libs.contract import CONSUMERS, SERVICE_NAMES, all_topics
from libs.contract import topic as contract_topic
from libs.kafka.access import KafkaAccess
from libs.kafka_admin import partitions_of
from libs.uscc import check_character

SERVICES = SERVICE_NAMES


def instances(stack: Stack, service: str | None = None) -> list[str]:
    """The running processes of the services (`router`, `router-2`, ...), or of one service."""
    return [key for key in stack.processes if service_of(key) in SERVICES and service in (None, service_of(key))]


def service_of(instance: str) -> str:
    """`router-2` -> `router`."""
    return instance.rsplit("-", 1)[0] if instance.rsplit("-", 1)[-1].isdigit() else instance


def appeal(run: str, n: int) -> dict:
    """A new, valid appeal (the same shape bench/post_appeals.lua posts)."""
    first17 = f"91440300MB{n:07d}"
    return {
        "channel_ref": f"pipeline-{run}-{n}",
        "enterprise": {
            "uscc": first17 + check_character(first17),
            "name": f"Bench Company {n}",
            "employees": n % 400,
            "industry": "manufacturing",
            "district": "nanshan",
        },
        "contact": {"name": "Bench Contact", "phone": "13800138000"},
        "category": "financing",
        "title": "Loan falls due",
        "description": "Our working-capital loan falls due; we ask for deferral.",
    }


class Recorder:
    """Arrival times (monotonic) of each appeal's routing and assignment, and every event id read, from the topics."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.routed: dict[str, float] = {}
        self.assigned: dict[str, tuple[float, str]] = {}
        # (topic, or "department topics"), event id -> times read: a copy is the same id again.
        self.seen: Counter[tuple[str, str]] = Counter()

    async def run(self, kafka: KafkaAccess, stop: asyncio.Event) -> None:
        # From the start: the stack is fresh, and a partition assigned late must not hide its first events.
        consumer = AIOKafkaConsumer(
            **kafka.client_options(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=f"bench-recorder-{time.time_ns()}",
        )
        consumer.subscribe(
            pattern=r"^(appeals\.lifecycle\.v1|sla\.events\.v[12]|dept\.[a-z0-9-]+\.v1|notify\.deliveries\.v1)$"
        )
        await consumer.start()
        try:
            while not stop.is_set():
                for records in (await consumer.getmany(timeout_ms=200, max_records=2000)).values():
                    now = time.monotonic()
                    for record in records:
                        event = json.loads(record.value)
                        topic = "department topics" if record.topic.startswith("dept.") else record.topic
                        self.seen[(topic, event["id"])] += 1
                        # A clock's report read again, packed again or on the other version, is a copy.
                        if event["type"] == "sla.reported.v2":
                            for report in event["data"]["reports"]:
                                self.seen[("sla clock reports", report["id"])] += 1
                        elif record.topic == "sla.events.v1":
                            self.seen[("sla clock reports", event["id"])] += 1
                        if event["type"] == "appeal.routed.v1":
                            self.routed.setdefault(event["subject"], now)
                        elif event["type"] == "assignment.created.v1" and event["data"]["role"] == "lead":
                            self.assigned.setdefault(event["subject"], (now, event["data"]["department"]))
        finally:
            await consumer.stop()


async def departments(stack: Stack, recorder: Recorder, stop: asyncio.Event) -> int:
    """Accept, then resolve, every lead assignment as it arrives; returns how many were resolved."""
    done: set[str] = set()
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=2)
    routers = [stack.url(key) for key in instances(stack, "router")]
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def handle(appeal_id: str, department: str) -> None:
            key = {"X-Api-Key": stack.keys[f"department:{department}"]}
            url = f"{routers[hash(appeal_id) % len(routers)]}/v1/appeals/{appeal_id}/actions"
            try:
                if (await client.post(url, json={"action": "accept"}, headers=key)).status_code == 200:
                    resolve = {"action": "resolve", "resolution": "Settled by the bench"}
                    if (await client.post(url, json=resolve, headers=key)).status_code == 200:
                        done.add(appeal_id)
            except httpx.HTTPError:
                pass  # counted as not resolved

        pending: set[asyncio.Task] = set()
        seen: set[str] = set()
        while not stop.is_set():
            for appeal_id, (_, department) in list(recorder.assigned.items()):
                if appeal_id not in seen:
                    seen.add(appeal_id)
                    task = asyncio.create_task(handle(appeal_id, department))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            await asyncio.sleep(0.2)
        # What departments had not finished when the run ended is left: a backlog of thousands would
        # otherwise keep the benchmark waiting long after its figures are in.
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return len(done)


async def load(stack: Stack, recorder: Recorder, rate: float, seconds: float) -> Counter[str]:
    """Post new appeals at `rate` for `seconds`; returns how many were not accepted, by why (status or error)."""
    failures: Counter[str] = Counter()
    run = str(time.time_ns())
    intakes = [stack.url(key) for key in instances(stack, "intake")]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers={"X-Api-Key": stack.keys["channel:web"]}) as client:

        async def one(n: int) -> None:
            try:
                r = await client.post(intakes[n % len(intakes)] + "/v1/appeals", json=appeal(run, n))
            except httpx.HTTPError as error:
                failures[type(error).__name__] += 1
                return
            if r.status_code == 202:
                recorder.accepted[r.json()["appeal_id"]] = time.monotonic()
            else:
                failures[f"HTTP {r.status_code}"] += 1

        tasks = []
        began = time.perf_counter()
        for n in tqdm(range(int(rate * seconds)), desc=f"posting {rate:.0f} appeals/s", unit="appeal", leave=False):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return failures


def stack_processes(stack: Stack) -> dict[str, int]:
    """Every process of the stack by name: the services, the broker, each database server."""
    pids = {name: stack.processes[name].pid for name in instances(stack)}
    if stack.kafka is not None:
        pids["broker"] = stack.kafka.pid
    pids.update({f"db {name}": proc.pid for name, proc in stack.databases.items()})
    return pids


async def run(stack: Stack, rate: float, seconds: float) -> dict:
    recorder = Recorder()
    stop = asyncio.Event()
    pids = stack_processes(stack)
    rss: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
    started = time.monotonic()

    async def sample() -> None:
        while not stop.is_set():
            for name, pid in pids.items():
                rss[name].append((time.monotonic() - started, rss_mb(pid)))
            await asyncio.sleep(5)

    background = [asyncio.create_task(recorder.run(stack.kafka_access(), stop)), asyncio.create_task(sample())]
    resolver = asyncio.create_task(departments(stack, recorder, stop))
    await asyncio.sleep(3)  # the recorder joins its group
    began = time.monotonic()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    counts_before = await costs(stack)
    failures = await load(stack, recorder, rate, seconds)
    sent_for = time.monotonic() - began
    with tqdm(total=len(recorder.accepted), desc="waiting for routing", unit="appeal", leave=False) as bar:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(recorder.routed.keys() & recorder.accepted.keys()) < len(
            recorder.accepted
        ):
            bar.n = len(recorder.routed.keys() & recorder.accepted.keys())
            bar.refresh()
            await asyncio.sleep(0.5)
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    counts_after = await costs(stack)
    counted = {
        kind: {key: counts_after[kind].get(key, 0) - counts_before[kind].get(key, 0) for key in counts_after[kind]}
        for kind in counts_after
    }
    lag = await consumer_lag(stack)
    stop.set()
    resolved = await resolver
    await asyncio.gather(*background)
    ids = recorder.accepted.keys() & recorder.routed.keys()
    last_routed = max((recorder.routed[i] for i in ids), default=began)
    to_routed = [(recorder.routed[i] - recorder.accepted[i]) * 1000 for i in ids]
    to_topic = [(recorder.assigned[i][0] - recorder.routed[i]) * 1000 for i in ids if i in recorder.assigned]
    return {
        "accepted": len(recorder.accepted),
        "failures": failures,
        "routed": len(ids),
        "resolved": resolved,
        "offered": rate,
        "sent_for": sent_for,
        "sustained": len(ids) / max(last_routed - began, 1e-9),
        "to_routed": to_routed,
        "to_topic": to_topic,
        "rss": rss,
        "lag": lag,
        "seen": recorder.seen,
        "cpu": cpu,
        "counted": counted,
    }


async def costs(stack: Stack) -> dict[str, dict[str, float]]:
    """Running totals: database commands per service, records produced and consumed per topic."""
    statements: dict[str, float] = {}
    written: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for key in instances(stack):
            text = (await client.get(stack.url(key) + "/metrics")).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if family.name in (
                        "appeals_mongodb_commands",
                        "appeals_mongodb_documents_written",
                    ) and sample.name.endswith("_total"):
                        what = f"{service_of(key)} {sample.labels['command']} {sample.labels['collection']}".rstrip()
                        into = statements if family.name == "appeals_mongodb_commands" else written
                        into[what] = into.get(what, 0) + sample.value
    topics = [t for t in all_topics(_department_codes(stack)) if not t.endswith(".dlq")]
    partitions = await partitions_of(stack.kafka_access(), topics)
    consumer = AIOKafkaConsumer(**stack.kafka_access().client_options())
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    produced: dict[str, float] = Counter()
    for tp, end in ends.items():
        produced[_topic_family(tp.topic)] += end
    consumed: dict[str, float] = Counter()
    admin = AIOKafkaAdminClient(**stack.kafka_access().client_options())
    await admin.start()
    try:
        for entry in CONSUMERS:
            committed = await admin.list_consumer_group_offsets(entry.group)
            for tp, meta in committed.items():
                consumed[_topic_family(tp.topic)] += max(meta.offset, 0)
    finally:
        await admin.close()
    return {"statements": statements, "written": written, "produced": dict(produced), "consumed": dict(consumed)}


def statement_rows(counted: dict[str, dict[str, float]], appeals: int) -> list[list]:
    """Each service's statements by command and collection, and the documents they wrote, per accepted appeal."""
    per = max(appeals, 1)
    rows = [
        [what, round(n / per, 2), round(counted["written"].get(what, 0) / per, 2)]
        for what, n in counted["statements"].items()
        if n / per >= 0.1
    ]
    return sorted(rows, key=lambda row: (row[0].split(" ")[0], -row[1]))


def _department_codes(stack: Stack) -> list[str]:
    return [d.code for d in load_city(stack.config_dir).departments]


def _topic_family(topic: str) -> str:
    """Department topics count together as `dept.*.v1`, their actions topics as `dept.*.actions.v1`."""
    entry = contract_topic(topic)
    return entry.name.replace("<code>", "*") if entry is not None and topic.startswith("dept.") else topic


def cost_rows(counted: dict[str, dict[str, float]], appeals: int) -> tuple[list[list], list[list]]:
    """Statements and documents written per service, and records produced and consumed per topic, also per appeal."""
    per = max(appeals, 1)
    by_service: dict[str, float] = Counter()
    docs: dict[str, float] = Counter()
    for what, n in counted["statements"].items():
        by_service[what.split(" ")[0]] += n
    for what, n in counted["written"].items():
        docs[what.split(" ")[0]] += n
    statements = [[name, int(n), round(n / per, 1), round(docs[name] / per, 1)] for name, n in by_service.items()]
    total, written = sum(by_service.values()), sum(docs.values())
    statements.append(["all services", int(total), round(total / per, 1), round(written / per, 1)])
    topics = sorted(set(counted["produced"]) | set(counted["consumed"]))
    records = [
        [
            topic,
            int(counted["produced"].get(topic, 0)),
            round(counted["produced"].get(topic, 0) / per, 2),
            int(counted["consumed"].get(topic, 0)),
            round(counted["consumed"].get(topic, 0) / per, 2),
        ]
        for topic in topics
        if counted["produced"].get(topic) or counted["consumed"].get(topic)
    ]
    produced, consumed = sum(counted["produced"].values()), sum(counted["consumed"].values())
    records.append(["all topics", int(produced), round(produced / per, 2), int(consumed), round(consumed / per, 2)])
    return statements, records


def copy_rows(seen: Counter[tuple[str, str]]) -> list[list]:
    """Per topic: events read, distinct ids, and copies (an id read again)."""
    rows = []
    for topic in sorted({topic for topic, _ in seen}):
        counts = [n for (t, _), n in seen.items() if t == topic]
        rows.append([topic, sum(counts), len(counts), sum(counts) - len(counts)])
    return rows


async def consumer_lag(stack: Stack) -> dict[str, int]:
    """Per service, the records its consumer groups had not reached yet (its `appeals_kafka_consumer_lag` gauges)."""
    out: dict[str, int] = Counter()
    async with httpx.AsyncClient(timeout=10) as client:
        for key in instances(stack):
            text = (await client.get(stack.url(key) + "/metrics")).text
            out[service_of(key)] += int(
                sum(
                    sample.value
                    for family in text_string_to_metric_families(text)
                    if family.name == "appeals_kafka_consumer_lag"
                    for sample in family.samples
                )
            )
    return out


def cpu_rows(cpu: dict[str, float], appeals: int) -> list[list]:
    """Per process: CPU seconds from the first post until routing caught up, and ms per accepted appeal."""
    rows = [[name, round(seconds, 1), round(seconds * 1000 / max(appeals, 1), 1)] for name, seconds in cpu.items()]
    total = sum(cpu.values())
    return rows + [["all of the above", round(total, 1), round(total * 1000 / max(appeals, 1), 1)]]


def memory_rows(rss: dict[str, list[tuple[float, float]]]) -> list[list]:
    """Per service: RSS once warm (after the first minute, or the first sample), peak, at the end, growth."""
    rows = []
    for name, samples in rss.items():
        warm = next((mb for at, mb in samples if at >= 60), samples[0][1])
        end = samples[-1][1]
        rows.append([name, round(warm, 1), round(max(mb for _, mb in samples), 1), round(end, 1), f"{end - warm:+.1f}"])
    return rows


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="appeals per second offered")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--replicas", type=int, default=1, help="processes of each service, sharing its consumer groups"
    )
    parser.add_argument(
        "--plaintext",
        action="store_true",
        help="run Kafka without authentication and ACLs, to measure what SASL costs (never how to run it)",
    )
    parser.add_argument(
        "--trace-ratio",
        type=float,
        default=None,
        help="export traces (OTLP/HTTP, to a receiver in this process) with this share of appeals sampled",
    )
    args = parser.parse_args()
    data = Path(f"/tmp/appeals-bench-pipeline-{time.time_ns()}")
    env = {f"{s.upper()}_LOG_LEVEL": "WARNING" for s in SERVICES}
    spans = Counter[str]()
    sink = None
    if args.trace_ratio is not None:
        sink = OtlpReceiver(lambda request: spans.update(exported=span_count(request)))
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.url, OTEL_TRACES_SAMPLER_ARG=str(args.trace_ratio))
    stack = Stack.on_free_ports(data, env=env, kafka_sasl=not args.plaintext)
    stack.start()
    try:
        for replica in range(2, args.replicas + 1):
            for name in SERVICES:
                stack.start_service(name, replica)
            for name in SERVICES:
                stack.wait_ready(f"{name}-{replica}")
        loop_rate = asyncio.run(kafka_loop(stack.kafka_access(), 10_000))
        result = asyncio.run(run(stack, args.rate, args.seconds))
    finally:
        stack.stop()
        if sink is not None:
            sink.stop()
    sustained = result["sustained"]
    print_table(
        f"pipeline: {args.rate:.0f} appeals/s offered for {args.seconds:.0f} s, departments accept and resolve, "
        f"{args.replicas} process(es) of each service",
        [
            "accepted",
            "not accepted",
            "routed",
            "resolved",
            "sustained routed/s",
            "ratio to raw loop",
            "submitted->routed p50 ms",
            "p99 ms",
            "routed->dept topic p50 ms",
            "p99 ms",
        ],
        [
            [
                result["accepted"],
                sum(result["failures"].values()),
                result["routed"],
                result["resolved"],
                round(sustained, 1),
                f"{sustained / loop_rate:.3f}",
                percentile(result["to_routed"], 50),
                percentile(result["to_routed"], 99),
                percentile(result["to_topic"], 50),
                percentile(result["to_topic"], 99),
            ]
        ],
    )
    if sink is not None:
        print(
            f"traces: {args.trace_ratio:.0%} of appeals sampled; {spans['exported']:,} spans exported, "
            f"{spans['exported'] / max(result['accepted'], 1):.1f} per appeal"
        )
    if result["failures"]:
        print("not accepted, by why:", ", ".join(f"{why} {n}" for why, n in result["failures"].most_common()))
    print_table("baseline in the same run", ["FastStream consume -> publish (acks=all) msg/s"], [[f"{loop_rate:,.0f}"]])
    print_table(
        "consumer lag when the run ended (records not yet consumed; the gauges are 5 s old at most)",
        list(SERVICES),
        [[result["lag"][name] for name in SERVICES]],
    )
    print_table(
        "events read more than once during the run (a copy: the same event id again; consumers drop it)",
        ["topic", "events read", "distinct", "copies"],
        copy_rows(result["seen"]),
    )
    print_table(
        "CPU from the first post until every appeal was routed",
        ["process", "CPU s", "ms per appeal"],
        cpu_rows(result["cpu"], result["accepted"]),
    )
    statements, records = cost_rows(result["counted"], result["accepted"])
    print_table(
        "database statements over the same span (the driver's command monitoring)",
        ["service", "statements", "per appeal", "documents written per appeal"],
        statements,
    )
    print_table(
        "the same statements by command and collection (0.1 per appeal or more)",
        ["service command collection", "per appeal", "documents written per appeal"],
        statement_rows(result["counted"], result["accepted"]),
    )
    print_table(
        "Kafka records over the same span (department topics together)",
        ["topic", "produced", "per appeal", "consumed", "per appeal"],
        records,
    )
    print_table(
        "memory, sampled every 5 s",
        ["process", "RSS MB after 1 min", "peak", "at end", "growth"],
        memory_rows(result["rss"]),
    )


if __name__ == "__main__":
    main()
