"""The Kubernetes manifests render with `kubectl kustomize`, match the Kubernetes schemas and keep their promises."""

import functools
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from libs.settings import PROJECT_ROOT

K8S = PROJECT_ROOT / "deploy" / "k8s"
SERVICES = ("intake", "router", "sla", "notify", "stats", "web")
CONSUMERS = ("router", "sla", "notify")
# The oldest and newest schemas kubernetes-validate 1.37.0 ships: passing both means no field too new for
# an older cluster and no API that a newer one has removed.
SCHEMA_VERSIONS = ("1.25.0", "1.37.0")


@functools.cache
def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl renders the manifests (Debian: apt-get install kubernetes-client)"
    result = subprocess.run([kubectl, "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(params=["base", "overlays/production"])
def docs(request) -> list[dict]:
    return render(request.param)


def test_every_object_passes_strict_schema_validation(docs):
    for doc in docs:
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    assert all(d["metadata"].get("namespace") == "appeals" for d in docs if d["kind"] != "Namespace")


def test_every_deployment_is_probed_bounded_and_runs_unprivileged(docs):
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) == set(SERVICES)
    assert of_kind(docs, "ServiceAccount")["appeals"]["automountServiceAccountToken"] is False
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert pod["serviceAccountName"] == "appeals"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        tmp = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp), "the only writable path"


def test_a_service_per_deployment_selects_its_pods_on_the_http_port(docs):
    services = of_kind(docs, "Service")
    for name, deployment in of_kind(docs, "Deployment").items():
        selector = services[name]["spec"]["selector"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert services[name]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"name": "http", "containerPort": 8000} in container["ports"]


def test_secrets_come_from_the_operator_never_from_the_manifests(docs):
    assert not of_kind(docs, "Secret"), "the operator creates the Secrets (deploy/k8s/README.md)"
    config = of_kind(docs, "ConfigMap")["appeals-endpoints"]["data"]
    for deployment in of_kind(docs, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        for var in container["env"]:
            if "SECRET" in var["name"]:
                assert "secretKeyRef" in var.get("valueFrom", {}), f"{var['name']} must come from a Secret"
            if "configMapKeyRef" in var.get("valueFrom", {}):
                assert var["valueFrom"]["configMapKeyRef"]["key"] in config, f"{var['name']}: no such key"
        keys_file = next(v["value"] for v in container["env"] if v["name"].endswith("_API_KEYS_FILE"))
        mount = next(m for m in container["volumeMounts"] if keys_file.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "appeals-api-keys"


def test_production_scales_within_the_partitions_and_survives_a_drain():
    docs = render("overlays/production")
    deployments, hpas = of_kind(docs, "Deployment"), of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"intake", "web", *CONSUMERS}
    partitions = int(of_kind(docs, "ConfigMap")["appeals-endpoints"]["data"]["kafka_partitions"])
    for name in CONSUMERS:
        assert hpas[name]["spec"]["maxReplicas"] <= partitions, f"{name}: a replica past the partitions idles"
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployments[name]["spec"], "an apply would undo the autoscaler's choice"
    replicas = {
        name: hpas[name]["spec"]["minReplicas"] if name in hpas else d["spec"].get("replicas", 1)
        for name, d in deployments.items()
    }
    assert replicas == {"intake": 2, "router": 2, "sla": 2, "notify": 2, "stats": 1, "web": 2}
    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert set(pdbs) == {name for name, count in replicas.items() if count > 1}
    for name, pdb in pdbs.items():
        assert pdb["spec"]["minAvailable"] == 1
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_the_monitoring_renders_and_names_the_operators_kinds_in_the_namespace():
    docs = render("monitoring")
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        ("PodMonitor", "appeals"),
        ("PrometheusRule", "appeals"),
        ("ServiceMonitor", "kafka-exporter"),
        ("ServiceMonitor", "mongodb-exporter"),
    }
    assert all(d["apiVersion"] == "monitoring.coreos.com/v1" and d["metadata"]["namespace"] == "appeals" for d in docs)
    for monitor in of_kind(docs, "ServiceMonitor").values():
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": monitor["metadata"]["name"]}


def test_the_prometheus_rule_is_the_compose_stacks_rules_and_passes_promtool(tmp_path):
    from devstack import monitoring

    assert monitoring.write(check=True), "stale: run `python -m devstack prometheus-rule`"
    (rule,) = of_kind(render("monitoring"), "PrometheusRule").values()
    assert rule["spec"]["groups"] == monitoring.rule_groups()
    assert {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]} >= {"AppealsServiceDown", "KafkaDown"}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_collector_shown_for_kubernetes_is_valid_and_receives_what_the_services_send():
    """docs/production.md's OpenTelemetry Collector: objects valid for Kubernetes, OTLP on 4317 and 4318, batched,
    every pipeline component defined; the services' variables the ones compose sets."""
    text = (PROJECT_ROOT / "docs" / "production.md").read_text().split("## Monitoring and tracing under Kubernetes")[1]
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    objects = [doc for doc in yaml.safe_load_all(blocks[0]) if doc]
    assert {d["kind"] for d in objects} == {"ConfigMap", "Deployment", "Service"}
    for doc in objects:
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    collector = yaml.safe_load(of_kind(objects, "ConfigMap")["otel-collector"]["data"]["config.yaml"])
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert (protocols["grpc"]["endpoint"], protocols["http"]["endpoint"]) == ("0.0.0.0:4317", "0.0.0.0:4318")
    (traces,) = collector["service"]["pipelines"].values()
    assert "batch" in traces["processors"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(traces[kind]) <= set(collector[kind])
    service_ports = {p["port"] for p in of_kind(objects, "Service")["otel-collector"]["spec"]["ports"]}
    assert service_ports == {4317, 4318}
    env = {v["name"]: v["value"] for v in yaml.safe_load(blocks[1])["env"]}
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["x-otel"]
    assert env.keys() == compose.keys() and env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")
