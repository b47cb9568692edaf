"""`make run`'s command: starts everything, says where it is, and Ctrl-C stops all of it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from devstack import servers
from libs.settings import PROJECT_ROOT


def test_run_prints_where_everything_is_and_ctrl_c_stops_everything(tmp_path):
    ports = {name: servers.free_port() for name in ("KAFKA_PORT", "INTAKE_PORT", "ROUTER_PORT", "SLA_PORT",
                                                    "NOTIFY_PORT", "STATS_PORT", "SMTP_PORT", "OUTBOX_PORT")}
    # One SecantusDB per service, on MONGODB_PORT and the four after it.
    ports["MONGODB_PORT"] = servers.free_port_run(5)
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    env.update({k: str(v) for k, v in ports.items()})
    proc = subprocess.Popen([sys.executable, "-m", "devstack", "--data-dir", str(tmp_path), "run"], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    banner = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            banner.append(line)
            if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
                break
        text = "".join(banner)
        assert "Ctrl-C stops everything" in text, text[-3000:]
        assert f"http://127.0.0.1:{ports['INTAKE_PORT']}" in text and "channel:wechat" in text
        manifest = json.loads((tmp_path / "stack.json").read_text())
        assert manifest["kafka"]["bootstrap_servers"] == f"127.0.0.1:{ports['KAFKA_PORT']}"
        for svc in manifest["services"].values():
            assert httpx.get(svc["url"] + "/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    for port in [*ports.values(), *range(ports["MONGODB_PORT"] + 1, ports["MONGODB_PORT"] + 5)]:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
