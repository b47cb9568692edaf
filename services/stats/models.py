"""Stats' response bodies."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Dimension(StrEnum):
    category = "category"
    size_band = "size_band"
    channel = "channel"
    department = "department"
    district = "district"
    status = "status"
    list = "list"


class Interval(StrEnum):
    hour = "hour"
    day = "day"


class Group(BaseModel):
    key: str = Field(examples=["financing"])
    count: int = Field(examples=[172])
    share: float | None = Field(description="Of all appeals submitted in the period.", examples=[0.3715])
    label: str | None = Field(default=None, description="Wording of a size band.")


class CompanyFigures(BaseModel):
    """Companies behind the appeals submitted in a period; each company counts once however many appeals it made."""

    companies: int = Field(description="Distinct companies that put forward an appeal.", examples=[185])
    answered: int = Field(
        description="Of those, companies with at least one appeal a department answered: asked for "
        "information, resolved, or declined with guidance.",
        examples=[132],
    )
    solved: int = Field(
        description="Of those, companies every one of whose appeals is solved now (resolved, confirmed or closed).",
        examples=[120],
    )
    appeals: int = Field(description="Appeals of those companies in the period.", examples=[251])
    appeals_per_company: float | None = Field(description="appeals / companies, to 2 decimals.", examples=[1.36])


class ListFigures(CompanyFigures):
    list_name: str = Field(
        alias="list", description="A government list of config/registry.yaml, or `none`.", examples=["key_sme"]
    )


class Companies(CompanyFigures):
    """Company figures of a period, for one government list or all companies, and per list."""

    period_from: datetime = Field(alias="from")
    period_to: datetime = Field(alias="to")
    list_name: str | None = Field(
        alias="list", description="The list the figures are narrowed to (`none`: on no list)."
    )
    lists: list[ListFigures] = Field(
        description="The same figures per list the companies were on at submission; a company on two lists "
        "counts in both."
    )


class Summary(BaseModel):
    """Appeals submitted in [from, to), counted by their current facts."""

    period_from: datetime = Field(alias="from")
    period_to: datetime = Field(alias="to")
    total: int = Field(description="Appeals submitted in the period.", examples=[463])
    resolved: int = Field(description="Of those, resolved (or confirmed, or closed) by now.", examples=[100])
    companies: CompanyFigures
    groups: dict[Dimension, list[Group]] = Field(
        description="Counts by dimension; by `list`, an appeal counts once for each list its company was on "
        "(`none`: on no list), so those counts can add up to more than the total."
    )


class SeriesPoint(BaseModel):
    start: datetime
    total: int
    groups: dict[str, int] = Field(default_factory=dict)


class Series(BaseModel):
    """Appeals submitted per hour or per day."""

    interval: Interval
    group_by: Dimension | None
    points: list[SeriesPoint]


class ClockCounts(BaseModel):
    met: int
    breached: int
    overdue: int = Field(description="Running past due, no breach seen yet: counted as breached work.")
    running: int
    cancelled: int


class Durations(BaseModel):
    median: float | None = Field(description="Seconds, within 1 %.")
    p90: float | None = Field(description="Seconds, within 1 %.")


class SupervisionFigures(BaseModel):
    """The coordinating office's supervision of one department (docs/domain.md, "Supervision"): each act counts in
    the hour it was taken, so an extension asked in one period and decided in the next counts in both. The
    contributions it owed as co-handler count as its `contribution` clocks do, in the hour each clock started."""

    department: str
    name: str
    extensions_requested: int = Field(description="Extensions (延期) of its resolution due time the department asked.")
    extensions_approved: int = Field(description="Extensions the department asked for that the office approved.")
    extensions_rejected: int = Field(description="Extensions the department asked for that the office rejected.")
    send_backs: int = Field(
        description="Send-backs (退单): appeals the department declined, the company not having chosen it. A decline "
        "written before router marked a chosen department's (no `chosen` on the event) counts here too."
    )
    send_backs_overruled: int = Field(
        description="Of its send-backs, those the office overruled, returning the appeal to it (counted when "
        "overruled); each still counts as a send-back."
    )
    send_backs_confirmed: int = Field(description="Of its send-backs, those the office let stand (when confirmed).")
    chosen_declines: int = Field(
        description="Declines of appeals whose company chose the department: routing's first step, no send-back."
    )
    send_back_rate: float | None = Field(
        description="send_backs / lead assignments made in the period (`assigned`: routing, rerouting, transfer; an "
        "overruled send-back's return is no new one); null when it had none. Not held back below min_volume, like "
        "the other rates; a send-back counts in its own hour, so a short period's rate may pass 1.",
        examples=[0.05],
    )
    transfers_requested: int = Field(description="Transfers (转办) the department, leading, asked the office for.")
    transfers_granted: int = Field(
        description="Transfers the department asked for that the office granted (the appeal moved to another lead)."
    )
    transfers_refused: int = Field(description="Transfers the department asked for that the office refused.")
    urgings_by_hand: int = Field(description="Urgings (催办) of the office by hand, of appeals the department led.")
    urgings_level_1: int = Field(
        description="The urging ladder's level 1: breaches of clocks holding the department to account, each once, "
        "in the hour it fired (the `clocks` figures count a clock in the hour it started)."
    )
    urgings_level_2: int = Field(description="The urging ladder's level 2 (催办), once per breached clock.")
    urgings_level_3: int = Field(description="The urging ladder's level 3 (督办), once per breached clock.")
    contributions_on_time: int = Field(
        description="Contributions (协办意见) the department, as co-handler, gave in time: its contribution clocks "
        "met, of those started in the period (`clocks.contribution.met`)."
    )
    contributions_late: int = Field(
        description="Contributions the department, as co-handler, gave late or not at all: its contribution clocks "
        "breached, or running past due with no breach seen yet, of those started in the period "
        "(`clocks.contribution` breached + overdue). One cancelled (the appeal closed before it was due, or the "
        "department became the lead) is neither."
    )
    contribution_rate: float | None = Field(
        description="contributions_on_time / (contributions_on_time + contributions_late), null when both are 0: "
        "1 - breach_rate.contribution.",
        examples=[0.8],
    )


class DepartmentFigures(SupervisionFigures):
    assigned: int = Field(description="Lead assignments made in the period.")
    resolved: int = Field(description="Of those, resolved by this department and not reopened.")
    open: int = Field(description="Appeals this department leads that are open now.")
    feedback: int = Field(
        description="Answers counted in its satisfaction rate: satisfied + basically_satisfied + unsatisfied."
    )
    response_rate: float | None = Field(description="scope met / (met + breached + running past due).")
    resolution_rate: float | None = Field(description="resolved and not reopened / lead assignments.")
    satisfaction_rate: float | None = Field(
        description="(satisfied + basically_satisfied) / (satisfied + basically_satisfied + unsatisfied): the "
        "appeals' last answers given in the period; outside and unreached left out."
    )
    satisfied: int = Field(
        description="Appeals whose last answer, given in the period, was satisfied (a company's score 5, or the "
        "return visit's outcome): one answer per resolution round, the company's or the visit's, whichever came "
        "first, and only the last round's counts, in the hour it was given."
    )
    basically_satisfied: int = Field(description="As `satisfied`, basically satisfied (a company's score 4).")
    unsatisfied: int = Field(description="As `satisfied`, unsatisfied (a score 1-3) for the department's reasons.")
    outside: int = Field(
        description="As `satisfied`, unsatisfied for reasons outside the department (the office's finding): shown "
        "apart, not in the satisfaction rate."
    )
    unreached: int = Field(
        description="Appeals whose last round's return visit ended unreached, in the hour it closed: shown apart, "
        "never counted as satisfied."
    )
    redos: int = Field(
        description="Redos (重办) ordered, in the hour of the reopen, unless the office found the cause of that "
        "round's answer outside the department."
    )
    visit_attempts: int = Field(description="Attempts of the office's return visits, reached or not, of its appeals.")
    breach_rate: dict[str, float | None] = Field(
        description="Per clock: (breached + running past due) / (met + breached + running past due). `scope`, "
        "`response` and `resolution` are the department's as lead; `contribution` its own as co-handler."
    )
    clocks: dict[str, ClockCounts] = Field(
        description="Per kind of clock holding the department to account, started in the period: its lead clocks "
        "(`scope`, `response`, `resolution`) and, as co-handler, a `contribution` clock each time it joined an appeal."
    )
    first_response_seconds: Durations
    resolution_seconds: Durations
    rank: int | None = Field(description="By resolution rate, then response rate; only at or above min_volume.")


class Departments(BaseModel):
    period_from: datetime = Field(alias="from")
    period_to: datetime = Field(alias="to")
    min_volume: int
    departments: list[DepartmentFigures]


class LateDepartment(BaseModel):
    department: str
    name: str
    breached: int
    overdue: int
    breach_rate: dict[str, float | None]


class DailyReport(BaseModel):
    """The seeds' report: every sentence's figure is also a field."""

    period_from: datetime = Field(alias="from")
    period_to: datetime = Field(alias="to")
    timezone: str
    received: int
    resolved: int
    categories: list[Group]
    size_bands: list[Group]
    channels: list[Group]
    districts: list[Group]
    companies: CompanyFigures
    late_departments: list[LateDepartment]
    supervision: list[SupervisionFigures] = Field(
        description="Departments with a supervision act in the period, by each figure in turn, largest first."
    )
    text: str = Field(
        examples=[
            "Between 22:00 Tuesday 3 March 2020 and 17:00 Wednesday 4 March 2020 the platform "
            "received 463 appeals, 100 of which have been resolved. 172 were about financing "
            "(37%). 330 came from companies with fewer than 30 employees and 96 from "
            "companies with 30 to 100 employees."
        ]
    )


class ScorecardFormula(BaseModel):
    """The formula a scorecard applied: weights over rates as fractions, deductions per count."""

    from_month: str = Field(alias="from", description="The month it took effect, YYYY-MM.", examples=["2020-01"])
    weights: dict[str, float] = Field(examples=[{"response_rate": 30, "resolution_rate": 35, "satisfaction_rate": 35}])
    deductions: dict[str, float] = Field(
        examples=[{"breach": 1, "redo": 1, "overruled_send_back": 0.5, "urging_level_3": 2}]
    )


class ScorecardDepartment(BaseModel):
    """One department's month: each measure counted in the month of its own event, in the city's time."""

    department: str
    name: str
    volume: int = Field(description="Lead assignments made in the month.")
    response_rate: float | None = Field(description="As /v1/stats/departments defines it, over the month.")
    resolution_rate: float | None = Field(description="As /v1/stats/departments defines it, over the month.")
    satisfaction_rate: float | None = Field(description="As /v1/stats/departments defines it, over the month.")
    breaches: int = Field(description="Breaches of clocks holding it to account, in the month they fired.")
    redos: int = Field(description="Redos ordered in the month (not those whose round was found outside).")
    overruled_send_backs: int = Field(description="Its send-backs the office overruled in the month.")
    urgings_level_3: int = Field(description="The urging ladder's level 3 (督办) reached in the month.")
    satisfied: int
    basically_satisfied: int
    unsatisfied: int
    outside: int = Field(description="Unsatisfied for reasons outside the department: shown apart.")
    unreached: int = Field(description="Return visits ended unreached: shown apart.")
    score: float | None = Field(
        description="Σ weight × rate over the rates with a denominator, scaled by Σ weights / Σ weights of those "
        "rates, minus Σ deduction × count, to 2 decimals; null when no weighed rate has a denominator.",
        examples=[92.5],
    )
    ranked: bool = Field(description="At least minimum_volume lead assignments and a score.")
    rank: int | None = Field(description="By score, best first; equal scores share a rank (1, 2, 2, 4).")
    list_name: str | None = Field(alias="list", description="`red`, `black` or null.", examples=["red"])


class Scorecard(BaseModel):
    """The city's scorecard of a month; the departments ranked first, by rank then code, then the others."""

    month: str = Field(examples=["2026-11"])
    period_from: datetime = Field(alias="from", description="The month's first local midnight.")
    period_to: datetime = Field(alias="to", description="The next month's first local midnight.")
    timezone: str = Field(examples=["Asia/Shanghai"])
    preview: bool = Field(description="True when `formula` asked for another month's formula than the month's own.")
    minimum_volume: int
    ranked_count: int = Field(description="How many departments were ranked.")
    formula: ScorecardFormula
    departments: list[ScorecardDepartment] = Field(
        description="Every department of the city; for a department's key, its own line alone."
    )
    red_list: list[str] = Field(description="The best ranked departments, in rank order; ties at the border in.")
    black_list: list[str] = Field(description="The worst ranked departments not on the red list, worst first.")


class CityAnswers(BaseModel):
    """The city's answers of the month: the sums of its departments' scorecard figures."""

    answers: int = Field(description="satisfied + basically_satisfied + unsatisfied + outside.")
    satisfied: int
    basically_satisfied: int
    unsatisfied: int
    outside: int
    unreached: int
    satisfaction_rate: float | None
    redos: int


class MonthlyReport(BaseModel):
    """The month's report: every sentence's figure is also a field."""

    month: str
    period_from: datetime = Field(alias="from")
    period_to: datetime = Field(alias="to")
    timezone: str
    answers: CityAnswers
    scorecard: Scorecard
    text: str
