"""Every Grafana panel's PromQL, evaluated by a real Prometheus scraping the running stack after traffic.

No Grafana server can run here, so the dashboards are checked as JSON and their
queries are run as Grafana would run them: `$department` becomes a department
with traffic. The SLA profile is test_fast (targets of seconds) so warnings,
breaches and fire lag have data within the test.
"""

import asyncio
import json
import shutil
import time

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from devstack import servers
from libs.settings import PROJECT_ROOT
from tests.helpers import appeal_body, fresh_stack

DASHBOARDS = PROJECT_ROOT / "deploy" / "grafana" / "dashboards"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "dash-stack", fast_sla=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    """Prometheus scraping every service each second, with the platform's alert rules loaded."""
    work = tmp_path_factory.mktemp("prometheus")
    shutil.copytree(PROJECT_ROOT / "deploy" / "prometheus" / "rules", work / "rules")
    jobs = [
        {"targets": [stack.url(name).removeprefix("http://")], "labels": {"service": name}}
        for name in ("intake", "router", "sla", "notify", "stats")
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
    yield f"http://127.0.0.1:{port}"
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
    """Appeals over every channel and three categories; some resolved, one declined; one unreadable message."""
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
    r = act(stack, declined, lead_of(stack, declined), action="decline", guidance="Ask the district office")
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
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "prometheus", (path.name, panel["title"])
    department = json.loads((DASHBOARDS / "department.json").read_text())
    assert [v["name"] for v in department["templating"]["list"]] == ["department"]
    assert all("$department" in t["expr"] for p in panels(department) for t in p["targets"])


def test_every_panel_query_returns_data_from_a_live_prometheus(stack, prometheus, traffic):
    department = max(set(traffic.values()), key=list(traffic.values()).count)
    expressions = {
        (path.stem, panel["title"], target["expr"].replace("$department", department))
        for path in sorted(DASHBOARDS.glob("*.json"))
        for panel in panels(json.loads(path.read_text()))
        for target in panel["targets"]
    }
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
    assert {
        "AppealsServiceDown",
        "DepartmentBreachRateHigh",
        "ConsumerLagGrowing",
        "DeadLettersReceived",
        "SlaFireLagHigh",
    } <= names
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"]), groups
