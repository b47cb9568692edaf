"""`make demo` says in a sentence, within seconds, what keeps it from playing, and reports its own run alone."""

import json
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from tqdm import tqdm

from devstack import demo, run_report
from devstack.demo import Scenario, appeal_bodies, main
from devstack.servers import free_port
from libs.config import load_city
from libs.settings import PROJECT_ROOT
from tests.factories import APPEAL_ID, appeal_view, at, deadline
from tests.helpers import valid_uscc


def test_a_demo_against_a_stack_that_does_not_answer_stops_at_once_saying_which(tmp_path):
    manifest = tmp_path / "stack.json"
    services = {name: {"url": f"http://127.0.0.1:{free_port()}"} for name in ("intake", "router")}
    manifest.write_text(json.dumps({"services": services, "keys": {}}))
    began = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        main(manifest, Scenario(appeals=2, financing=1, micro=1, small=1, resolved=1))
    assert time.monotonic() - began < 15
    assert str(stopped.value).startswith("the demo stopped: intake, router of the stack in stack.json do not answer")


def test_each_run_s_appeals_are_its_own():
    first, second = appeal_bodies(Scenario(), "1"), appeal_bodies(Scenario(), "2")
    assert {b["title"] for _, b in first}.isdisjoint({b["title"] for _, b in second})
    assert [b["enterprise"]["uscc"] for _, b in first] == [b["enterprise"]["uscc"] for _, b in second]


# The report of the run: stats' sentences and tables, counted from the run's own appeals as router shows them.

CITY = load_city(PROJECT_ROOT / "config")
TZ = ZoneInfo("Asia/Shanghai")
RUN_START, RUN_END = datetime(2026, 3, 4, 1, 2, tzinfo=UTC), datetime(2026, 3, 4, 1, 9, tzinfo=UTC)
RESOLVED = [
    {"type": "appeal.routed.v1", "status": "routed", "time": at(-2), "department": "nanshan-finance"},
    {"type": "appeal.accepted.v1", "status": "accepted", "time": at(-1), "department": "nanshan-finance"},
    {"type": "appeal.resolved.v1", "status": "resolved", "time": at(0), "department": "nanshan-finance"},
]


def run_appeals() -> list[dict]:
    """Four appeals of three companies: one resolved, one with a breached clock, one running past due, one
    rejected."""
    one, other, third = ({"uscc": valid_uscc(n), "name": f"Company {n}", "employees": 9} for n in (1, 2, 3))
    return [
        appeal_view(
            appeal_id="a1",
            status="resolved",
            lead="nanshan-finance",
            category="financing",
            size_band="micro",
            channel="wechat",
            enterprise=one,
            timeline=RESOLVED,
            deadlines=[deadline("resolution", "met", None, department="nanshan-finance")],
        ),
        appeal_view(
            appeal_id="a2",
            status="routed",
            lead="futian-finance",
            category="financing",
            size_band="micro",
            district="futian",
            enterprise=other,
            timeline=[],
            deadlines=[deadline("scope", "breached", -1, department="futian-finance")],
        ),
        appeal_view(appeal_id="a3", enterprise=one, deadlines=[deadline("resolution", "running", -2)]),
        appeal_view(
            appeal_id="a4",
            status="rejected",
            lead=None,
            category="tax",
            size_band="medium",
            enterprise=third,
            timeline=[],
            deadlines=[],
        ),
    ]


def test_the_run_report_says_the_daily_report_s_sentences_of_the_run_s_appeals():
    data = run_report.run_report(CITY, run_appeals(), RUN_START, RUN_END, TZ)
    assert data["text"] == (
        "Between 09:02 Wednesday 4 March 2026 and 09:09 Wednesday 4 March 2026 the platform received 4 appeals, "
        "1 of which has been resolved. 2 were about financing (50%). 2 came from companies with fewer than 30 "
        "employees, 1 from companies with 30 to 100 employees and 1 from companies with 101 to 300 employees. "
        "The 4 appeals were put forward by 3 companies: 1 of them has got an answer from a department, and 0 have "
        "had every appeal solved. Late on their deadlines: Futian District Financial Services Office (1), Nanshan "
        "District Human Resources Bureau (1)."
    )
    assert [(r["department"], r["routed"], r["resolved"], r["breached"]) for r in data["departments"]] == [
        ("futian-finance", 1, 0, 1),
        ("nanshan-finance", 1, 1, 0),
        ("nanshan-hrss", 1, 0, 1),
    ], "each department's appeals led, resolved and clocks late; the rejected appeal is nobody's"
    assert {c["key"]: c["count"] for c in data["channels"]} == {"wechat": 1, "web": 3}


def test_the_run_report_in_markdown_names_the_run_and_ends_with_its_departments():
    text = run_report.to_markdown(run_report.run_report(CITY, run_appeals(), RUN_START, RUN_END, TZ), "1772586120")
    heading, blank, sentences = text.splitlines()[:3]
    assert heading == "# Demo run 1772586120, 2026-03-04 01:02 to 2026-03-04 01:09 UTC" and blank == ""
    assert sentences.startswith("Between 09:02 Wednesday 4 March 2026 and 09:09")
    assert "## Categories\n\n| | Appeals | Share |\n|---|---:|---:|\n| financing | 2 | 50% |" in text
    assert text.endswith(
        "## Departments\n\n| Department | Routed | Resolved | Breached |\n|---|---:|---:|---:|\n"
        "| Futian District Financial Services Office | 1 | 0 | 1 |\n"
        "| Nanshan District Financial Services Office | 1 | 1 | 0 |\n"
        "| Nanshan District Human Resources Bureau | 1 | 0 | 1 |\n"
    )


async def test_the_demo_stops_within_seconds_when_router_routes_none_of_its_appeals(monkeypatch):
    monkeypatch.setattr(demo, "_answering", lambda stack: None)  # every service answers its readiness probe
    stack = {"services": {"router": {"url": "http://router"}}, "keys": {"operator": "operator-key"}}
    unknown = httpx.MockTransport(lambda request: httpx.Response(404, json={"detail": "no such appeal"}))
    began = time.monotonic()
    async with httpx.AsyncClient(transport=unknown) as client:
        with pytest.raises(demo.DemoStopped) as stopped, tqdm(disable=True) as bar:
            await demo._routed(client, stack, ["a1", "a2"], bar, stall=1)
    assert time.monotonic() - began < 5
    assert str(stopped.value).startswith("router has routed none of the run's 2 waiting appeals for 1 s")


async def test_the_demo_stops_at_once_saying_why_router_rejected_an_appeal_of_its_run():
    stack = {"services": {"router": {"url": "http://router"}}, "keys": {"operator": "operator-key"}}
    rejected = appeal_view(status="rejected", reason="a duplicate of an appeal still open")
    router = httpx.MockTransport(lambda request: httpx.Response(200, json=rejected))
    async with httpx.AsyncClient(transport=router) as client:
        with pytest.raises(demo.DemoStopped) as stopped, tqdm(disable=True) as bar:
            await demo._routed(client, stack, [APPEAL_ID], bar, stall=30)
    assert str(stopped.value) == f"appeal {APPEAL_ID} was rejected: a duplicate of an appeal still open"
