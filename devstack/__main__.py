"""`python -m devstack run`: the whole platform on one machine."""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from devstack import supervisor
from devstack.servers import port_in_use
from devstack.stack import ALL_SERVICES, Stack
from libs.settings import PROJECT_ROOT

# What moves each port of the stack, for the message of a start that finds one taken.
PORT_SETTINGS = {
    "Kafka": "KAFKA_PORT",
    "Kafka's controller": "KAFKA_CONTROLLER_PORT",
    "SMTP receiver": "SMTP_PORT",
    "outbox receiver": "OUTBOX_PORT",
    **{name: f"{name.upper()}_PORT" for name, _ in ALL_SERVICES},
}


def _print_banner(stack: Stack) -> None:
    m = stack.manifest()
    print("\nEnterprise appeals platform is running\n")
    if stack.kafka:
        kafka_kind = f"Apache Kafka {m['kafka']['version']}, one KRaft node, log in {m['kafka']['log_dir']}"
    else:
        kafka_kind = "external"
    print(f"  Kafka    {m['kafka']['bootstrap_servers']}  ({kafka_kind})")
    if "principals" in m["kafka"]:
        print(
            f"           {m['kafka']['security_protocol']} {m['kafka']['sasl_mechanism']}: every client is a principal "
            "(passwords in stack.json); a department's own view:\n"
            "           python -m devstack kcat department:<code> -C -t dept.<code>.v1 -o beginning -e"
        )
    if stack.databases:
        print(f"  MongoDB  embedded SecantusDB, one per service, data in {stack.data_dir / 'mongodb'}/<service>")
        for name, uri in m["mongodb"]["uris"].items():
            print(f"    {name:<6} {uri}")
    else:
        print(f"  MongoDB  {stack.mongodb_uri}  (external)")
    for name, svc in m["services"].items():
        print(f"  {name:<8} {svc['url']}   docs {svc['docs']}")
    if "web" in m["services"]:
        print(f"  portal   {m['services']['web']['url']}/appeals/new   (companies submit and follow their appeals)")
        print(f"  workbench {m['services']['web']['url']}/workbench   (a clerk signs in with a department key)")
    if "stats" in m["services"]:
        print(f"  dashboard {m['services']['stats']['url']}/dashboard#key={m['keys']['operator']}")
    print(f"  outbox   {m['outbox']['url']}   (what notify sent; e-mail via SMTP {m['outbox']['smtp']})")
    print("\n  Demo API keys (X-Api-Key):")
    for scope, key in m["keys"].items():
        print(f"    {scope:<32} {key}")
    print(f"\n  All of this is in {stack.data_dir / 'stack.json'}. Ctrl-C stops everything.\n", flush=True)


def clear_the_way(stack: Stack) -> None:
    """Stop what a previous stack in this data folder left running; refuse if a live stack or a stranger is there."""
    left = supervisor.still_running(stack.data_dir)
    boss = next((r for r in left if r.name == supervisor.SUPERVISOR), None)
    if boss is not None:
        sys.exit(
            f"A stack is already running from {stack.data_dir} (pid {boss.pid}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(boss.started))}). Use it, or stop it "
            f"first with `make stop`."
        )
    if left:
        print(
            f"A previous stack in {stack.data_dir} left {len(left)} of its processes running: "
            + ", ".join(f"{r.name} (pid {r.pid})" for r in left)
            + ". Stopping them.",
            flush=True,
        )
        supervisor.stop_processes(left)
    taken = []
    for what, port in stack.ports().items():
        if port_in_use(port):
            setting = PORT_SETTINGS.get(what, "MONGODB_PORT")
            taken.append(
                f"  port {port} ({what}) is held by {supervisor.describe(supervisor.listener(port) or 0)}; "
                f"stop that, or move the stack's port with {setting}=<port>"
            )
    if taken:
        sys.exit(
            "The stack did not start: ports it needs are taken by processes it did not start.\n" + "\n".join(taken)
        )


def run(args: argparse.Namespace) -> None:
    if sys.stdout.isatty():
        # A person reads the services' lines here: readable ones, unless asked otherwise (JSON stays in files).
        os.environ.setdefault("LOG_FORMAT", "console")
    stack = Stack(
        data_dir=Path(args.data_dir),
        config_dir=Path(args.config_dir),
        kafka_port=int(os.environ.get("KAFKA_PORT", "9092")),
        kafka_controller_port=int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
        mongo_port=int(os.environ.get("MONGODB_PORT", "27017")),
        kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        mongodb_uri=os.environ.get("MONGODB_URI") or None,
        service_ports={
            name: int(os.environ[f"{name.upper()}_PORT"])
            for name, _ in ALL_SERVICES
            if f"{name.upper()}_PORT" in os.environ
        },
        smtp_port=int(os.environ.get("SMTP_PORT", "8025")),
        outbox_port=int(os.environ.get("OUTBOX_PORT", "8006")),
        log_stream=sys.stdout,
        say=lambda line: print(f"==> {line}", flush=True),
    )
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    # A closed terminal (SIGHUP) stops the stack as Ctrl-C does; a SIGKILL reaches every process through
    # the parent-death signal each was started with (devstack/servers.py).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    clear_the_way(stack)
    stack.remember(supervisor.SUPERVISOR, os.getpid())
    try:
        stack.start()
        _print_banner(stack)
        while not stopping:
            for name, proc in stack.children().items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping the stack", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        print("\nstopping...", flush=True)
        stack.stop()
        print("stopped", flush=True)


def stop(args: argparse.Namespace) -> None:
    """Stop the stack running from the data folder (started in the background), and whatever it left."""
    data_dir = Path(args.data_dir)
    left = supervisor.still_running(data_dir)
    if not left:
        print(f"no stack is running from {data_dir}")
        return
    boss = [r for r in left if r.name == supervisor.SUPERVISOR]
    if boss:
        print(f"stopping the stack (pid {boss[0].pid})...", flush=True)
        supervisor.stop_processes(boss, timeout=120)  # it stops its own processes first
    rest = supervisor.still_running(data_dir)
    if rest:
        print("stopping what it left: " + ", ".join(f"{r.name} (pid {r.pid})" for r in rest), flush=True)
        supervisor.stop_processes(rest)
    supervisor.write(data_dir, [])
    print("stopped")


def status(args: argparse.Namespace) -> None:
    """What runs from the data folder, and where: each process the stack recorded, and whether each service
    answers its readiness probe. Exits 1 when no stack runs or a service does not answer."""
    data_dir = Path(args.data_dir)
    alive = {r.name: r for r in supervisor.still_running(data_dir)}
    manifest_path = data_dir / "stack.json"
    if not alive or not manifest_path.exists():
        print(f"no stack is running from {data_dir} (start one with `make run`)")
        sys.exit(1)
    manifest = json.loads(manifest_path.read_text())
    boss = alive.get(supervisor.SUPERVISOR)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(boss.started)) if boss else "?"
    print(f"stack in {data_dir}, started {since}" + (f" (pid {boss.pid})" if boss else ", its supervisor gone"))
    kafka = manifest["kafka"]
    print(f"  kafka     {kafka['bootstrap_servers']}  {_state(alive.get('kafka'), embedded=kafka['embedded'])}")
    failing = False
    for name, service in manifest["services"].items():
        try:
            ready = httpx.get(service["url"] + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            ready = False
        failing |= not ready
        state = "ready" if ready else "NOT READY" if name in alive else "NOT RUNNING"
        pid = f"pid {alive[name].pid}" if name in alive else ""
        print(f"  {name:<9} {service['url']:<24} {state:<11} {pid}")
    print(f"  outbox    {manifest['outbox']['url']}")
    sys.exit(1 if failing else 0)


def _state(record: supervisor.Recorded | None, *, embedded: bool) -> str:
    if not embedded:
        return "(external)"
    return f"running, pid {record.pid}" if record else "NOT RUNNING"


def demo(args: argparse.Namespace) -> None:
    from devstack.demo import Scenario
    from devstack.demo import main as play

    play(
        Path(args.data_dir) / "stack.json",
        Scenario(
            appeals=args.appeals, financing=args.financing, micro=args.micro, small=args.small, resolved=args.resolved
        ),
    )


def keys(args: argparse.Namespace) -> None:
    from devstack.keys import provision
    from libs.config import load_city, load_registry_config

    data_dir = Path(args.data_dir)
    city = load_city(PROJECT_ROOT / "config")
    provision(city, data_dir, [entry.id for entry in load_registry_config(PROJECT_ROOT / "config", city).liaisons])
    print(
        f"keys: {data_dir / 'demo-keys.json'} (plain, hand each to its client)\n"
        f"hashed key file for the services: {data_dir / 'api-keys.json'}"
    )


def kafka_credentials(args: argparse.Namespace) -> None:
    """Every Kafka user's password (new ones for users without one), and the variables compose reads them from."""
    from libs.config import load_city

    stack = Stack(data_dir=Path(args.data_dir))
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    stack.load_kafka_passwords([d.code for d in load_city(PROJECT_ROOT / "config").departments])
    variables = {
        "KAFKA_CREDENTIALS_FILE": str(stack.credentials_file),
        **{
            f"KAFKA_{user.upper()}_PASSWORD": password
            for user, password in stack.kafka_passwords.items()
            if not user.startswith("dept-")
        },
    }
    env = stack.data_dir / "kafka.env"
    env.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    env.chmod(0o600)
    print(
        f"Kafka users and passwords: {stack.credentials_file} (for `python -m libs.kafka principals`)\n"
        f"their variables for compose: {env} (`set -a; . {env}; set +a` before `docker compose up`)"
    )


def kcat(args: argparse.Namespace) -> None:
    from devstack.kcat import main as run_kcat

    run_kcat(args.rest, Path(args.data_dir) / "stack.json")


def apidocs(args: argparse.Namespace) -> None:
    from devstack.apidocs import stale_documents, write_documents

    out = Path(args.out)
    if args.check:
        stale = stale_documents(out)
        for path in stale:
            print(f"out of date: {path} (run `python -m devstack apidocs`)", file=sys.stderr)
        if stale:
            sys.exit(1)
        print(f"API documents in {out} are up to date")
        return
    for path in write_documents(out):
        print(f"wrote {path}")


def prometheus_rule(args: argparse.Namespace) -> None:
    from devstack import monitoring

    current = monitoring.write(check=args.check)
    if args.check and not current:
        print(f"out of date: {monitoring.PROMETHEUS_RULE} (run `python -m devstack prometheus-rule`)", file=sys.stderr)
        sys.exit(1)
    print(f"{monitoring.PROMETHEUS_RULE} is {'up to date' if current else 'written'}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument("--data-dir", default=str(PROJECT_ROOT / ".data"))
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("run", help="start the embedded stack and every service")
    start.add_argument(
        "--config-dir",
        default=str(PROJECT_ROOT / "config"),
        help="departments, rules, SLA profiles and calendars to load (default: config/)",
    )
    start.set_defaults(func=run)
    sub.add_parser("stop", help="stop a stack started in the background from the same data folder").set_defaults(
        func=stop
    )
    sub.add_parser(
        "status", help="what the stack of the data folder runs, and where; exit 1 if anything is down"
    ).set_defaults(func=status)
    play = sub.add_parser(
        "demo", help="play the Shenzhen seed against the running stack; print the report of its own appeals"
    )
    for name, default in (("appeals", 463), ("financing", 172), ("micro", 330), ("small", 96), ("resolved", 100)):
        play.add_argument(f"--{name}", type=int, default=default)
    play.set_defaults(func=demo)
    sub.add_parser("keys", help="write one API key per scope and the hashed key file (API_KEYS_FILE)").set_defaults(
        func=keys
    )
    sub.add_parser(
        "kafka-credentials", help="write every Kafka user's password and the variables compose takes them from"
    ).set_defaults(func=kafka_credentials)
    reader = sub.add_parser(
        "kcat", help="run kcat as a principal of the running stack's Kafka: admin, or department:<code>"
    )
    reader.add_argument("rest", nargs=argparse.REMAINDER, help="the principal, then kcat's own arguments")
    reader.set_defaults(func=kcat)
    docs = sub.add_parser("apidocs", help="write every service's OpenAPI and AsyncAPI document")
    docs.add_argument("--out", default=str(PROJECT_ROOT / "docs" / "api"))
    docs.add_argument("--check", action="store_true", help="write nothing; exit 1 naming every stale document")
    docs.set_defaults(func=apidocs)
    rule = sub.add_parser("prometheus-rule", help="write deploy/k8s/monitoring's PrometheusRule from the rule files")
    rule.add_argument("--check", action="store_true", help="write nothing; exit 1 if the committed one is stale")
    rule.set_defaults(func=prometheus_rule)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
