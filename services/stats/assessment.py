"""The city's monthly scorecard of its departments (docs/domain.md, "Statistics"), as plain functions.

A month is the city-time days of it. Each measure counts in the month of its own
event: an assignment when it was made, a breach when it fired (the urging ladder's
level 1), an answer when it was given, a redo when it was ordered, so a department's
figures for a month are the department figures (`report.department_rates`) over the
month's buckets. The score weighs the rates that have a denominator that month and
deducts per count; ranks, the red list and the black list follow from the scores.
The formula is the one in effect in the month (`ScorecardRules.formula`), so a month
keeps its lists when a later formula is added; another month's formula can be
applied to it as a preview.
"""

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from libs.config import Formula, ScorecardRules
from services.stats.answers import OUTCOMES

RATES = ("response_rate", "resolution_rate", "satisfaction_rate")
# Each deduction of the formula and the measure it is taken per.
DEDUCTED = {
    "breach": "breaches",
    "redo": "redos",
    "overruled_send_back": "overruled_send_backs",
    "urging_level_3": "urgings_level_3",
}
# What the scorecard shows of a department besides its rates and deductions: its answers by outcome, the two shown
# apart last (neither is in the satisfaction rate).
ANSWERS = OUTCOMES
RED, BLACK = "red", "black"


def month_span(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a month ('2026-11') in the city's time: from its first local midnight to the next month's."""
    year, number = int(month[:4]), int(month[5:7])
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start, end


def month_of(at: datetime, tz: ZoneInfo) -> str:
    """The city-time month `at` falls in, 'YYYY-MM'."""
    return at.astimezone(tz).strftime("%Y-%m")


def month_name(month: str) -> str:
    """'2026-11' as 'November 2026'."""
    return date(int(month[:4]), int(month[5:7]), 1).strftime("%B %Y")


def measures(row: dict[str, Any]) -> dict[str, Any]:
    """A department's scorecard measures from its department figures over the month."""
    return {
        "department": row["department"],
        "name": row["name"],
        "volume": row["assigned"],
        **{rate: row[rate] for rate in RATES},
        "breaches": row["urgings_level_1"],
        "redos": row["redos"],
        "overruled_send_backs": row["send_backs_overruled"],
        "urgings_level_3": row["urgings_level_3"],
        **{outcome: row[outcome] for outcome in ANSWERS},
    }


def score(figures: dict[str, Any], formula: Formula) -> float | None:
    """Σ weight × rate over the weighed rates with a denominator, scaled by Σ all weights / Σ their weights (no
    department is marked down for a rate it had nothing to be measured by), minus Σ deduction × count; to 2 decimals.

    None when no weighed rate has a denominator: there is nothing to assess. With every weight 0 the formula is its
    deductions alone.
    """
    weights = formula.weights.model_dump()
    total = sum(weights.values())
    measured = [(weights[rate], figures[rate]) for rate in RATES if figures[rate] is not None and weights[rate] > 0]
    if total and not measured:
        return None
    weighed = sum(w * rate for w, rate in measured) * total / sum(w for w, _ in measured) if measured else 0.0
    deductions = formula.deductions.model_dump()
    deducted = sum(amount * figures[DEDUCTED[name]] for name, amount in deductions.items())
    return round(weighed - deducted, 2)


def formula_of(formula: Formula) -> dict[str, Any]:
    """The formula as the scorecard shows it."""
    return {"from": formula.from_month, **formula.model_dump(include={"weights", "deductions"})}


def scorecard(rows: list[dict[str, Any]], rules: ScorecardRules, formula: Formula) -> dict[str, Any]:
    """Score, rank and list each department of `rows` (its department figures over the month).

    Departments under `minimum_volume` lead assignments, or without a score, are listed with rank null and on
    neither list. Ranks go by score, best first; equal scores share a rank (1, 2, 2, 4), in code order. The red
    list is the ranked departments of rank `red_list` or better (all tied at its border included); the black list
    those as low from the bottom, worst first, leaving out any on the red list.
    """
    cards = []
    for row in rows:
        card = measures(row)
        card["score"] = score(card, formula)
        card["ranked"] = card["volume"] >= rules.minimum_volume and card["score"] is not None
        cards.append(card)
    ranked = sorted((c for c in cards if c["ranked"]), key=lambda c: (-c["score"], c["department"]))
    scores = [c["score"] for c in ranked]
    for card in cards:
        card["rank"] = 1 + sum(1 for s in scores if s > card["score"]) if card["ranked"] else None
        card["list"] = None
    red = [c for c in ranked if c["rank"] <= rules.red_list]
    for card in red:
        card["list"] = RED
    from_bottom = sorted(ranked, key=lambda c: (c["score"], c["department"]))
    black = [
        c for c in from_bottom if c["list"] is None and 1 + sum(1 for s in scores if s < c["score"]) <= rules.black_list
    ]
    for card in black:
        card["list"] = BLACK
    unranked = sorted((c for c in cards if not c["ranked"]), key=lambda c: (-c["volume"], c["department"]))
    return {
        "minimum_volume": rules.minimum_volume,
        "ranked_count": len(ranked),
        "formula": formula_of(formula),
        "departments": ranked + unranked,
        "red_list": [c["department"] for c in red],
        "black_list": [c["department"] for c in black],
    }


def own_line(card: dict[str, Any], department: str) -> dict[str, Any]:
    """The scorecard as one department may read it: its own line alone (none when the city has no such department),
    with the red and black lists, the formula and how many were ranked; never another department's figures."""
    return {**card, "departments": [row for row in card["departments"] if row["department"] == department]}
