"""The embedded stack: servers, topics, keys and every service as its own process."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import httpx
import psutil

from devstack import keys as demo_keys
from devstack import servers, supervisor
from libs import contract
from libs.config import load_city, load_registry_config
from libs.contract import all_topics
from libs.kafka.access import KafkaAccess
from libs.kafka.topics import ensure_topics, partitions_setting
from libs.kafka_admin import ADMIN, department_principal, ensure_principals, principals
from libs.settings import PROJECT_ROOT
from services.intake.adopt import adopt_submitted

# The day the default government lists (config/lists/) hold from.
LISTS_AS_OF = "2026-01-01"
# Service name, default port (libs/contract.py); a service joins the stack once its package exists.
SERVICES = tuple((service.name, service.port) for service in contract.SERVICES)
# Web comes last: it serves pages over the others' APIs and has no database.
ALL_SERVICES = (*SERVICES, (contract.WEB.name, contract.WEB.port))


def available_services() -> list[tuple[str, int]]:
    """The services whose packages exist in this checkout."""
    return [(name, port) for name, port in ALL_SERVICES if (PROJECT_ROOT / "services" / name / "app.py").exists()]


@dataclass
class Stack:
    data_dir: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    # The embedded MongoDB runs one SecantusDB per service database: intake's on `mongo_port`,
    # the others on the next ports unless `mongo_ports` names them.
    mongo_port: int = 27017
    mongo_ports: dict[str, int] = field(default_factory=dict)
    service_ports: dict[str, int] = field(default_factory=dict)
    kafka_bootstrap: str | None = None
    # The embedded Kafka authenticates every client (SASL SCRAM) and authorizes each by ACLs; False runs it open,
    # for a benchmark's comparison only.
    kafka_sasl: bool = True
    # Kafka user -> password: the admin, each service, each department, and the embedded node's controller.
    kafka_passwords: dict[str, str] = field(default_factory=dict)
    mongodb_uri: str | None = None
    mongo_storage: str | None = None
    partitions: int = field(default_factory=partitions_setting)  # KAFKA_PARTITIONS, for the topics it creates
    config_dir: Path = PROJECT_ROOT / "config"
    env: dict[str, str] = field(default_factory=dict)
    only: tuple[str, ...] | None = None  # start just these services (tests that need fewer)
    smtp_port: int = 8025
    outbox_port: int = 8006
    log_stream: IO[str] | None = None
    sinks: subprocess.Popen | None = None
    kafka: subprocess.Popen | None = None
    databases: dict[str, subprocess.Popen] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    # The processes this stack started, as recorded in `stack.pids.json` (see devstack/supervisor.py).
    recorded: dict[str, supervisor.Recorded] = field(default_factory=dict)
    # Told each step of `start` as it begins or ends (`make run` prints them); silent when None.
    say: Callable[[str], None] | None = None

    def _step(self, line: str) -> None:
        if self.say is not None:
            self.say(line)

    @classmethod
    def on_free_ports(cls, data_dir: Path, **options) -> "Stack":
        """A stack (not started) whose servers and services all take free loopback ports: for tests and benches."""
        names = [name for name, _ in SERVICES]
        ports = iter(servers.free_ports(4 + 2 * len(names) + 1))
        return cls(
            data_dir=data_dir,
            kafka_port=next(ports),
            kafka_controller_port=next(ports),
            smtp_port=next(ports),
            outbox_port=next(ports),
            mongo_ports={name: next(ports) for name in names},
            service_ports={name: next(ports) for name, _ in ALL_SERVICES},
            **options,
        )

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def sasl(self) -> bool:
        """Whether clients authenticate: always on the embedded Kafka (unless `kafka_sasl` is off), on an external
        one when KAFKA_SECURITY_PROTOCOL says so."""
        if self.kafka_bootstrap is None:
            return self.kafka_sasl
        return os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").startswith("SASL")

    def kafka_access(self, user: str = ADMIN) -> KafkaAccess:
        """How `user` (the admin unless named) reaches this stack's Kafka."""
        if not self.sasl:
            return KafkaAccess(self.bootstrap)
        if user not in self.kafka_passwords and self.credentials_file.exists():
            # A stack started by another process (`make run`): its passwords are in its data folder.
            self.kafka_passwords = json.loads(self.credentials_file.read_text())
        protocol = "SASL_PLAINTEXT" if self.kafka_bootstrap is None else os.environ["KAFKA_SECURITY_PROTOCOL"]
        return KafkaAccess(self.bootstrap, protocol, username=user, password=self.kafka_passwords[user])

    @property
    def credentials_file(self) -> Path:
        """Where the stack keeps every Kafka user's password (KAFKA_CREDENTIALS_FILE for an external Kafka)."""
        if self.kafka_bootstrap is not None and os.environ.get("KAFKA_CREDENTIALS_FILE"):
            return Path(os.environ["KAFKA_CREDENTIALS_FILE"])
        return self.data_dir / "kafka-credentials.json"

    def load_kafka_passwords(self, department_codes: list[str]) -> bool:
        """Read the users' passwords, giving any user not there yet a new one (saved at once); whether the file
        existed before, which for the embedded Kafka means its log was formatted with users (or given them)."""
        path = self.credentials_file
        existed = path.exists()
        known: dict[str, str] = json.loads(path.read_text()) if existed else {}
        wanted = [*principals(department_codes), *(["controller"] if self.kafka_bootstrap is None else [])]
        if self.kafka_bootstrap is not None and (missing := [u for u in wanted if u not in known]):
            raise RuntimeError(f"{path} has no Kafka password for: {', '.join(missing)}")
        added = servers.kafka_passwords([user for user in wanted if user not in known])
        self.kafka_passwords = {**known, **added}
        if added:
            path.write_text(json.dumps(self.kafka_passwords, indent=2))
            path.chmod(0o600)
        return existed

    def mongo_uri(self, service: str) -> str:
        """Where `service` keeps its database: the given MongoDB, or its own embedded SecantusDB."""
        if self.mongodb_uri:
            return self.mongodb_uri
        return servers.embedded_mongo_uri(self.mongo_ports[service])

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[service]}"

    def ports(self) -> dict[str, int]:
        """Every port on 127.0.0.1 this stack's own processes will listen on, by what listens there."""
        ports = {}
        if self.kafka_bootstrap is None:
            ports.update({"Kafka": self.kafka_port, "Kafka's controller": self.kafka_controller_port})
        if self.mongodb_uri is None:
            ports.update(
                {
                    f"MongoDB ({name})": self.mongo_ports.get(name, self.mongo_port + n)
                    for n, (name, _) in enumerate(SERVICES)
                }
            )
        ports.update({"SMTP receiver": self.smtp_port, "outbox receiver": self.outbox_port})
        ports.update({name: self.service_ports.get(name, port) for name, port in self.wanted_services()})
        return ports

    def wanted_services(self) -> list[tuple[str, int]]:
        """The services this stack runs, with their default ports."""
        return [(name, port) for name, port in available_services() if self.only is None or name in self.only]

    def start(self) -> None:
        """Start servers (unless external ones are given), topics, keys and services; wait until ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        city = load_city(self.config_dir)
        codes = [d.code for d in city.departments]
        had_users = self.load_kafka_passwords(codes) if self.sasl else True
        if self.kafka_bootstrap is None:
            fresh = not (self.data_dir / "kafka" / "meta.properties").exists()
            self._step(
                f"Apache Kafka {servers.kafka_version()}: "
                + ("formatting its log and starting" if fresh else "starting")
                + f" on 127.0.0.1:{self.kafka_port}"
            )
            self.start_kafka(formatted_without_users=not had_users)
            self._step("Apache Kafka ready")
        if self.mongodb_uri is None:
            self._step("MongoDB: one SecantusDB server per service database")
            self.start_databases()
        topics = all_topics(codes)
        self._step(f"Kafka: {len(topics)} topics" + (", users and ACLs" if self.sasl else ""))
        asyncio.run(ensure_topics(self.kafka_access(), topics, self.partitions))
        if self.sasl:
            users = {user: password for user, password in self.kafka_passwords.items() if user != "controller"}
            asyncio.run(ensure_principals(self.kafka_access(), users, codes))
        # A stack's data from before contacts had a topic of their own: moved once, nothing to do after.
        asyncio.run(adopt_submitted(self.kafka_access()))
        liaisons = [entry.id for entry in load_registry_config(self.config_dir, city).liaisons]
        self.keys = demo_keys.provision(city, self.data_dir, liaisons)
        self.start_sinks()
        for name, default_port in self.wanted_services():
            self.service_ports.setdefault(name, default_port)
            self.start_service(name)
        for name in self.processes:
            self.wait_ready(name)
            self._step(f"{name} ready on {self.url(name)}")
        if "router" in self.processes:
            self._step("router: importing the government lists of config/lists/")
            self.import_lists()
        self.write_manifest()

    def start_kafka(self, formatted_without_users: bool = False) -> None:
        """Start the embedded Kafka, with users and ACLs unless `kafka_sasl` is off.

        A log formatted by an earlier version has no users: one start lets the admin in with PLAIN
        to give Kafka every SCRAM user, then it starts as always. Nothing in the log changes.
        """
        directory, log = self.data_dir / "kafka", self.data_dir / "kafka.log"
        passwords = self.kafka_passwords if self.kafka_sasl else None
        if passwords and formatted_without_users and (directory / "meta.properties").exists():
            once = servers.start_kafka(
                self.kafka_port, self.kafka_controller_port, directory, log, passwords, plain_admin=True
            )
            try:
                users = {user: password for user, password in passwords.items() if user != "controller"}
                plain = replace(self.kafka_access(), sasl_mechanism="PLAIN")
                asyncio.run(ensure_principals(plain, users, []))
            finally:
                servers.stop(once)
        self.kafka = servers.start_kafka(self.kafka_port, self.kafka_controller_port, directory, log, passwords)
        self.remember("kafka", self.kafka.pid)

    def import_lists(self) -> None:
        """Import the government lists of `config/lists/<id>.csv` as an admin would (again: changes nothing)."""
        for path in sorted((self.config_dir / "lists").glob("*.csv")):
            answer = httpx.post(
                self.url("router") + "/v1/enterprises/import",
                params={"list": path.stem, "as_of": LISTS_AS_OF},
                content=path.read_bytes(),
                headers={"X-Api-Key": self.keys["admin"], "Content-Type": "text/csv"},
                timeout=300,
            )
            if answer.status_code != 200:
                raise RuntimeError(f"importing {path} failed: {answer.status_code} {answer.text[:500]}")

    def remember(self, name: str, pid: int) -> None:
        """Record a process of this stack in `stack.pids.json`, so no later start mistakes it for another's."""
        try:
            self.recorded[name] = supervisor.record(name, pid)
        except psutil.NoSuchProcess:
            self.recorded.pop(name, None)
        supervisor.write(self.data_dir, list(self.recorded.values()))

    def start_databases(self) -> None:
        """One embedded SecantusDB per service database, on the same data as before when restarted.

        Each service owns its database, and SecantusDB runs every command of a server in one
        Python process under server-wide and collection locks: one server for all five made
        each service's writes queue behind the others' (at 20 appeals/s, submitted -> routed
        p50 4.9 s on one server, 0.6 s on five). A real MongoDB needs no such split.
        """
        root = self.mongo_storage or self.data_dir / "mongodb"
        for n, (name, _) in enumerate(SERVICES):
            port = self.mongo_ports.setdefault(name, self.mongo_port + n)
            storage = root if root == ":memory:" else Path(root) / name
            self.databases[name] = servers.start_mongo(port, storage, self.data_dir / f"mongodb-{name}.log")
            self.remember(f"mongodb-{name}", self.databases[name].pid)

    def stop_databases(self) -> None:
        """Stop the embedded SecantusDB servers (a restart with `start_databases` finds their data)."""
        for proc in self.databases.values():
            if proc.poll() is None:
                proc.terminate()  # all at once: each writes a checkpoint before it ends
        for proc in self.databases.values():
            servers.stop(proc)
        self.databases.clear()

    def start_sinks(self) -> None:
        """Local SMTP and HTTP receivers, so what notify sends stays on this machine and can be read."""
        self.sinks = servers.spawn(
            [
                sys.executable,
                "-m",
                "devstack.sinks",
                "--smtp-port",
                str(self.smtp_port),
                "--http-port",
                str(self.outbox_port),
                "--dir",
                str(self.data_dir / "outbox"),
            ],
            self.data_dir / "sinks.log",
        )
        self.remember("sinks", self.sinks.pid)
        servers.wait_for_port(self.outbox_port, process=self.sinks)
        servers.wait_for_port(self.smtp_port, process=self.sinks)

    def service_env(self, name: str, port: int | None = None) -> dict[str, str]:
        prefix = name.upper() + "_"
        values = {
            "ENVIRONMENT": "dev",
            "HTTP_PORT": str(port or self.service_ports[name]),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            **self.kafka_env(name),
            "API_KEYS_FILE": str(self.data_dir / "api-keys.json"),
            "CONFIG_DIR": str(self.config_dir),
        }
        if name == "intake":
            web = f"http://127.0.0.1:{self.service_ports.get(contract.WEB.name, contract.WEB.port)}"
            values["FOLLOW_URL"] = web + "/appeals/{appeal_id}?token={token}"
        if name != contract.WEB.name:
            values["MONGODB_URI"] = self.mongo_uri(name)
        else:
            values.update(
                {
                    "INTAKE_URL": self.url("intake") if "intake" in self.service_ports else "http://127.0.0.1:8001",
                    "ROUTER_URL": self.url("router") if "router" in self.service_ports else "http://127.0.0.1:8002",
                    "STATS_URL": self.url("stats") if "stats" in self.service_ports else "http://127.0.0.1:8005",
                    "CHANNEL_KEY": self.keys.get("channel:web", ""),
                }
            )
        if name == "notify":
            outbox = f"http://127.0.0.1:{self.outbox_port}"
            values.update(
                {
                    "SMTP_PORT": str(self.smtp_port),
                    "SMS_ENDPOINT": outbox + "/sms",
                    "WECHAT_ENDPOINT": outbox + "/wechat",
                    "WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',  # the demo sinks are on loopback
                    "STATUS_URL": f"http://127.0.0.1:{self.service_ports.get('web', 8007)}/appeals/{{appeal_id}}",
                }
            )
        env = {**os.environ, **{prefix + k: v for k, v in values.items()}, "PYTHONUNBUFFERED": "1"}
        env.update({k: v for k, v in self.env.items()})
        return env

    def kafka_env(self, service: str) -> dict[str, str]:
        """A service's Kafka principal, as settings (without the service's prefix); web has none."""
        if not self.sasl or service == contract.WEB.name:
            return {}
        access = self.kafka_access(service)
        return {
            "KAFKA_SECURITY_PROTOCOL": access.security_protocol,
            "KAFKA_SASL_MECHANISM": access.sasl_mechanism,
            "KAFKA_SASL_USERNAME": access.username,
            "KAFKA_SASL_PASSWORD": access.password,
        }

    def start_service(self, name: str, replica: int = 1) -> subprocess.Popen:
        """Start (or restart) one service as its own process, its log lines prefixed with its name.

        Replica 2 and up of a service run beside the first in the same consumer groups,
        on ports of their own, under the key `<name>-<replica>`.
        """
        key = name if replica == 1 else f"{name}-{replica}"
        if key not in self.service_ports:
            self.service_ports[key] = servers.free_port()
        echo = servers.echo_to(self.log_stream, key) if self.log_stream is not None else None
        proc = servers.spawn(
            [sys.executable, "-m", f"services.{name}"],
            self.data_dir / f"{key}.log",
            env=self.service_env(name, self.service_ports[key]),
            echo=echo,
        )
        self.processes[key] = proc
        self.remember(key, proc.pid)
        return proc

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        """Block until the service's /readyz answers 200, and it is this stack's process that answers."""
        deadline = time.monotonic() + timeout
        proc = self.processes[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.data_dir / (name + '.log')}")
            try:
                if httpx.get(self.url(name) + "/readyz", timeout=2).status_code == 200:
                    holder = supervisor.listener(self.service_ports[name])
                    if holder not in (proc.pid, 0):
                        raise RuntimeError(
                            f"{name}'s port {self.service_ports[name]} is answered by "
                            f"{supervisor.describe(holder or 0)}, not by the {name} just started"
                        )
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout}s")

    def children(self) -> dict[str, subprocess.Popen]:
        """Every process this stack started and still holds, by name."""
        named = {
            "kafka": self.kafka,
            "sinks": self.sinks,
            **{f"mongodb-{name}": proc for name, proc in self.databases.items()},
            **self.processes,
        }
        return {name: proc for name, proc in named.items() if proc is not None}

    def kill_service(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to a service (kill -9 by default) and wait for it to end."""
        proc = self.processes[name]
        proc.send_signal(sig)
        proc.wait(30)

    def manifest(self) -> dict:
        admin = self.kafka_access()
        kafka: dict[str, object] = {
            "bootstrap_servers": self.bootstrap,
            "embedded": self.kafka is not None,
            "security_protocol": admin.security_protocol,
        }
        if self.sasl:
            # What a department's own client (kcat, a Kafka library) needs to read its topic and write its actions.
            kafka["sasl_mechanism"] = admin.sasl_mechanism
            kafka["principals"] = {
                principal: {"username": user, "password": self.kafka_passwords[user]}
                for principal, user in (
                    ("admin", ADMIN),
                    *((f"department:{code}", department_principal(code)) for code in self.department_codes()),
                )
            }
        if self.kafka is not None:
            kafka.update({"version": servers.kafka_version(), "log_dir": str(self.data_dir / "kafka")})
        return {
            "kafka": kafka,
            "mongodb": {"uris": {name: self.mongo_uri(name) for name, _ in SERVICES}, "embedded": bool(self.databases)},
            "services": {
                name: {
                    "url": self.url(name),
                    # Web serves pages, not an API: its front page stands where the others' docs do.
                    "docs": self.url(name) + ("/" if name.split("-")[0] == contract.WEB.name else "/docs"),
                    "metrics": self.url(name) + "/metrics",
                }
                for name in self.processes
            },
            "outbox": {
                "smtp": f"127.0.0.1:{self.smtp_port}",
                "url": f"http://127.0.0.1:{self.outbox_port}/",
                "files": str(self.data_dir / "outbox"),
            },
            "keys": self.keys,
        }

    def department_codes(self) -> list[str]:
        return [d.code for d in load_city(self.config_dir).departments]

    def write_manifest(self) -> Path:
        path = self.data_dir / "stack.json"
        path.write_text(json.dumps(self.manifest(), indent=2))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        """Stop services, then the servers this stack started."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in (self.sinks, self.kafka):
            if server is not None:
                servers.stop(server)
        self.stop_databases()
        self.recorded.clear()
        if self.data_dir.exists():
            supervisor.write(self.data_dir, [])
