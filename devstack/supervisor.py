"""What a stack leaves in its data folder about its processes, and how a new start or `stop` uses it.

The stack records every process it starts, with its process id and start time, in
`stack.pids.json`. A process id alone could name an unrelated program after a
reboot or a wrap-around; with its start time it names exactly the process the
stack started. Only processes recorded there are ever signalled.
"""

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

PIDS_FILE = "stack.pids.json"
SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class Recorded:
    """A process the stack started: its name in the stack, id, start time (epoch seconds) and command."""

    name: str
    pid: int
    started: float
    command: str

    def running(self) -> bool:
        """Whether this very process (same id and start time) is still alive."""
        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - self.started) < 0.01 and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def record(name: str, pid: int) -> Recorded:
    """The record of a live process."""
    process = psutil.Process(pid)
    return Recorded(name, pid, process.create_time(), " ".join(process.cmdline())[:200])


def write(data_dir: Path, records: list[Recorded]) -> None:
    """Replace the data folder's record of processes (atomically: a reader never sees half a file)."""
    path = data_dir / PIDS_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([asdict(r) for r in records], indent=2))
    os.replace(temporary, path)


def read(data_dir: Path) -> list[Recorded]:
    """The processes the last stack in this data folder recorded (none when it left no record)."""
    try:
        return [Recorded(**entry) for entry in json.loads((data_dir / PIDS_FILE).read_text())]
    except (FileNotFoundError, ValueError, TypeError):
        return []


def still_running(data_dir: Path) -> list[Recorded]:
    """The recorded processes that are still alive."""
    return [r for r in read(data_dir) if r.running()]


def stop_processes(records: list[Recorded], timeout: float = 30.0) -> list[Recorded]:
    """SIGTERM each recorded process, then SIGKILL what is left after `timeout`; returns those stopped."""
    alive = [r for r in records if r.running()]
    for r in alive:
        _signal(r, signal.SIGCONT)  # a frozen process would never act on SIGTERM
        _signal(r, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(r.running() for r in alive) and time.monotonic() < deadline:
        time.sleep(0.2)
    for r in alive:
        if r.running():
            _signal(r, signal.SIGKILL)
    while any(r.running() for r in alive) and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    return alive


def _signal(r: Recorded, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(r.pid, sig)


def listener(port: int) -> int | None:
    """The id of the process listening on TCP `port`, when it can be seen (0 when it cannot)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return 0
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid or 0
    return None


def describe(pid: int) -> str:
    """A process as a person can recognise it: id and command."""
    if not pid:
        return "a process this user cannot see"
    try:
        return f"pid {pid} ({' '.join(psutil.Process(pid).cmdline())[:120]})"
    except psutil.Error:
        return f"pid {pid}"
