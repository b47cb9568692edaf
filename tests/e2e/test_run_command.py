"""`make run`'s command: starts everything and says where it is; Ctrl-C, `make stop` or its own death stop all of it."""

import json
import os
import signal
import socket
import time

import httpx

from devstack import supervisor
from devstack.servers import port_in_use
from tests.helpers import run_command, stack_for_run_command, wait_for_banner


def wait_until_gone(records: list[supervisor.Recorded], timeout: float = 60.0) -> list[supervisor.Recorded]:
    """The recorded processes still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(r.running() for r in records) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [r for r in records if r.running()]


def test_run_prints_where_everything_is_and_ctrl_c_stops_everything(tmp_path):
    stack = stack_for_run_command(tmp_path / "data")
    log = tmp_path / "run.log"
    proc = run_command(stack, log)
    try:
        text = wait_for_banner(proc, log)
        assert f"http://127.0.0.1:{stack.service_ports['intake']}" in text and "channel:wechat" in text
        assert f"Apache Kafka 4.4.0, one KRaft node, log in {stack.data_dir / 'kafka'}" in text
        manifest = json.loads((stack.data_dir / "stack.json").read_text())
        assert manifest["kafka"]["bootstrap_servers"] == stack.bootstrap
        assert (stack.data_dir / "kafka" / "meta.properties").exists(), "the log directory was formatted"
        for svc in manifest["services"].values():
            assert httpx.get(svc["url"] + "/readyz").status_code == 200
        # It said each step as it went, before the banner.
        steps = [line for line in text.splitlines() if line.startswith("==> ")]
        assert steps[0].startswith("==> Apache Kafka 4.4.0: formatting its log and starting")
        assert (
            "==> Apache Kafka ready" in steps and "==> router: importing the government lists of config/lists/" in steps
        )
        assert {f"==> {name} ready on {stack.url(name)}" for name in ("intake", "router", "web")} <= set(steps)
        # `status` says what runs and where.
        status = run_command(stack, tmp_path / "status.log", "status")
        assert status.wait(60) == 0, (tmp_path / "status.log").read_text()
        said = (tmp_path / "status.log").read_text()
        assert f"intake    {stack.url('intake')}" in said and said.count(" ready ") == len(manifest["services"])
        recorded = supervisor.still_running(stack.data_dir)
        assert {r.name for r in recorded} == {
            "supervisor",
            "kafka",
            "sinks",
            "intake",
            "router",
            "sla",
            "notify",
            "stats",
            "web",
            *(f"mongodb-{name}" for name in stack.mongo_ports),
        }
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    assert proc.returncode == 0
    assert wait_until_gone(recorded, 10) == []
    for what, port in stack.ports().items():
        assert not port_in_use(port), f"something still listens on {port} ({what})"
    after = run_command(stack, tmp_path / "status-after.log", "status")
    assert after.wait(60) == 1 and "no stack is running" in (tmp_path / "status-after.log").read_text()


def test_a_killed_supervisor_leaves_nothing_behind_and_the_next_start_clears_what_it_could_not(tmp_path):
    stack = stack_for_run_command(tmp_path / "data")
    first = run_command(stack, tmp_path / "run-1.log")
    third = None
    try:
        wait_for_banner(first, tmp_path / "run-1.log")
        recorded = supervisor.still_running(stack.data_dir)

        # A second start on the same data while the first runs is refused and touches nothing.
        second = run_command(stack, tmp_path / "run-2.log")
        assert second.wait(60) != 0
        refusal = (tmp_path / "run-2.log").read_text()
        assert f"A stack is already running from {stack.data_dir} (pid {first.pid}" in refusal
        assert "make stop" in refusal
        assert [r for r in recorded if not r.running()] == []

        # The supervisor dies; every process it started ends with it, but one that is frozen and cannot.
        frozen = next(r for r in recorded if r.name == "notify")
        os.kill(frozen.pid, signal.SIGSTOP)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert wait_until_gone([r for r in recorded if r != frozen]) == [], "orphans of the killed stack"
        assert frozen.running()

        # The next start names what the dead stack left, stops it, and runs on fresh processes.
        third = run_command(stack, tmp_path / "run-3.log")
        text = wait_for_banner(third, tmp_path / "run-3.log")
        assert f"left 1 of its processes running: notify (pid {frozen.pid}). Stopping them." in text
        assert not frozen.running()
        now = {r.name: r for r in supervisor.still_running(stack.data_dir)}
        assert now["notify"].pid != frozen.pid and now["supervisor"].pid == third.pid
        assert httpx.get(stack.url("notify") + "/readyz").status_code == 200

        # `make stop` stops a stack that runs in the background.
        stopping = run_command(stack, tmp_path / "stop.log", "stop")
        assert stopping.wait(180) == 0, (tmp_path / "stop.log").read_text()
        assert f"stopping the stack (pid {third.pid})" in (tmp_path / "stop.log").read_text()
        assert third.wait(10) == 0
        assert wait_until_gone(list(now.values()), 10) == []
        assert supervisor.still_running(stack.data_dir) == []
    finally:
        for proc in (first, third):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(120)
        supervisor.stop_processes(supervisor.still_running(stack.data_dir))


def test_a_port_held_by_another_program_stops_the_start_and_says_which(tmp_path):
    stack = stack_for_run_command(tmp_path / "data")
    port = stack.service_ports["router"]
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        proc = run_command(stack, tmp_path / "run.log")
        assert proc.wait(60) != 0
    text = (tmp_path / "run.log").read_text()
    assert f"port {port} (router) is held by pid {os.getpid()}" in text and "ROUTER_PORT=<port>" in text
    assert supervisor.still_running(stack.data_dir) == [], "nothing was started"
    assert not port_in_use(stack.kafka_port)
