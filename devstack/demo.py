"""`python -m devstack demo`: channel adapters and departments play the Shenzhen seed against a running stack.

The figures are the seed's (Shenzhen, 3 to 4 March 2020): 463 appeals, 172 about
financing, 330 from companies under 30 employees and 96 from 30 to 100; 100 are
resolved by their departments. It ends by printing the daily report's sentences and tables of this run's appeals
alone, as router shows them at the end (devstack/run_report.py): a second run on the same stack prints the same
figures as the first.
"""

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from devstack import run_report
from libs.calendars import load_calendars
from libs.config import load_city
from libs.kinds import Category, Channel
from libs.settings import PROJECT_ROOT
from libs.uscc import check_character

CHANNELS = [Channel.wechat, Channel.web, Channel.app, Channel.hotline_12345, Channel.kiosk]
DISTRICTS = ["nanshan", "futian", "baoan"]
TITLES = {
    Category.financing: "Working-capital loan falls due while orders are frozen",
    Category.labour: "Workers from other provinces cannot return to the plant",
    Category.tax: "Asking to defer VAT filing for the quarter",
    Category.sci_tech: "Innovation voucher for our research project",
    Category.social_security: "Deferring social insurance contributions",
    Category.export: "Export order at risk of cancellation",
    Category.tariffs: "Tariff exclusion for imported parts",
    Category.customs: "Goods held at customs clearance",
    Category.operations: "Rent relief for our workshop",
    Category.trade: "Force majeure certificate for a foreign buyer",
    Category.legal: "Contract disputes with suppliers",
    Category.insurance: "Insurance claim for spoiled stock",
    Category.materials: "Shortage of production materials",
    Category.approvals: "Approval to resume production",
    Category.other: "Question about support measures",
}


@dataclass(frozen=True)
class Scenario:
    """How many appeals of which kind; the defaults are the Shenzhen seed's figures."""

    appeals: int = 463
    financing: int = 172
    micro: int = 330
    small: int = 96
    resolved: int = 100
    seed: int = 2020


def _uscc(n: int) -> str:
    first17 = f"91440300MA{n:07d}"
    return first17 + check_character(first17)


def appeal_bodies(scenario: Scenario, run: str) -> list[tuple[Channel, dict[str, Any]]]:
    """One body per appeal with exactly the scenario's counts, in a shuffled order."""
    rng = random.Random(scenario.seed)
    others = [c for c in Category if c != Category.financing]
    categories = [Category.financing] * scenario.financing + [
        others[i % len(others)] for i in range(scenario.appeals - scenario.financing)
    ]
    rest = scenario.appeals - scenario.micro - scenario.small
    employees = (
        [rng.randint(1, 29) for _ in range(scenario.micro)]
        + [rng.randint(30, 100) for _ in range(scenario.small)]
        + [rng.choice((rng.randint(101, 300), rng.randint(301, 5000))) for _ in range(rest)]
    )
    rng.shuffle(categories)
    rng.shuffle(employees)
    bodies = []
    for i, (category, staff) in enumerate(zip(categories, employees, strict=True)):
        n = rng.randint(1, 9_999_999)
        channel = CHANNELS[i % len(CHANNELS)]
        bodies.append(
            (
                channel,
                {
                    "channel_ref": f"demo-{run}-{i}",
                    "enterprise": {
                        "uscc": _uscc(n),
                        "name": f"Shenzhen demo company {i}",
                        "employees": staff,
                        "industry": "manufacturing",
                        "district": DISTRICTS[i % len(DISTRICTS)],
                    },
                    "contact": {"name": "Demo Contact", "phone": f"1380013{i:04d}"},
                    "category": category.value,
                    # The run in the title: a company's appeal of an earlier run, still open, is not this one's
                    # duplicate (same company, category and title), so a second run is admitted like the first.
                    "title": f"{TITLES[category]} (#{i}, run {run})",
                    "description": f"{TITLES[category]}. The epidemic stopped our business; we ask for support.",
                },
            )
        )
    return bodies


async def _submit(client: httpx.AsyncClient, stack: dict, bodies, bar: tqdm) -> list[str]:
    intake = stack["services"]["intake"]["url"]
    gate = asyncio.Semaphore(16)

    async def one(channel: Channel, body: dict) -> str:
        async with gate:
            for _ in range(10):
                response = await client.post(
                    f"{intake}/v1/appeals", json=body, headers={"X-Api-Key": stack["keys"][f"channel:{channel.value}"]}
                )
                if response.status_code != 503:
                    break
                await asyncio.sleep(1)
            response.raise_for_status()
            bar.update()
            return response.json()["appeal_id"]

    return list(await asyncio.gather(*(one(c, b) for c, b in bodies)))


async def _read(client: httpx.AsyncClient, stack: dict, appeal_id: str) -> dict[str, Any] | None:
    """The appeal as router shows it, or None while router does not know it yet."""
    response = await client.get(
        f"{stack['services']['router']['url']}/v1/appeals/{appeal_id}", headers={"X-Api-Key": stack["keys"]["operator"]}
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


async def _routed(client: httpx.AsyncClient, stack: dict, appeal_ids: list[str], bar: tqdm, stall: float) -> dict:
    """Each appeal of the run once router has routed it; stops, saying why, as soon as one is rejected or when
    router has routed none of them for `stall` seconds."""
    gate = asyncio.Semaphore(8)
    routed: dict[str, dict[str, Any]] = {}
    last = time.monotonic()

    async def one(appeal_id: str) -> None:
        nonlocal last
        async with gate:
            while (appeal := await _read(client, stack, appeal_id)) is None or appeal["status"] == "submitted":
                if time.monotonic() - last > stall:
                    _answering(stack)
                    raise DemoStopped(
                        f"router has routed none of the run's {len(appeal_ids) - len(routed)} waiting appeals for "
                        f"{stall:.0f} s (appeal {appeal_id} among them): is it consuming? "
                        "(`python -m devstack status` says what runs)"
                    )
                await asyncio.sleep(0.2)
            if appeal["status"] == "rejected":
                raise DemoStopped(f"appeal {appeal_id} was rejected: {appeal.get('reason')}")
            routed[appeal_id] = appeal
            last = time.monotonic()
            bar.update()

    await asyncio.gather(*(one(a) for a in appeal_ids))
    return routed


async def _resolve(client: httpx.AsyncClient, stack: dict, appeals: list[dict[str, Any]], bar: tqdm) -> None:
    """The lead of each appeal accepts it, then resolves it."""
    router = stack["services"]["router"]["url"]
    gate = asyncio.Semaphore(8)

    async def one(appeal: dict[str, Any]) -> None:
        async with gate:
            key = {"X-Api-Key": stack["keys"][f"department:{appeal['lead']}"]}
            for action in (
                {"action": "accept", "note": "We are on it."},
                {"action": "resolve", "resolution": "Support granted under the relief measures."},
            ):
                response = await client.post(
                    f"{router}/v1/appeals/{appeal['appeal_id']}/actions", json=action, headers=key
                )
                response.raise_for_status()
            bar.update()

    await asyncio.gather(*(one(a) for a in appeals))


async def _read_all(client: httpx.AsyncClient, stack: dict, appeal_ids: list[str]) -> list[dict[str, Any]]:
    """The run's appeals as router shows them now (each one known: `_routed` saw it)."""
    gate = asyncio.Semaphore(16)

    async def one(appeal_id: str) -> dict[str, Any]:
        async with gate:
            appeal = await _read(client, stack, appeal_id)
            if appeal is None:
                raise DemoStopped(f"router no longer knows appeal {appeal_id}, which it had routed")
            return appeal

    return list(await asyncio.gather(*(one(a) for a in appeal_ids)))


async def play(stack: dict, scenario: Scenario = Scenario(), stall: float = 30.0) -> str:
    """Submit the scenario's appeals, resolve some of them, and return the report of this run's appeals alone."""
    start = datetime.now(UTC)
    run = f"{int(time.time())}"
    async with httpx.AsyncClient(timeout=30) as client:
        with tqdm(total=scenario.appeals, desc="channels submit", unit="appeal") as bar:
            ids = await _submit(client, stack, appeal_bodies(scenario, run), bar)
        with tqdm(total=len(ids), desc="router routes", unit="appeal") as bar:
            routed = await _routed(client, stack, ids, bar, stall)
        # The same positions each run, whatever the ids: every run resolves the same appeals of the scenario.
        chosen = random.Random(scenario.seed).sample(ids, scenario.resolved)
        with tqdm(total=len(chosen), desc="departments resolve", unit="appeal") as bar:
            await _resolve(client, stack, [routed[a] for a in chosen], bar)
        appeals = await _read_all(client, stack, ids)
    city = load_city(PROJECT_ROOT / "config")
    tz = load_calendars(PROJECT_ROOT / "config").of_department(city, city.coordinating_office).zone
    return run_report.to_markdown(run_report.run_report(city, appeals, start, datetime.now(UTC), tz), run)


class DemoStopped(Exception):
    """What keeps the demo from finishing, in a sentence."""


def _answering(stack: dict) -> None:
    """Stop at once, saying which, when a service of the stack does not answer."""
    down = []
    for name, service in stack["services"].items():
        try:
            if httpx.get(service["url"] + "/readyz", timeout=3).status_code != 200:
                down.append(name)
        except httpx.HTTPError:
            down.append(name)
    if down:
        raise DemoStopped(
            f"{', '.join(down)} of the stack in stack.json {'does' if len(down) == 1 else 'do'} not answer: "
            "start the stack with `make run` (`python -m devstack status` says what runs)"
        )


def main(manifest: Path, scenario: Scenario) -> None:
    """Play against the stack described by `manifest` (written by `python -m devstack run`)."""
    if not manifest.exists():
        raise SystemExit(f"{manifest} not found: start the stack first with `make run`")
    stack = json.loads(manifest.read_text())
    try:
        _answering(stack)
        print(asyncio.run(play(stack, scenario)))
    except DemoStopped as stopped:
        raise SystemExit(f"the demo stopped: {stopped}") from None
    except httpx.HTTPStatusError as refused:
        raise SystemExit(
            f"the demo stopped: {refused.request.method} {refused.request.url.path} answered "
            f"{refused.response.status_code}: {refused.response.text[:300]}"
        ) from None
    except httpx.TransportError as lost:
        raise SystemExit(
            f"the demo stopped: {lost.request.method} {lost.request.url} did not answer ({type(lost).__name__}): "
            "is the stack still running (`python -m devstack status`)?"
        ) from None
