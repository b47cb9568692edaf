"""The monthly report: the city's answers and the scorecard, worded as the seeds word their figures; pure.

Every number in it is read from the month's scorecard (`assessment.scorecard`):
the city's figures are the sums over its departments, never assumed.
"""

import csv
import io
from typing import Any

from services.stats.assessment import ANSWERS, DEDUCTED, RATES, month_name
from services.stats.report import csv_cell, md_text, share

# The scorecard's columns in the Markdown table and the CSV, with their headings.
COLUMNS = (
    ("rank", "Rank"),
    ("department", "Code"),
    ("name", "Department"),
    ("volume", "Volume"),
    ("response_rate", "Response rate"),
    ("resolution_rate", "Resolution rate"),
    ("satisfaction_rate", "Satisfaction rate"),
    ("breaches", "Breaches"),
    ("redos", "Redos"),
    ("overruled_send_backs", "Overruled send-backs"),
    ("urgings_level_3", "Level-3 urgings"),
    ("outside", "Unsatisfied, outside"),
    ("unreached", "Unreached"),
    ("score", "Score"),
    ("list", "List"),
)
_DEDUCTION_WORDS = {
    "breach": "breach",
    "redo": "redo",
    "overruled_send_back": "overruled send-back",
    "urging_level_3": "level-3 urging",
}


def city_answers(card: dict[str, Any]) -> dict[str, Any]:
    """The city's answers of the month by outcome, its redos and its satisfaction rate: sums over the departments."""
    figures: dict[str, Any] = {o: sum(d[o] for d in card["departments"]) for o in ANSWERS}
    good = figures["satisfied"] + figures["basically_satisfied"]
    figures.update(
        answers=good + figures["unsatisfied"] + figures["outside"],
        satisfaction_rate=share(good, good + figures["unsatisfied"]),
        redos=sum(d["redos"] for d in card["departments"]),
    )
    return figures


def monthly_report(card: dict[str, Any]) -> dict[str, Any]:
    """The report of a month from its scorecard (as flows.scorecard gives it): the sentences, and every figure of
    them as data."""
    city = city_answers(card)
    return {
        "month": card["month"],
        "from": card["from"],
        "to": card["to"],
        "timezone": card["timezone"],
        "answers": city,
        "scorecard": card,
        "text": " ".join(sentences(card, city, card["month"])),
    }


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _names(card: dict[str, Any], codes: list[str]) -> str:
    by_code = {d["department"]: d for d in card["departments"]}
    names = [f"{by_code[code]['name']} ({by_code[code]['score']:g})" for code in codes]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names) or "none"


def sentences(card: dict[str, Any], city: dict[str, Any], month: str) -> list[str]:
    """'In November 2026 the city's departments received 120 answers to return visits and from companies: ...'."""
    rate = city["satisfaction_rate"]
    outside = city["outside"]
    said = [
        f"In {month_name(month)} the city's departments received {_n(city['answers'], 'answer', 'answers')} to "
        f"return visits and from companies: {city['satisfied']} satisfied, {city['basically_satisfied']} basically "
        f"satisfied and {city['unsatisfied']} unsatisfied "
        + (f"(satisfaction rate {rate:.0%})" if rate is not None else "(no satisfaction rate)")
        + f"; {outside} more {'was' if outside == 1 else 'were'} unsatisfied for reasons outside the departments, "
        f"and {_n(city['unreached'], 'visit', 'visits')} ended with the company unreached.",
        f"{_n(city['redos'], 'redo was', 'redos were')} ordered.",
    ]
    ranked = card["ranked_count"]
    said.append(
        f"{_n(ranked, 'department was', 'departments were')} ranked, of {len(card['departments'])} "
        f"(those with at least {card['minimum_volume']} lead assignments in the month)."
    )
    if ranked:
        said.append(f"Red list: {_names(card, card['red_list'])}; black list: {_names(card, card['black_list'])}.")
    said.append(formula_sentence(card["formula"]))
    return said


def formula_sentence(formula: dict[str, Any]) -> str:
    """'Scores: 30 × response rate + 35 × resolution rate + 35 × satisfaction rate, minus 1 per breach, ...'."""
    weights = " + ".join(f"{formula['weights'][r]:g} × {r.replace('_', ' ')}" for r in RATES)
    deductions = [f"{formula['deductions'][d]:g} per {_DEDUCTION_WORDS[d]}" for d in DEDUCTED]
    return (
        f"Scores: {weights}, minus " + ", ".join(deductions[:-1]) + f" and {deductions[-1]} "
        f"(the formula in effect from {month_name(formula['from'])})."
    )


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in RATES:
        return f"{value:.0%}"
    if key == "score":
        return f"{value:.2f}"
    return str(value)


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the sentences, then the scorecard table."""
    lines = [f"# Monthly report {month_name(report['month'])}", "", md_text(report["text"]), "", "## Scorecard", ""]
    lines.append("| " + " | ".join(title for _, title in COLUMNS) + " |")
    lines.append("|" + "".join("---:|" if key not in ("department", "name", "list") else "---|" for key, _ in COLUMNS))
    for row in report["scorecard"]["departments"]:
        lines.append("| " + " | ".join(md_text(_cell(key, row[key])) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """The scorecard as CSV, one row per department: rates as fractions, no cell that starts a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = [key for key, _ in COLUMNS]
    keys[keys.index("outside") : keys.index("outside")] = ["satisfied", "basically_satisfied", "unsatisfied"]
    writer.writerow(keys)
    for row in report["scorecard"]["departments"]:
        writer.writerow([csv_cell("" if row[key] is None else row[key]) for key in keys])
    return out.getvalue()
