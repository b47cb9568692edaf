"""Every Grafana panel's PromQL, evaluated by a real Prometheus scraping the running stack after traffic.

No Grafana server can run here, so the dashboards are checked as JSON and their
queries are run as Grafana would run them: `$department` becomes a department
with traffic, `$service` and `$instance` their "All" (`.*`). Prometheus scrapes
every service as the compose stack's and the Operator's do (OpenMetrics, the
`service` label), with the recording and alert rules loaded. The SLA profile
is test_fast (targets of seconds), the urging ladder's levels come seconds after
a breach and a co-handler owes its part six seconds after it joins, so warnings,
breaches, urgings, contributions and fire lag have data within the test.
"""

import asyncio
import json
import re
import shutil
import time

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from devstack import servers
from libs.settings import PROJECT_ROOT
from tests.helpers import appeal_body, eventually, fresh_stack

DASHBOARDS = PROJECT_ROOT / "deploy" / "grafana" / "dashboards"
pytestmark = pytest.mark.timeout(600)


def fast_supervision(config) -> None:
    """The urging ladder in seconds: level 2 three seconds after a breach, level 3 six; a co-handler's contribution
    due six seconds after it joins."""
    path = config / "supervision.yaml"
    supervision = yaml.safe_load(path.read_text())
    for rung, after in zip(supervision["urging"]["levels"], ("3s", "6s"), strict=True):
        rung["after_breach"] = after
    supervision["cohandling"]["contribution"] = "6s"
    path.write_text(yaml.safe_dump(supervision, allow_unicode=True))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "dash-stack", fast_sla=True, configure=fast_supervision)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    """Prometheus scraping every service each second, with the platform's recording and alert rules loaded."""
    work = tmp_path_factory.mktemp("prometheus")
    shutil.copytree(PROJECT_ROOT / "deploy" / "prometheus" / "rules", work / "rules")
    jobs = [
        {"targets": [stack.url(name).removeprefix("http://")], "labels": {"service": name}}
        for name in ("intake", "router", "sla", "notify", "stats", "web")
    ]
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["rules/*.yml"],
                "scrape_configs": [{"job_name": "appeals", "static_configs": jobs}],
            }
        )
    )
    port = servers.free_port()
    proc = servers.start_prometheus(port, work / "prometheus.yml", work / "data", work / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    # Every service scraped, stats' counters at 0 included, before any traffic: a counter Prometheus first sees at 1
    # has no increase(), and a slow start (a loaded machine) left the send-back rate without the assignments it
    # divides by.
    eventually(
        lambda: len(query(url, "up == 1")) == 6 and query(url, "appeals_assigned_total"),
        "Prometheus's first scrape of every service",
    )
    yield url
    servers.stop(proc)


def act(stack, appeal_id, department, **body):
    return httpx.post(
        stack.url("router") + f"/v1/appeals/{appeal_id}/actions",
        json=body,
        headers={"X-Api-Key": stack.keys[f"department:{department}"]},
        timeout=30,
    )


def lead_of(stack, appeal_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers={"X-Api-Key": stack.keys["operator"]})
        if r.status_code == 200 and r.json().get("lead"):
            return r.json()["lead"]
        time.sleep(0.2)
    raise AssertionError(f"{appeal_id} was not routed")


@pytest.fixture(scope="module")
def traffic(stack, prometheus):
    """Appeals over every channel and three categories; some resolved, one sent back and the send-back overruled,
    transfers asked of the office (one granted, one refused), one urged by hand, one given two co-handlers (one
    contributes in time, the other never: its contribution clock breaches); one unreadable message."""
    channels = ["wechat", "web", "app", "hotline_12345", "kiosk"]
    categories = [
        ("financing", "Loan falls due; we ask for deferred repayment."),
        ("tax", "As a small-scale taxpayer, can we defer the VAT filing?"),
        ("labour", "Our workers cannot return after the holiday; we need staff."),
    ]

    def submit(n: int) -> str:
        category, text = categories[n % 3]
        r = httpx.post(
            stack.url("intake") + "/v1/appeals",
            json=appeal_body(category=category, description=text),
            headers={"X-Api-Key": stack.keys[f"channel:{channels[n % 5]}"]},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        return r.json()["appeal_id"]

    ids = [submit(n) for n in range(24)]
    leads = {appeal_id: lead_of(stack, appeal_id) for appeal_id in ids}
    for appeal_id in ids[:10]:
        assert act(stack, appeal_id, leads[appeal_id], action="accept").status_code == 200
        assert act(stack, appeal_id, leads[appeal_id], action="resolve", resolution="Settled").status_code == 200
    # A lead declines only while its scope clock runs (4 s under test_fast): this one as soon as it is routed.
    declined = submit(24)
    declining = lead_of(stack, declined)
    r = act(stack, declined, declining, action="decline", guidance="Ask the district office")
    assert r.status_code == 200, r.text
    # The coordinating office's governance: the send-back overruled, two transfers asked (one granted, one
    # refused), an appeal urged by hand.
    office = "coord"
    deadline = time.monotonic() + 30
    while lead_of(stack, declined) == declining and time.monotonic() < deadline:
        time.sleep(0.2)
    r = act(stack, declined, office, action="overrule_decline", note="Within your remit")
    assert r.status_code == 200, r.text
    # Open appeals a department leads: the office neither urges nor is asked about one it leads itself.
    granted, refused, urged, cohandled = [appeal_id for appeal_id in ids[10:] if leads[appeal_id] != office][:4]
    for appeal_id, answer in ((granted, "grant_transfer"), (refused, "refuse_transfer")):
        lead = leads[appeal_id]
        target = "tax" if lead != "tax" else "finance"
        r = act(stack, appeal_id, lead, action="request_transfer", reason="Not ours", target_department=target)
        assert r.status_code == 200, r.text
        r = act(stack, appeal_id, office, action=answer, note="Reviewed")
        assert r.status_code == 200, r.text
    r = act(stack, urged, office, action="urge", note="Answer today")
    assert r.status_code == 200, r.text
    # Two co-handlers join (municipal departments no rule of this traffic's appeals brings): one gives its part at
    # once, the other's clock breaches six seconds on.
    prompt, missing = "insurance", "justice"
    for cohandler in (prompt, missing):
        r = act(stack, cohandled, leads[cohandled], action="add_cohandler", target_department=cohandler)
        assert r.status_code == 200, r.text
    r = act(stack, cohandled, prompt, action="contribute", note="The insurer's view")
    assert r.status_code == 200, r.text

    async def unreadable():
        producer = AIOKafkaProducer(**stack.kafka_access().client_options())
        await producer.start()
        try:
            await producer.send_and_wait("appeals.lifecycle.v1", b"{not json", key=b"x")
        finally:
            await producer.stop()

    asyncio.run(unreadable())
    return leads


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p.get("targets")]


def query(prometheus: str, expr: str) -> list:
    r = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "success", f"{expr}: {r.text}"
    return r.json()["data"]["result"]


def test_the_dashboards_are_provisionable_json():
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"] and panels(board), path.name
        # The data source is the dashboard's first variable: the compose stack's Prometheus by default, any other
        # one (the Prometheus Operator's) by choice, never a uid only compose provisions.
        assert board["templating"]["list"][0] | {"current": {}} == {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        }, path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", (path.name, panel["title"])
    department = json.loads((DASHBOARDS / "department.json").read_text())
    assert [v["name"] for v in department["templating"]["list"]] == ["datasource", "department"]
    assert all("$department" in t["expr"] for p in panels(department) for t in p["targets"])
    services = json.loads((DASHBOARDS / "services.json").read_text())
    assert [v["name"] for v in services["templating"]["list"]] == ["datasource", "service", "instance"]
    assert all(v["allValue"] == ".*" and v["multi"] for v in services["templating"]["list"][1:])
    assert all(
        "$service" in t["expr"] or "notifications_total" in t["expr"] for p in panels(services) for t in p["targets"]
    )
    titles = {p["title"] for p in panels(services)}
    runbook = (PROJECT_ROOT / "docs" / "runbook.md").read_text()
    named = {" ".join(n.split()) for n in re.findall(r"\*([A-Z][^*]+)\*", runbook)} - {"Appeals services"}
    assert named <= titles, f"the runbook names panels the dashboard does not have: {named - titles}"


def test_every_panel_query_returns_data_from_a_live_prometheus(stack, prometheus, traffic):
    department = max(set(traffic.values()), key=list(traffic.values()).count)
    variables = {"$department": department, "$service": ".*", "$instance": ".*"}

    def as_grafana_runs(expr: str) -> str:
        for name, value in variables.items():
            expr = expr.replace(name, value)
        return expr

    expressions = {
        (path.stem, panel["title"], as_grafana_runs(target["expr"]))
        for path in sorted(DASHBOARDS.glob("*.json"))
        for panel in panels(json.loads(path.read_text()))
        for target in panel["targets"]
    }
    assert len([e for e in expressions if e[0] == "services"]) >= 15
    deadline = time.monotonic() + 180
    empty = expressions
    while empty and time.monotonic() < deadline:
        empty = {e for e in empty if not query(prometheus, e[2])}
        if empty:
            time.sleep(3)
    assert not empty, "panels without data:\n" + "\n".join(f"{b}: {t}: {e}" for b, t, e in sorted(empty))


def test_the_alert_rules_load_in_the_live_prometheus(prometheus):
    groups = httpx.get(prometheus + "/api/v1/rules", timeout=30).json()["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    rules = [
        rule
        for path in sorted((PROJECT_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    assert names == {rule.get("alert") or rule["record"] for rule in rules}
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"]), groups


def test_the_scrapes_are_openmetrics_and_the_latencies_carry_trace_ids_as_exemplars(stack, prometheus, traffic):
    targets = httpx.get(prometheus + "/api/v1/targets", timeout=30).json()["data"]["activeTargets"]
    assert {t["labels"]["service"] for t in targets if t["health"] == "up"} == {
        "intake",
        "router",
        "sla",
        "notify",
        "stats",
        "web",
    }
    for metric in ("http_request_duration_seconds_bucket", "appeals_handler_duration_seconds_bucket"):
        deadline, found = time.monotonic() + 60, []
        while not found and time.monotonic() < deadline:
            now = time.time()
            r = httpx.get(
                prometheus + "/api/v1/query_exemplars",
                params={"query": metric, "start": now - 600, "end": now},
                timeout=30,
            )
            found = [e for series in r.json()["data"] for e in series["exemplars"]]
            time.sleep(0 if found else 2)
        assert found, f"no exemplar on {metric}"
        assert all(re.fullmatch(r"[0-9a-f]{32}", e["labels"]["trace_id"]) for e in found), found[:3]


def test_the_offices_governance_reaches_prometheus_from_every_service_that_records_it(stack, prometheus, traffic):
    """Router's send-back, overrule, transfers and urging by hand, sla's urging ladder and contribution clocks:
    through stats, each once."""
    wanted = {
        "send_backs": 1,
        "send_backs_overruled": 1,
        "transfers_requested": 2,
        "transfers_granted": 1,
        "transfers_refused": 1,
        "urgings_by_hand": 1,
        "contributions_on_time": 1,
        "contributions_late": 1,
    }
    deadline = time.monotonic() + 120
    figures: dict[str, float] = {}
    while time.monotonic() < deadline:
        rows = query(prometheus, "sum by (figure) (appeals_supervision_total)")
        figures = {row["metric"]["figure"]: float(row["value"][1]) for row in rows}
        if all(figures.get(f"urgings_level_{n}") for n in (1, 2, 3)) and all(
            figures.get(f) == n for f, n in wanted.items()
        ):
            break
        time.sleep(2)
    assert {f: figures.get(f) for f in wanted} == wanted, figures
    assert all(figures.get(f"urgings_level_{n}") for n in (1, 2, 3)), figures
    assert figures["urgings_level_2"] <= figures["urgings_level_1"] and figures["chosen_declines"] == 0
