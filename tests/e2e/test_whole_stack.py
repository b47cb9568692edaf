"""The whole stack stopped mid-run, with Ctrl-C and with every process killed at once, then started again.

`python -m devstack run` (what `make run` runs) starts the stack on its data folder. The
run of `tests/e2e/crash.py` posts appeals and departments act on them; halfway, the
stack is stopped with SIGINT to the supervisor (Ctrl-C), or every process the stack
recorded (supervisor, broker, databases, receivers, services) gets SIGKILL at the
same moment, as in a power cut that spares the disk cache. The run command then starts
the stack again on the same data and the posting goes on (posts that met the dead
stack are retried with the same body). Afterwards no process of the first stack is
left, everything `crash.py` lists holds, and stats' buckets equal those of a rebuild
from the topics, which is what the daily report and the department rates are read from.

`make test` runs 40 appeals for each way of stopping; `make test-slow` runs 600.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pymongo import MongoClient

from devstack import supervisor
from libs.settings import PROJECT_ROOT
from tests.e2e.crash import Run, check_invariants, crash_config, departments, load, wait_until_quiet
from tests.helpers import (
    Databases,
    bucket_differences,
    run_command,
    stack_for_run_command,
    stats_buckets,
    wait_for_banner,
)


def stop_like(how: str, proc: subprocess.Popen, data_dir) -> list[supervisor.Recorded]:
    """Stop the stack the way `how` says; the processes it had recorded."""
    recorded = supervisor.still_running(data_dir)
    assert {r.name for r in recorded} >= {
        "supervisor",
        "kafka",
        "sinks",
        "intake",
        "router",
        "sla",
        "notify",
        "stats",
    }, recorded
    if how == "ctrl_c":
        proc.send_signal(signal.SIGINT)
        assert proc.wait(180) == 0
    else:
        for r in recorded:
            os.kill(r.pid, signal.SIGKILL)
        proc.wait(30)
    deadline = time.monotonic() + 30
    while any(r.running() for r in recorded) and time.monotonic() < deadline:
        time.sleep(0.2)
    return recorded


def assert_rebuild_equals_live(stack) -> None:
    """Stats' buckets are what a replay of the topics into an empty database makes of them."""
    env = {
        **os.environ,
        "STATS_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        **{f"STATS_{name}": value for name, value in stack.kafka_env("stats").items()},
        "STATS_MONGODB_URI": stack.mongo_uri("stats"),
        "STATS_CONFIG_DIR": str(stack.config_dir),
    }
    rebuilt = subprocess.run(
        [sys.executable, "-m", "services.stats", "rebuild", "--database", "stats_rebuilt"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    client = MongoClient(stack.mongo_uri("stats"))
    try:
        live = stats_buckets(client, "stats")
        assert live, "stats counted something"
        assert bucket_differences(live, stats_buckets(client, "stats_rebuilt")) == {}
    finally:
        client.close()


@pytest.mark.parametrize("how", ["ctrl_c", "kill_all"])
@pytest.mark.parametrize(
    "n, rate",
    [
        pytest.param(40, 2.0, id="short", marks=pytest.mark.timeout(1200)),
        pytest.param(600, 2.0, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(4 * 3600)]),
    ],
)
async def test_the_whole_stack_stopped_mid_run_and_started_again_loses_and_doubles_nothing(tmp_path, how, n, rate):
    stack = stack_for_run_command(tmp_path / "data", config_dir=crash_config(tmp_path / "config"))
    first = run_command(stack, tmp_path / "run-1.log")
    second = None
    mongo = None
    try:
        await asyncio.to_thread(wait_for_banner, first, tmp_path / "run-1.log")
        cluster = (stack.data_dir / "kafka" / "meta.properties").read_text()
        stack.keys = json.loads((stack.data_dir / "stack.json").read_text())["keys"]
        run = Run(stack, n, rate)
        mongo = Databases(stack)
        old: list[supervisor.Recorded] = []

        async def stop_and_start_again() -> None:
            nonlocal second
            while run.accepted < n // 2 or len(run.done) < n // 8:
                await asyncio.sleep(0.2)
            at = f"{run.accepted} accepted, {len(run.done)} acted on"
            old.extend(await asyncio.to_thread(stop_like, how, first, stack.data_dir))
            run.kills.append(f"whole stack ({how}) at {time.monotonic() - run.began:.0f} s, {at}")
            second = run_command(stack, tmp_path / "run-2.log")
            await asyncio.to_thread(wait_for_banner, second, tmp_path / "run-2.log")

        deadline = run.began + max(600.0, n * 3.0)
        await asyncio.gather(load(run, deadline), stop_and_start_again(), departments(run, deadline))
        assert [r for r in old if r.running()] == [], "a process of the first stack is still running"
        assert (stack.data_dir / "kafka" / "meta.properties").read_text() == cluster, "formatted once"
        await wait_until_quiet(run, mongo, n, timeout=max(900.0, n * 15.0))
        report = await check_invariants(run, mongo, {})
        assert_rebuild_equals_live(stack)
        print(f"\n{n} appeals at {rate}/s; {'; '.join(run.kills)}")
        print("\n".join(report))
    finally:
        if mongo is not None:
            await mongo.close()
        for proc in (second, first):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(180)
