"""Each service listens in its container where compose and Kubernetes probe it, send it traffic and scrape it.

The listening address is worked out as the service works it out: its settings class reads its `<PREFIX>_HTTP_HOST`
and `<PREFIX>_HTTP_PORT` from the container's environment (the Dockerfile's `ENV`, then compose's `environment` or
the Deployment's `env`), with the class's defaults for the rest, and `python -m services.<name>` takes no arguments.
Against it: compose's health check, published ports and Prometheus targets (deploy/prometheus/prometheus.yml), the
Dockerfile's HEALTHCHECK and EXPOSE, and in both rendered kustomize overlays the container port, the probes, the
Service's targetPort and the scrape annotations. The paths probed and scraped must be routes the service serves.
"""

import functools
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from libs.settings import PROJECT_ROOT, ServiceSettings
from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.router.settings import RouterSettings
from services.sla.settings import SlaSettings
from services.stats.settings import StatsSettings
from services.web.settings import WebSettings
from tests.deploy.test_k8s import of_kind, render

SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "router": RouterSettings,
    "sla": SlaSettings,
    "notify": NotifySettings,
    "stats": StatsSettings,
    "web": WebSettings,
}
ANY_ADDRESS = ("0.0.0.0", "::")  # a container must listen beyond its own loopback
LOCAL = ("127.0.0.1", "localhost", "::1")
URL = re.compile(r"https?://[^\s'\"]+")


@functools.cache
def dockerfile_env() -> dict[str, str]:
    """The image's `ENV`, continuation lines joined."""
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def dockerfile_instruction(name: str) -> str:
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return line[len(name) + 1 :]


def listening(name: str, container_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """(host, port) the service's settings give in a container with this environment, the image's under it."""
    cls = SETTINGS[name]
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    env = {**dockerfile_env(), **container_env}
    with monkeypatch.context() as patch:
        for variable in ("HTTP_HOST", "HTTP_PORT"):
            patch.delenv(prefix + variable, raising=False)
            if prefix + variable in env:
                patch.setenv(prefix + variable, env[prefix + variable])
        settings = cls(environment="dev")
    return settings.http_host, settings.http_port


@functools.cache
def served_paths(name: str) -> frozenset[str]:
    """The paths the service's app routes: what a probe or a scrape may ask for."""
    import importlib

    app = importlib.import_module(f"services.{name}.app").create_app(SETTINGS[name]())
    return frozenset(getattr(route, "path", "") for route in app.routes)


def url_parts(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, f"{url} names no host and port"
    return parts.hostname, parts.port, parts.path


@functools.cache
def compose_file() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {k: str(v) for k, v in environment.items()}


def relabelled(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str]:
    """`labels` after Prometheus' `replace` relabelling rules (the only action the scrape configs here use)."""
    labels = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace", rule
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match:
            labels[rule["target_label"]] = match.expand(rule.get("replacement", "$1").replace("$", "\\"))
    return labels


@functools.cache
def scrape_targets() -> dict[str, list[tuple[str, str]]]:
    """Prometheus' targets by the `service` label its relabelling gives them: (host:port, metrics path). A DNS name
    stands for every replica its A records list."""
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets: dict[str, list[tuple[str, str]]] = {}
    for job in config["scrape_configs"]:
        found = [
            ({"__address__": target, **group.get("labels", {})}, target)
            for group in job.get("static_configs", [])
            for target in group["targets"]
        ] + [
            ({"__address__": f"{name}:{sd['port']}", "__meta_dns_name": name}, f"{name}:{sd['port']}")
            for sd in job.get("dns_sd_configs", [])
            for name in sd["names"]
        ]
        for labels, target in found:
            service = relabelled(labels, job.get("relabel_configs", [])).get("service", "")
            targets.setdefault(service, []).append((target, job.get("metrics_path", "/metrics")))
    return targets


@pytest.mark.parametrize("name", SETTINGS)
def test_compose_probes_publishes_and_scrapes_each_service_where_it_listens(name, monkeypatch):
    services = compose_file()["services"]
    service = services[name]
    assert service["command"] == ["python", "-m", f"services.{name}"], "no arguments: the settings decide"
    host, port = listening(name, compose_env(service), monkeypatch)
    assert host in ANY_ADDRESS, f"{name} listens on {host}, unreachable from outside its container"

    (probe_url,) = URL.findall(" ".join(service["healthcheck"]["test"]))
    probe_host, probe_port, probe_path = url_parts(probe_url)
    assert probe_host in LOCAL and probe_port == port, f"{name}: probed on {probe_port}, listens on {port}"
    assert probe_path in served_paths(name)

    published = [str(p) for p in service.get("ports", [])]
    assert published, f"{name} publishes no port"
    for mapping in published:
        assert int(mapping.rsplit(":", 1)[-1].split("/")[0]) == port, f"{name}: {mapping} misses port {port}"

    targets = scrape_targets().get(name)
    assert targets, f"compose's Prometheus does not scrape {name}"
    for target, path in targets:
        assert target == f"{name}:{port}", f"{name} is scraped at {target}, listens on {port}"
        assert path in served_paths(name)
    mounted = [v for v in services["prometheus"]["volumes"] if v.startswith("./deploy/prometheus:")]
    assert mounted == ["./deploy/prometheus:/etc/prometheus:ro"], "compose's Prometheus reads that file"


def test_compose_services_call_each_other_where_they_listen(monkeypatch):
    services = compose_file()["services"]
    called = 0
    for service in services.values():
        for value in compose_env(service).values():
            for url in URL.findall(value):
                target = urlsplit(url)
                if target.hostname in SETTINGS:
                    called += 1
                    _, port = listening(target.hostname, compose_env(services[target.hostname]), monkeypatch)
                    assert target.port == port, f"{url}: {target.hostname} listens on {port}"
    assert called >= 2, "web calls intake and router"


@pytest.mark.parametrize("name", SETTINGS)
def test_the_images_health_check_asks_where_each_service_listens(name, monkeypatch):
    host, port = listening(name, {}, monkeypatch)
    assert host in ANY_ADDRESS, f"the image makes {name} listen on {host}"
    (url,) = URL.findall(dockerfile_instruction("HEALTHCHECK"))
    probe_host, probe_port, probe_path = url_parts(url)
    assert (probe_host in LOCAL, probe_port) == (True, port) and probe_path in served_paths(name)
    assert dockerfile_instruction("EXPOSE").split() == [str(port)]


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A port as a probe or a Service names it (a number or the container port's name) as a number."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
@pytest.mark.parametrize("name", SETTINGS)
def test_kubernetes_probes_serves_and_scrapes_each_service_where_it_listens(overlay, name, monkeypatch):
    docs = render(overlay)
    deployment, service = of_kind(docs, "Deployment")[name], of_kind(docs, "Service")[name]
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["command"] == ["python", "-m", f"services.{name}"] and not container.get("args")
    env = container.get("env", [])
    listen_vars = [v for v in env if v["name"].endswith(("_HTTP_HOST", "_HTTP_PORT"))]
    assert all("value" in v for v in listen_vars), "an address from a ConfigMap or Secret cannot be checked here"
    host, port = listening(name, {v["name"]: v["value"] for v in listen_vars}, monkeypatch)
    assert host in ANY_ADDRESS, f"{name} listens on {host}, unreachable from the kubelet and the Service"

    assert [p["containerPort"] for p in container["ports"]] == [port]
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container[kind]["httpGet"]
        assert container_port(container, probe["port"]) == port, f"{name}'s {kind} misses port {port}"
        assert probe["path"] in served_paths(name)

    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    for exposed in service["spec"]["ports"]:
        assert container_port(container, exposed["targetPort"]) == port, f"{name}'s Service sends elsewhere"

    annotations = template["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true", f"{name} is not scraped"
    assert int(annotations["prometheus.io/port"]) == port
    assert annotations.get("prometheus.io/path", "/metrics") in served_paths(name)


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_kubernetes_services_call_each_other_through_the_services(overlay):
    docs = render(overlay)
    services = of_kind(docs, "Service")
    called = 0
    for deployment in of_kind(docs, "Deployment").values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for var in container.get("env", []):
            for url in URL.findall(var.get("value", "")):
                target = urlsplit(url)
                if target.hostname in SETTINGS:
                    called += 1
                    ports = [p["port"] for p in services[target.hostname]["spec"]["ports"]]
                    assert (target.port or 80) in ports, f"{url}: the Service {target.hostname} has {ports}"
    assert called >= 2, "web calls intake and router"


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_the_pod_monitor_scrapes_every_service_on_its_metrics_port_with_the_composes_labels(overlay, monkeypatch):
    """The Operator's PodMonitor selects each service's pods, on the container port the service listens on, at a
    path it serves, and labels them `service` as compose's Prometheus does (the rules and panels read that)."""
    (monitor,) = of_kind(render("monitoring"), "PodMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    rules = [
        {
            "source_labels": r["sourceLabels"],
            "target_label": r["targetLabel"],
            **({"regex": r["regex"]} if "regex" in r else {}),
        }
        for r in endpoint["relabelings"]
    ]
    compose = {service: [t for t, _ in targets] for service, targets in scrape_targets().items()}
    for name in SETTINGS:
        template = of_kind(render(overlay), "Deployment")[name]["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"the PodMonitor does not select {name}'s pods"
        (container,) = template["spec"]["containers"]
        env = {
            v["name"]: v["value"] for v in container.get("env", []) if v["name"].endswith(("_HTTP_HOST", "_HTTP_PORT"))
        }
        _, port = listening(name, env, monkeypatch)
        assert container_port(container, endpoint["port"]) == port, f"{name} is scraped off its port"
        assert endpoint["path"] in served_paths(name)
        meta = {
            f"__meta_kubernetes_pod_label_{k.replace('.', '_').replace('/', '_').replace('-', '_')}": v
            for k, v in labels.items()
        }
        assert relabelled({**meta, "__meta_kubernetes_pod_name": f"{name}-0"}, rules)["service"] == name
        assert compose[name], f"compose's Prometheus gives {name} the same service label"
