"""Figures from summed buckets, as plain functions: groupings, the department rates, the daily report."""

import csv
import io
from collections import defaultdict
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from libs.config import City
from libs.kinds import ClockKind
from services.stats.answers import answer_figures
from services.stats.appeals import NO_LIST, RESOLVED
from services.stats.buckets import counter, parts, sketch_value
from services.stats.supervision import CONTRIBUTION, CONTRIBUTION_FIGURES, FIGURE_GROUPS, FIGURES

DIMENSIONS = ("category", "size_band", "channel", "department", "district", "status")
# Every kind of clock, each with its own figures: the lead's scope, response and resolution, and the co-handlers'
# contribution (one clock per co-handler, held against the co-handler, never mixed into the lead's).
CLOCKS = tuple(k.value for k in ClockKind)


class Rate(NamedTuple):
    """A rate shown beside the supervision figures of its subject: after the figure `after`; in the CSV with the
    figure `counts` as its count, on the rows of departments with any of the figures `of`."""

    name: str
    after: str
    counts: str
    of: tuple[str, ...]


RATES = {
    "send_backs": Rate("send_back_rate", "send_backs", "send_backs", ("send_backs",)),
    "contributions": Rate(
        "contribution_rate", "contributions_late", "contributions_on_time", tuple(CONTRIBUTION_FIGURES.values())
    ),
}
RATE_NAMES = {rate.name for rate in RATES.values()}
# Headings of the supervision tables in the Markdown report, one per subject of `FIGURE_GROUPS`, and of their
# columns; a figure without one is shown by its name.
GROUP_TITLES = {
    "extensions": "Extensions",
    "send_backs": "Send-backs",
    "transfers": "Transfers asked",
    "urgings": "Urgings",
    "contributions": "Co-handlers' contributions",
}
FIGURE_LABELS = {
    "extensions_requested": "Extensions asked",
    "extensions_approved": "Approved",
    "extensions_rejected": "Rejected",
    "send_backs": "Send-backs",
    "send_back_rate": "Send-back rate",
    "send_backs_overruled": "Overruled",
    "send_backs_confirmed": "Confirmed",
    "chosen_declines": "Declined when chosen",
    "transfers_requested": "Transfers asked",
    "transfers_granted": "Granted",
    "transfers_refused": "Refused",
    "urgings_by_hand": "By hand",
    "urgings_level_1": "Level 1 (breach)",
    "urgings_level_2": "Level 2",
    "urgings_level_3": "Level 3",
    "contributions_on_time": "On time",
    "contributions_late": "Late or missing",
    "contribution_rate": "Contribution rate",
}


def share(count: int, total: int) -> float | None:
    """count / total, or None when there is nothing to divide by."""
    return round(count / total, 4) if total else None


def groups(counts: dict[str, int], dimension: str) -> list[dict[str, Any]]:
    """[{key, count, share}] of one dimension, largest first; shares are of all appeals in the period."""
    total = counts.get("n", 0)
    prefix = dimension + "|"
    rows = [
        {"key": parts(name)[1], "count": n, "share": share(n, total)}
        for name, n in counts.items()
        if name.startswith(prefix) and n
    ]
    return sorted(rows, key=lambda r: (-r["count"], r["key"]))


def company_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Distinct companies of the appeals, those answered at least once, those with every appeal solved."""
    answered: set[str] = set()
    unsolved: set[str] = set()
    companies: set[str] = set()
    for row in rows:
        uscc = row["uscc"]
        companies.add(uscc)
        if row.get("answered"):
            answered.add(uscc)
        if row.get("status") not in RESOLVED:
            unsolved.add(uscc)
    return {
        "companies": len(companies),
        "answered": len(answered),
        "solved": len(companies - unsolved),
        "appeals": len(rows),
        "appeals_per_company": round(len(rows) / len(companies), 2) if companies else None,
    }


def by_list(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`company_figures` of each government list's appeals (`none`: on no list), most companies first."""
    on: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        for name in row.get("lists") or [NO_LIST]:
            on[name].append(row)
    figures = [{"list": name, **company_figures(listed)} for name, listed in on.items()]
    return sorted(figures, key=lambda f: (-f["companies"], f["list"]))


def on_list(rows: list[dict[str, Any]], name: str | None) -> list[dict[str, Any]]:
    """The rows of appeals whose company was on list `name` at submission (`none`: on no list); all for None."""
    if name is None:
        return rows
    return [row for row in rows if name in (row.get("lists") or [NO_LIST])]


def quantile(sketch: dict[int, int], q: float) -> float | None:
    """The q-quantile of a logarithmic sketch (within 1 %), or None when it is empty."""
    total = sum(sketch.values())
    if not total:
        return None
    rank, seen = q * (total - 1), 0
    for key in sorted(sketch):
        seen += sketch[key]
        if seen > rank:
            return round(sketch_value(key), 1)
    return round(sketch_value(max(sketch)), 1)


def _sketches(latencies: dict[str, int]) -> dict[tuple[str, str], dict[int, int]]:
    out: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    # Each name is one bin of one sketch, so a bin is set once (a day's sketch has tens of thousands).
    for name, n in latencies.items():
        found = parts(name)
        if len(found) == 3 and found[2].lstrip("-").isdigit():
            out[(found[0], found[1])][int(found[2])] = n
    return out


def department_rates(
    city: City,
    counts: dict[str, int],
    latencies: dict[str, int],
    overdue: list[dict[str, Any]],
    open_now: dict[str, int],
    min_volume: int,
) -> list[dict[str, Any]]:
    """Per department: volume, the three rates, breach rate per clock, response and resolution times, rank; its
    answers by outcome, redos and visit attempts (`answer_figures`); the office's supervision figures, the
    send-back rate (send-backs / lead assignments, null without any) and, as a co-handler, its contributions on time
    and late and the contribution rate.

    A clock past its due time with no breach seen yet counts as breached work: open
    overdue appeals are never hidden. Departments below `min_volume` assignments are
    shown but not ranked. Each kind of clock has its own figures: the contribution
    clocks a department is held to as co-handler are its own `contribution` entry,
    never part of the scope, response or resolution figures it has as lead.
    """
    late: dict[tuple[str, str], int] = defaultdict(int)
    for clock in overdue:
        late[(clock["department"], clock["clock"])] += 1
    sketches = _sketches(latencies)
    rows: list[dict[str, Any]] = []
    for dept in city.departments:
        d = dept.code
        clocks = {}
        for kind in CLOCKS:
            met, breached = counts.get(f"clock|{d}|{kind}|met", 0), counts.get(f"clock|{d}|{kind}|breached", 0)
            overdue_now = late[(d, kind)]
            clocks[kind] = {
                "met": met,
                "breached": breached,
                "overdue": overdue_now,
                "running": counts.get(f"clock|{d}|{kind}|live", 0) - overdue_now,
                "cancelled": counts.get(f"clock|{d}|{kind}|cancelled", 0),
            }
        assigned = counts.get(f"assigned|{d}", 0)
        supervision = {figure: counts.get(counter(figure, d), 0) for figure in FIGURES}
        supervision.update(contributions(clocks[CONTRIBUTION]))
        answers = answer_figures(counts, d)
        scope = clocks["scope"]
        rows.append(
            {
                "department": d,
                "name": dept.name,
                "assigned": assigned,
                "resolved": counts.get(f"resolved|{d}", 0),
                "open": open_now.get(d, 0),
                "response_rate": share(scope["met"], scope["met"] + scope["breached"] + scope["overdue"]),
                "resolution_rate": share(counts.get(f"resolved|{d}", 0), assigned),
                "breach_rate": {
                    k: share(c["breached"] + c["overdue"], c["met"] + c["breached"] + c["overdue"])
                    for k, c in clocks.items()
                },
                "clocks": clocks,
                "first_response_seconds": {
                    "median": quantile(sketches.get(("first_response", d), {}), 0.5),
                    "p90": quantile(sketches.get(("first_response", d), {}), 0.9),
                },
                "resolution_seconds": {
                    "median": quantile(sketches.get(("resolution", d), {}), 0.5),
                    "p90": quantile(sketches.get(("resolution", d), {}), 0.9),
                },
                "rank": None,
                **answers,
                **supervision,
                # A send-back counts in the hour of the decline, an assignment in the hour it was made; a department
                # declines only within its send-back window, so both fall in the same period but near its edges.
                "send_back_rate": share(supervision["send_backs"], assigned),
                "contribution_rate": share(
                    supervision["contributions_on_time"],
                    supervision["contributions_on_time"] + supervision["contributions_late"],
                ),
            }
        )
    ranked = [r for r in rows if r["assigned"] >= min_volume]
    ranked.sort(key=lambda r: (-(r["resolution_rate"] or 0), -(r["response_rate"] or 0), r["department"]))
    for i, row in enumerate(ranked, start=1):
        row["rank"] = i
    return sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, -r["assigned"], r["department"]))


def contributions(clock: dict[str, int]) -> dict[str, int]:
    """A co-handler's contribution figures from its contribution clocks started in the period, as `clocks` counts
    them: on time, those met; late, those breached (the part came late or not at all) and those running past due
    with no breach seen yet, as every breach rate counts them. Cancelled ones (the appeal closed before the part was
    due, or the co-handler became the lead) and those still within their time are neither."""
    return {
        CONTRIBUTION_FIGURES["met"]: clock["met"],
        CONTRIBUTION_FIGURES["breached"]: clock["breached"] + clock["overdue"],
    }


def _when(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return f"{local:%H:%M} {local:%A} {local.day} {local:%B %Y}"


def daily_report(
    city: City,
    counts: dict[str, int],
    departments: list[dict[str, Any]],
    companies: dict[str, Any],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
) -> dict[str, Any]:
    """The report the seeds write by hand, with every figure also as data (`companies`: `company_figures`)."""
    received, resolved = counts.get("n", 0), counts.get("resolved", 0)
    categories = groups(counts, "category")
    bands = {row["key"]: row for row in groups(counts, "size_band")}
    size_bands = [{**bands[b.code], "label": b.label} for b in city.size_bands if b.code in bands]
    late = [
        {
            "department": r["department"],
            "name": r["name"],
            "breached": sum(c["breached"] for c in r["clocks"].values()),
            "overdue": sum(c["overdue"] for c in r["clocks"].values()),
            "breach_rate": r["breach_rate"],
        }
        for r in departments
    ]
    late = sorted(
        (r for r in late if r["breached"] + r["overdue"]),
        key=lambda r: (-(r["breached"] + r["overdue"]), r["department"]),
    )
    sentences = [
        f"Between {_when(start, tz)} and {_when(end, tz)} the platform received "
        f"{received} appeal{'s' if received != 1 else ''}, {resolved} of which "
        f"{'has' if resolved == 1 else 'have'} been resolved."
    ]
    if categories:
        top = categories[0]
        sentences.append(f"{top['count']} were about {top['key'].replace('_', ' ')} ({top['share']:.0%}).")
    if size_bands:
        phrases = [
            f"{b['count']} {'came ' if i == 0 else ''}from companies with {b['label']}"
            for i, b in enumerate(size_bands)
        ]
        sentences.append(", ".join(phrases[:-1]) + (" and " if len(phrases) > 1 else "") + phrases[-1] + ".")
    if companies["companies"]:
        sentences.append(_companies_sentence(companies))
    if late:
        names = ", ".join(f"{r['name']} ({r['breached'] + r['overdue']})" for r in late[:5])
        sentences.append(f"Late on their deadlines: {names}.")
    supervision = supervised(departments)
    sentences += _supervision_sentences({f: sum(r[f] for r in supervision) for f in FIGURES})
    return {
        "from": start,
        "to": end,
        "timezone": str(tz),
        "received": received,
        "resolved": resolved,
        "categories": categories,
        "size_bands": size_bands,
        "channels": groups(counts, "channel"),
        "districts": groups(counts, "district"),
        "companies": companies,
        "late_departments": late,
        "supervision": supervision,
        "text": " ".join(sentences),
    }


def supervised(departments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The supervision figures of the departments with any in the period, by each figure in turn, largest first."""
    fields = ("department", "name", *FIGURES, *(rate.name for rate in RATES.values()))
    rows = [{field: r[field] for field in fields} for r in departments]
    return sorted(
        (r for r in rows if any(r[f] for f in FIGURES)), key=lambda r: (*(-r[f] for f in FIGURES), r["department"])
    )


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _supervision_sentences(totals: dict[str, int]) -> list[str]:
    """A sentence for each subject of the office's supervision with an act in the period, e.g. 'Departments asked
    the coordinating office for 5 extensions; it approved 3 and rejected 1.'"""
    sentences = []
    if any(totals[f] for f in ("extensions_requested", "extensions_approved", "extensions_rejected")):
        asked = totals["extensions_requested"]
        sentences.append(
            f"Departments asked the coordinating office for {asked} extension{'s' if asked != 1 else ''}; "
            f"it approved {totals['extensions_approved']} and rejected {totals['extensions_rejected']}."
        )
    if any(totals[f] for f in ("send_backs", "send_backs_overruled", "send_backs_confirmed")):
        sent = totals["send_backs"]
        sentences.append(
            f"Departments sent back {sent} appeal{'s' if sent != 1 else ''}; the coordinating office overruled "
            f"{totals['send_backs_overruled']} and confirmed {totals['send_backs_confirmed']}."
        )
    if chosen := totals["chosen_declines"]:
        sentences.append(
            f"Departments the company had chosen declined {chosen} appeal{'s' if chosen != 1 else ''}, "
            "not counted as send-backs."
        )
    if any(totals[f] for f in ("transfers_requested", "transfers_granted", "transfers_refused")):
        asked = totals["transfers_requested"]
        sentences.append(
            f"Departments asked the coordinating office to transfer {asked} appeal{'s' if asked != 1 else ''}; "
            f"it granted {totals['transfers_granted']} and refused {totals['transfers_refused']}."
        )
    levels = [totals[f"urgings_level_{n}"] for n in (1, 2, 3)]
    if totals["urgings_by_hand"] or any(levels):
        by_hand = totals["urgings_by_hand"]
        sentences.append(
            f"The coordinating office urged departments by hand {_times(by_hand)}; the urging ladder reached "
            f"level 1 (the breach) {_times(levels[0])}, level 2 {_times(levels[1])} and level 3 {_times(levels[2])}."
        )
    on_time, late = totals["contributions_on_time"], totals["contributions_late"]
    if on_time or late:
        sentences.append(
            f"Co-handlers gave {on_time} contribution{'s' if on_time != 1 else ''} on time; {late} came late or "
            f"not at all ({share(on_time, on_time + late):.0%} on time)."
        )
    return sentences


def _companies_sentence(figures: dict[str, Any]) -> str:
    """'The 251 appeals were put forward by 185 companies: 132 of them have got an answer, 120 ...'."""
    n, companies = figures["appeals"], figures["companies"]
    answered, solved = figures["answered"], figures["solved"]
    return (
        f"The {n} appeal{'s were' if n != 1 else ' was'} put forward by {companies} "
        f"compan{'ies' if companies != 1 else 'y'}: {answered} of them "
        f"{'has' if answered == 1 else 'have'} got an answer from a department, and {solved} "
        f"{'has' if solved == 1 else 'have'} had every appeal solved."
    )


# What a spreadsheet reads as the start of a formula (OWASP, "CSV injection"), and what Markdown reads as markup.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MARKUP = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~"} | {"\n": " ", "\r": " "})


def csv_cell(value: Any) -> Any:
    """A cell no spreadsheet runs: text that would start a formula gets a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def md_text(value: Any) -> str:
    """Text shown as itself in Markdown: markup characters escaped, line breaks as spaces (a table row stays one)."""
    return str(value).translate(_MARKUP)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the sentences, then a table per grouping."""
    lines = [
        f"# Appeals report {report['from']:%Y-%m-%d %H:%M} to {report['to']:%Y-%m-%d %H:%M} UTC",
        "",
        md_text(report["text"]),
        "",
    ]
    for title, key in (
        ("Categories", "categories"),
        ("Size bands", "size_bands"),
        ("Channels", "channels"),
        ("Districts", "districts"),
    ):
        lines += [f"## {title}", "", "| | Appeals | Share |", "|---|---:|---:|"]
        lines += [
            f"| {md_text(row.get('label', row['key']))} | {row['count']} | {_percent(row['share'])} |"
            for row in report[key]
        ]
        lines.append("")
    companies = report["companies"]
    lines += ["## Companies", "", "| | Companies | Share |", "|---|---:|---:|"]
    lines.append(f"| put forward appeals | {companies['companies']} | |")
    for key, label in (("answered", "got an answer from a department"), ("solved", "had every appeal solved")):
        lines.append(f"| {label} | {companies[key]} | {_percent(share(companies[key], companies['companies']))} |")
    lines.append("")
    lines += ["## Late departments", "", "| Department | Breached | Overdue now |", "|---|---:|---:|"]
    lines += [f"| {md_text(r['name'])} | {r['breached']} | {r['overdue']} |" for r in report["late_departments"]]
    lines += ["", "## Supervision"]
    for group, figures in FIGURE_GROUPS:
        # A rate beside the figures it divides.
        columns = list(figures)
        if group in RATES:
            columns.insert(columns.index(RATES[group].after) + 1, RATES[group].name)
        lines += ["", f"### {GROUP_TITLES.get(group, group)}", ""]
        lines.append("| Department | " + " | ".join(FIGURE_LABELS.get(c, c) for c in columns) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        lines += [
            f"| {md_text(r['name'])} | "
            + " | ".join(_percent(r[c]) if c in RATE_NAMES else str(r[c]) for c in columns)
            + " |"
            for r in report["supervision"]
            if any(r[f] for f in figures)
        ]
    return "\n".join(lines) + "\n"


class _NeutralWriter:
    """A csv writer whose every cell goes through `csv_cell`."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([csv_cell(cell) for cell in row])


def to_csv(report: dict[str, Any]) -> str:
    """The report as CSV rows: section, key, count, share."""
    out = io.StringIO()
    writer = _NeutralWriter(csv.writer(out, lineterminator="\n"))
    writer.writerow(["section", "key", "count", "share"])
    writer.writerow(["total", "received", report["received"], ""])
    writer.writerow(["total", "resolved", report["resolved"], share(report["resolved"], report["received"]) or ""])
    companies = report["companies"]
    for key in ("companies", "answered", "solved"):
        part = share(companies[key], companies["companies"]) if key != "companies" else None
        writer.writerow(["companies", key, companies[key], "" if part is None else part])
    for section in ("categories", "size_bands", "channels", "districts"):
        for row in report[section]:
            writer.writerow([section, row["key"], row["count"], row["share"]])
    for row in report["late_departments"]:
        writer.writerow(["late_departments", row["department"], row["breached"] + row["overdue"], ""])
    # One section per figure, so the rows keep the four columns every other section has; a rate's rows carry what it
    # counts (the send-backs, the contributions on time) and, as their share, the rate.
    rates = {rate.after: rate for rate in RATES.values()}
    for figure in FIGURES:
        for row in report["supervision"]:
            if row[figure]:
                writer.writerow([figure, row["department"], row[figure], ""])
        if rate := rates.get(figure):
            for row in report["supervision"]:
                if row[rate.name] is not None and any(row[f] for f in rate.of):
                    writer.writerow([rate.name, row["department"], row[rate.counts], row[rate.name]])
    return out.getvalue()
