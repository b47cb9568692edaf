"""The demo's report of its own run: the daily report's sentences and tables, counted from the run's appeals alone.

Stats counts by the hour, so its report of the hours a run took also holds whatever else was submitted in them: a
second `make demo` on the same stack reported both runs' appeals. The demo knows the ids it submitted and reads each
appeal from router at the end (`AppealOut` as JSON); these functions count those appeals under the names stats' report
reads and hand them to stats' own report functions, so the sentences and tables are the ones stats writes, with
each figure the run's own. Pure: a unit test gives them appeals and reads the text.
"""

from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from libs.config import City
from libs.kinds import AppealStatus
from services.stats import report
from services.stats.appeals import ANSWERS, OPEN, RESOLVED
from services.stats.buckets import counter


def counts_of(appeals: list[dict[str, Any]]) -> tuple[dict[str, int], list[dict[str, str]], dict[str, int]]:
    """The run's counts as stats names them, its clocks running past due, and its open appeals per lead.

    Each appeal counts once under its lead at the end of the run; its clocks count by their last state as sla
    reported it to router (met, breached, running or paused as live; router leaves cancelled ones out)."""
    counts: dict[str, int] = defaultdict(int)
    overdue: list[dict[str, str]] = []
    open_now: dict[str, int] = defaultdict(int)
    for appeal in appeals:
        status = AppealStatus(appeal["status"])
        lead = None if status == AppealStatus.rejected else appeal.get("lead")
        counts["n"] += 1
        for dimension in ("category", "size_band", "channel", "district"):
            counts[counter(dimension, appeal[dimension])] += 1
        counts[counter("status", status.value)] += 1
        counts[counter("department", lead or "unassigned")] += 1
        if status in RESOLVED:
            counts["resolved"] += 1
        if lead:
            counts[counter("assigned", lead)] += 1
            if status in RESOLVED:
                counts[counter("resolved", lead)] += 1
            if status in OPEN:
                open_now[lead] += 1
        for clock in appeal.get("deadlines", []):
            state = clock["state"]
            where = (clock["department"], clock["clock"])
            if state in ("met", "breached", "cancelled"):
                counts[counter("clock", *where, state)] += 1
            else:
                counts[counter("clock", *where, "live")] += 1
                if clock.get("overdue"):
                    overdue.append({"department": where[0], "clock": where[1]})
    return dict(counts), overdue, dict(open_now)


def company_rows(appeals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `report.company_figures` reads of each appeal: its company, whether a department answered it, its status
    and the lists its company was on."""
    return [
        {
            "uscc": appeal["enterprise"]["uscc"],
            "answered": any(step["type"] in ANSWERS for step in appeal.get("timeline", [])),
            "status": appeal["status"],
            "lists": appeal.get("lists") or [],
        }
        for appeal in appeals
    ]


def run_report(
    city: City, appeals: list[dict[str, Any]], start: datetime, end: datetime, tz: ZoneInfo
) -> dict[str, Any]:
    """Stats' daily report of the run's appeals between `start` and `end`, with the run's departments: each one's
    appeals led, resolved and clocks breached or running past due."""
    counts, overdue, open_now = counts_of(appeals)
    rows = report.department_rates(city, counts, {}, overdue, open_now, min_volume=1)
    data = report.daily_report(city, counts, rows, report.company_figures(company_rows(appeals)), start, end, tz)
    data["departments"] = [
        {
            "department": r["department"],
            "name": r["name"],
            "routed": r["assigned"],
            "resolved": r["resolved"],
            "breached": sum(c["breached"] + c["overdue"] for c in r["clocks"].values()),
        }
        for r in sorted(rows, key=lambda r: (-r["assigned"], r["department"]))
        if r["assigned"]
    ]
    return data


def to_markdown(data: dict[str, Any], run: str) -> str:
    """The run's report as Markdown: stats' daily report under a heading naming the run, then its departments."""
    _, *body = report.to_markdown(data).rstrip().split("\n")
    lines = [f"# Demo run {run}, {data['from']:%Y-%m-%d %H:%M} to {data['to']:%Y-%m-%d %H:%M} UTC", *body]
    lines += ["", "## Departments", "", "| Department | Routed | Resolved | Breached |", "|---|---:|---:|---:|"]
    lines += [
        f"| {report.md_text(r['name'])} | {r['routed']} | {r['resolved']} | {r['breached']} |"
        for r in data["departments"]
    ]
    return "\n".join(lines) + "\n"
