"""Crash: kill -9 of each service during a run of appeals, then a restart (docs/testing.md).

All five services run as their own processes on the real broker and database, during
the run of `tests/e2e/crash.py`; meanwhile intake, router, sla, notify and stats are
each killed with SIGKILL and restarted, one after another. Once the stack is quiet,
everything `crash.py` lists must hold.

`make test` runs 60 appeals (minutes); `make test-slow` runs 2,000 (hours on a shared two-core machine).
"""

import asyncio
import statistics
import time

import pytest

from devstack.stack import Stack
from tests.e2e.crash import Run, check_invariants, crash_config, departments, load, stats_figures, wait_until_quiet
from tests.helpers import Databases

KILL_ORDER = ("intake", "router", "sla", "notify", "stats")
PAUSE_AFTER_KILL = 3.0  # seconds a killed service stays down


def crash_stack(tmp_path_factory) -> Stack:
    """All five services on free ports, every appeal on the crash_test SLA profile."""
    config = crash_config(tmp_path_factory.mktemp("crash-config"))
    attempt = 1
    while True:
        stack = Stack.on_free_ports(
            tmp_path_factory.mktemp("kill-each-stack"), config_dir=config, mongo_storage=":memory:"
        )
        try:
            stack.start()
            return stack
        except (RuntimeError, TimeoutError):
            # A port that was free when chosen can be taken before a service binds it (the machine is shared).
            stack.stop()
            if attempt == 3:
                raise
            attempt += 1


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """All five services, every appeal on the crash_test SLA profile."""
    s = crash_stack(tmp_path_factory)
    yield s
    s.stop()


async def kill_each(run: Run) -> None:
    """SIGKILL each service in turn as the load goes on, leave it down a few seconds, restart it."""
    stack = run.stack
    for i, name in enumerate(KILL_ORDER):
        while run.accepted < run.n * (i + 1) / (len(KILL_ORDER) + 1) and not run.posted:
            await asyncio.sleep(0.2)
        pid = stack.processes[name].pid
        await asyncio.to_thread(stack.kill_service, name)
        run.kills.append(
            f"{name} (pid {pid}) at {time.monotonic() - run.began:.0f} s, {run.accepted} accepted, "
            f"{len(run.done)} acted on"
        )
        await asyncio.sleep(PAUSE_AFTER_KILL)
        stack.start_service(name)  # from this thread: a service is bound to the thread that starts it
        await asyncio.to_thread(stack.wait_ready, name, 300)


@pytest.mark.parametrize(
    "n, rate",
    [
        pytest.param(60, 1.0, id="short", marks=pytest.mark.timeout(1200)),
        # Notify plans and sends a few a second on the shared two-core machine: thousands of appeals take hours.
        pytest.param(2000, 2.0, id="thousands", marks=[pytest.mark.slow, pytest.mark.timeout(10 * 3600)]),
    ],
)
async def test_kill_9_of_each_service_mid_run_routes_times_counts_and_notifies_once(stack, n, rate):
    run = Run(stack, n, rate)
    mongo = Databases(stack)
    try:
        before = await stats_figures(stack)
        began = run.began = time.monotonic()
        deadline = began + max(600.0, n * 3.0)
        await asyncio.gather(load(run, deadline), kill_each(run), departments(run, deadline))
        loaded = time.monotonic()
        await wait_until_quiet(run, mongo, before["submitted"] + n, timeout=max(900.0, n * 15.0))
        quiet = time.monotonic()
        report = await check_invariants(run, mongo, before)
        answered = sorted(run.answered_after) or [0.0]
        print(
            f"\n{n} appeals at {rate}/s: load and kills {loaded - began:.0f} s, quiet after "
            f"{quiet - loaded:.0f} s more, checks {time.monotonic() - quiet:.0f} s; departments accepted "
            f"{statistics.median(answered):.1f} s (median), {answered[-1]:.1f} s (max) after submission; "
            f"killed: {'; '.join(run.kills)}"
        )
        print("\n".join(report))
    finally:
        await mongo.close()
