"""The embedded servers: Apache Kafka (one KRaft node) and SecantusDB (MongoDB protocol), and how they run.

Every process the stack starts goes through `spawn`: its output is written by a
thread of ours to a log file that rotates, and it is bound to the thread that
started it, so that it gets SIGTERM when that thread (the stack's process) dies.
"""

import base64
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO

from libs.kafka_admin import scram_argument
from libs.settings import PROJECT_ROOT

KAFKA_POM = PROJECT_ROOT / "devstack" / "kafka" / "pom.xml"
KAFKA_LOG4J = PROJECT_ROOT / "devstack" / "kafka" / "log4j2.properties"
# Where `make` copies the broker's jars (`mvn dependency:copy-dependencies` on KAFKA_POM); Maven's own
# repository (~/.m2) keeps the downloads, so a clean checkout copies them again without the network.
KAFKA_LIBS = Path(os.environ.get("KAFKA_LIBS", PROJECT_ROOT / ".kafka" / "libs"))
# A small machine: the heap is capped so the whole broker stays well under 1 GB resident.
KAFKA_HEAP = os.environ.get("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
LOG_BYTES = 10_000_000
LOG_BACKUPS = 3


def _ephemeral_ports() -> range:
    """The ports the system hands out for outgoing connections and `bind(0)`."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


# Ports for our servers come from below the system's ephemeral range. A port taken from `bind(0)` was
# free when picked, but the system may give it to any outgoing connection (a client of the broker, of a
# database) before the server binds it: a database of the stack once failed to start on "Address already
# in use" that way. Below the range, only another listener can take it.
_OURS = range(20000, max(_ephemeral_ports().start, 25000))


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the range outgoing connections use."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports on 127.0.0.1 that nothing listens on right now."""
    ports: list[int] = []
    for port in random.sample(_OURS, len(_OURS)):
        if _bindable(port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free ports in {_OURS.start}-{_OURS.stop - 1}")


def free_port_run(count: int) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that nothing listens on right now."""
    for _ in range(100):
        first = random.randrange(_OURS.start, _OURS.stop - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found")


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with {process.returncode} before listening")
        if port_in_use(port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def rotating_log(path: Path) -> RotatingFileHandler:
    """A log file that keeps LOG_BACKUPS older files of LOG_BYTES each, so the stack's logs stay bounded."""
    handler = RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def _pump(proc: subprocess.Popen, log: Path, echo: Callable[[str], None] | None) -> None:
    handler = rotating_log(log)
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            handler.emit(logging.makeLogRecord({"msg": line}))
            if echo is not None:
                echo(line)
    finally:
        handler.close()


def _bound(signal_name: str) -> list[str]:
    """The child gets `signal_name` when the thread that started it ends, so nothing outlives a killed stack."""
    return ["setpriv", "--pdeathsig", signal_name, "--"] if shutil.which("setpriv") else []


def spawn(
    args: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
    on_parent_death: str = "TERM",
) -> subprocess.Popen:
    """Start a process in its own session (Ctrl-C reaches it only through us), its output to a rotating `log`."""
    proc = subprocess.Popen(
        [*_bound(on_parent_death), *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    threading.Thread(target=_pump, args=(proc, log, echo), daemon=True, name=f"log {log.name}").start()
    return proc


def java() -> str:
    """The java command: $JAVA_HOME/bin/java when JAVA_HOME is set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    command = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not command or not Path(command).exists():
        raise RuntimeError(
            "no Java found: Apache Kafka needs Java 17 or newer (Debian: apt-get install "
            "openjdk-17-jre-headless), on PATH or in JAVA_HOME"
        )
    return command


def kafka_version() -> str:
    """The Apache Kafka version whose jars are in KAFKA_LIBS."""
    jars = sorted(KAFKA_LIBS.glob("kafka_2.13-*.jar"))
    if not jars:
        raise RuntimeError(
            f"Apache Kafka's jars are not in {KAFKA_LIBS}: run `make kafka` (it runs "
            f"`mvn dependency:copy-dependencies -f {KAFKA_POM.relative_to(PROJECT_ROOT)}`)"
        )
    return jars[-1].stem.removeprefix("kafka_2.13-")


def kafka_properties(
    port: int,
    controller_port: int,
    log_dir: Path,
    passwords: Mapping[str, str] | None = None,
    *,
    plain_admin: bool = False,
) -> str:
    """One node, broker and controller in one JVM, on loopback, with a small machine's settings.

    With `passwords` (user -> password, `admin` and `controller` among them) every listener authenticates:
    clients with SCRAM-SHA-512 as users Kafka keeps (made at format time or by the admin later), the controller
    with PLAIN as `controller`, and the StandardAuthorizer lets each user do only what an ACL allows. No listener
    takes anonymous clients. `plain_admin` also lets the admin in with PLAIN, for the one start that gives a log
    formatted before users existed its SCRAM users.
    """
    if passwords is None:
        security = [
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    else:
        admin, controller = passwords["admin"], passwords["controller"]
        mechanisms = "SCRAM-SHA-512,PLAIN" if plain_admin else "SCRAM-SHA-512"
        security = [
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            # Naming any listener's protocol replaces Kafka's default map: both are listed.
            "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            f"listener.name.sasl_plaintext.sasl.enabled.mechanisms={mechanisms}",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
            f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{admin}";',
            *(
                [
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="admin" password="{admin}" user_admin="{admin}";'
                ]
                if plain_admin
                else []
            ),
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            # The same line is the controller's only user and the node's own login to it.
            "listener.name.controller.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="controller" password="{controller}" user_controller="{controller}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The node registers itself as `controller` and talks to itself as `admin`.
            "super.users=User:admin;User:controller",
            "allow.everyone.if.no.acl.found=false",
        ]
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            "controller.listener.names=CONTROLLER",
            *security,
            f"log.dirs={log_dir}",
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Nothing to wait for: a lone consumer gets its partitions at once.
            "group.initial.rebalance.delay.ms=0",
            # The stack creates every topic with its partitions and retention; a typo must not make a new one.
            "auto.create.topics.enable=false",
            "num.partitions=4",
            # Fewer threads than the defaults, for two cores.
            "num.network.threads=2",
            "num.io.threads=4",
            "num.recovery.threads.per.data.dir=2",
            "",
        ]
    )


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes in URL-safe base64 without padding, as `kafka-storage random-uuid`."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka refuses ids that read as a command-line flag
            return cluster_id


def start_kafka(
    port: int,
    controller_port: int,
    log_dir: Path,
    log: Path,
    passwords: Mapping[str, str] | None = None,
    *,
    plain_admin: bool = False,
) -> subprocess.Popen:
    """Start Apache Kafka on 127.0.0.1:`port`, its log in `log_dir`, formatted on the first start only.

    The log directory keeps its cluster id, topics, offsets, committed positions and users
    across restarts; `meta.properties` in it says it was formatted. With `passwords`, the
    node authenticates everyone (`kafka_properties`) and is formatted with a SCRAM user for
    each of them but `controller`.
    """
    classpath = str(KAFKA_LIBS / "*")
    kafka_version()
    log_dir.mkdir(parents=True, exist_ok=True)
    properties = log_dir.parent / f"{log_dir.name}.properties"
    properties.write_text(kafka_properties(port, controller_port, log_dir, passwords, plain_admin=plain_admin))
    # It holds the admin's and the controller's passwords.
    properties.chmod(0o600)
    jvm = [
        java(),
        *KAFKA_HEAP.split(),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
        "-cp",
        classpath,
    ]
    if not (log_dir / "meta.properties").exists():
        users = [
            arg
            for name, password in (passwords or {}).items()
            if name != "controller"
            for arg in ("--add-scram", scram_argument(name, password, secrets.token_bytes(24)))
        ]
        formatted = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                new_cluster_id(),
                "--config",
                str(properties),
                *users,
            ],
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            raise RuntimeError(
                f"formatting Kafka's log in {log_dir} failed: {formatted.stdout[-2000:]}{formatted.stderr[-2000:]}"
            )
    proc = spawn([*jvm, "kafka.Kafka", str(properties)], log)
    try:
        wait_for_port(port, timeout=90, process=proc)
    except (RuntimeError, TimeoutError) as exc:
        stop(proc)
        raise RuntimeError(f"Apache Kafka did not start on 127.0.0.1:{port}: {exc}; see {log}") from exc
    return proc


def kafka_passwords(users: list[str]) -> dict[str, str]:
    """A new random password for each of `users` (comma-free: Kafka's format tool splits on commas)."""
    return {user: secrets.token_urlsafe(24) for user in users}


def start_mongo(port: int, storage: Path | str = ":memory:", log: Path | None = None) -> subprocess.Popen:
    """Start a SecantusDB server on 127.0.0.1:`port`, persistent under `storage` unless ':memory:'.

    As a standalone server, like a single mongod without a replica set: the platform
    uses neither change streams nor transactions, and a standalone server keeps no
    oplog, which cost 15-20 % of SecantusDB's CPU on every write.
    """
    if storage != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    proc = spawn(
        [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
            "--standalone",
        ],
        log or Path(os.devnull),
        # A stack whose supervisor was killed: SecantusDB's own stop once waited over a minute while its service
        # shut down beside it, outliving the stack. Every write of ours is acknowledged once journaled
        # (`j: true`, libs/mongo.py), so a kill loses nothing acknowledged; `make stop` still stops it gracefully.
        on_parent_death="KILL",
    )
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


def start_prometheus(port: int, config: Path, storage: Path, log: Path) -> subprocess.Popen:
    """Start Debian's Prometheus on 127.0.0.1:`port` with `config`, keeping its data under `storage` and the
    exemplars (trace ids) of what it scrapes in OpenMetrics."""
    proc = spawn(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
            "--log.level=warn",
        ],
        log,
    )
    wait_for_port(port, timeout=60, process=proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Terminate a server and wait for it; kill it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGCONT)  # a frozen process (a fault test) cannot act on SIGTERM
    except ProcessLookupError:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_ECHO_LOCK = threading.Lock()


def echo_to(stream: IO[str], name: str) -> Callable[[str], None]:
    """An `echo` for `spawn` that writes each line to `stream` behind the process's name."""

    def write(line: str) -> None:
        with _ECHO_LOCK:
            stream.write(f"{name:<7}| {line}\n")
            stream.flush()

    return write
