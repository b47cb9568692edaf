"""Stats' HTTP surface: summaries, series, department rates, the scorecard, the daily and monthly reports, the
operator dashboard."""

import asyncio
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from libs.auth import Principal, require
from libs.http import problem_responses
from services.stats import assessment, flows, monthly, report, service
from services.stats.appeals import NO_LIST
from services.stats.buckets import parts
from services.stats.models import (
    Companies,
    DailyReport,
    Departments,
    Dimension,
    Interval,
    MonthlyReport,
    Scorecard,
    Series,
    SeriesPoint,
    Summary,
)
from services.stats.runtime import StatsRuntime, StatsRuntimeDep

router = APIRouter(tags=["stats"])

Operators = Annotated[Principal, Depends(require("operator", "admin"))]  # an operator's or an admin's key

PROBLEMS = problem_responses(
    {401: "No valid API key", 403: "Not an operator or admin key", 422: "Invalid period or grouping"}
)
MAX_SPAN = timedelta(days=400)
# The years stats can count: a datetime reaches only year 9999 (and year 1 in UTC+8 starts in year 0), and nothing
# was submitted before 2000.
YEARS = range(2000, 9999)
# What `from`, `to`, `date` and `month` take, as the OpenAPI document states it: a day of those years (29 February
# aside, which a leap year takes too), and for a moment an hour of it on the hour, with or without its offset.
_YEAR = "(?:2[0-9]{3}|[3-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_MONTH = "(?:0[1-9]|1[0-2])"
_MONTH_DAY = "(?:{m}-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31{leap})"
_HOUR = "(?:T(?:[01][0-9]|2[0-3]):00(?::00(?:\\.0{1,6})?)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
DAY = f"^{_YEAR}-{_MONTH_DAY.format(m=_MONTH, leap='')}$"
MOMENT = f"^{_YEAR}-{_MONTH_DAY.format(m=_MONTH, leap='')}{_HOUR}$"
STATS_MONTH = f"^{_YEAR}-{_MONTH}$"
_TAKEN_DAY = re.compile(f"^{_YEAR}-{_MONTH_DAY.format(m=_MONTH, leap='|02-29')}$")
_TAKEN_MOMENT = re.compile(f"^{_YEAR}-{_MONTH_DAY.format(m=_MONTH, leap='|02-29')}{_HOUR}$")
STATIC = Path(__file__).parent / "static"


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])


def _moment(value: str, field: str, tz) -> datetime:
    """A date (its local midnight) or an ISO datetime on the hour (local time when no offset is given) of the years
    stats counts (`MOMENT`)."""
    try:
        if not _TAKEN_MOMENT.fullmatch(value):
            raise ValueError(value)
        moment = (
            datetime.combine(date.fromisoformat(value), time()) if len(value) == 10 else datetime.fromisoformat(value)
        )
    except ValueError:
        raise _invalid(
            field,
            f"expected a date (2026-03-04) or a time on the hour (2026-03-04T17:00+08:00) from {YEARS.start} to "
            f"{YEARS.stop - 1}",
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


_FROM = (
    "Where the period starts: a day (its local midnight) or an hour (local without an offset), 2000 to 9998; a day "
    "ago by default. 29 February of a leap year is taken too."
)
_TO = (
    "Where the period ends (not counted): as `from`; the coming hour by default. Not after `from`: the empty period; "
    f"over {MAX_SPAN.days} days after it: its last {MAX_SPAN.days} days. The answer's `from` and `to` say which."
)


def _hour_ceiling(at: datetime) -> datetime:
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(hours=1)


def period(runtime, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """[from, to) from the query; by default the last 24 hours up to the coming hour. A `to` not after `from` is the
    empty period at `from`; a longer one than `MAX_SPAN` is its last `MAX_SPAN` (the answer says which it counted)."""
    tz = runtime.tz
    to = _moment(end, "to", tz) if end is not None else _hour_ceiling(runtime.clock.now().astimezone(tz))
    frm = _moment(start, "from", tz) if start is not None else to - timedelta(days=1)
    if to <= frm:
        return frm, frm
    return max(frm, to - MAX_SPAN), to


async def _period_of(
    request: Request,
    start: Annotated[
        str | None,
        Query(alias="from", examples=["2026-03-03T22:00"], description=_FROM, json_schema_extra={"pattern": MOMENT}),
    ] = None,
    end: Annotated[
        str | None,
        Query(alias="to", examples=["2026-03-04T17:00"], description=_TO, json_schema_extra={"pattern": MOMENT}),
    ] = None,
):
    return period(request.app.state.runtime, start, end)


Period = Annotated[tuple[datetime, datetime], Depends(_period_of)]


async def _counts(runtime: StatsRuntime, frm: datetime, to: datetime) -> dict[str, int]:
    return await flows.counts(runtime, frm, to)


async def _departments(
    runtime: StatsRuntime, frm: datetime, to: datetime, counts: dict[str, int], latencies: bool = True
) -> list[dict[str, Any]]:
    return await flows.departments(runtime, frm, to, counts, latencies)


async def _companies(runtime: StatsRuntime, frm: datetime, to: datetime) -> list[dict[str, Any]]:
    return await service.company_rows(runtime.db, frm, to)


@router.get("/v1/stats/summary", response_model=Summary, responses=PROBLEMS, summary="Appeals in a period, grouped")
async def summary(when: Period, runtime: StatsRuntimeDep, _: Operators, group_by: Dimension | None = None):
    """Appeals submitted in [from, to) and how many are resolved, by one dimension or by all of them."""
    frm, to = when
    counts, rows = await asyncio.gather(_counts(runtime, frm, to), _companies(runtime, frm, to))
    dims = [group_by] if group_by else list(Dimension)
    return Summary.model_validate(
        {
            "from": frm,
            "to": to,
            "total": counts.get("n", 0),
            "resolved": counts.get("resolved", 0),
            "companies": report.company_figures(rows),
            "groups": {d: report.groups(counts, d.value) for d in dims},
        }
    )


@router.get("/v1/stats/series", response_model=Series, responses=PROBLEMS, summary="Appeals per hour or per day")
async def series(
    when: Period,
    runtime: StatsRuntimeDep,
    _: Operators,
    interval: Interval = Interval.hour,
    group_by: Dimension | None = None,
):
    """Appeals submitted per hour (UTC hours) or per day (local days), optionally split by one dimension."""
    frm, to = when
    step = timedelta(hours=1) if interval == Interval.hour else timedelta(days=1)
    starts = []
    at = frm
    while at < to:
        starts.append(at)
        at += step
    sums = await service.windows(runtime.db, "h:", [(at, min(at + step, to)) for at in starts], runtime.tz)
    prefix = f"{group_by.value}|" if group_by else None
    return Series(
        interval=interval,
        group_by=group_by,
        points=[
            SeriesPoint(
                start=start,
                total=c.get("n", 0),
                groups={parts(k)[1]: n for k, n in c.items() if k.startswith(prefix) and n} if prefix else {},
            )
            for start, c in zip(starts, sums, strict=True)
        ],
    )


@router.get(
    "/v1/stats/companies",
    response_model=Companies,
    responses=PROBLEMS,
    summary="Companies behind the appeals of a period, by government list",
)
async def companies(
    when: Period,
    runtime: StatsRuntimeDep,
    _: Operators,
    on_list: Annotated[
        str | None,
        Query(alias="list", description="Only appeals whose company was on this list (`none`: on no list)."),
    ] = None,
):
    """Distinct companies, those answered, those with every appeal solved, appeals per company; and per list."""
    if on_list is not None and on_list != NO_LIST and runtime.registry_config.find_list(on_list) is None:
        known = ", ".join([entry.id for entry in runtime.registry_config.lists] + [NO_LIST])
        raise _invalid("list", f"unknown list {on_list!r}; config/registry.yaml has {known}")
    frm, to = when
    rows = report.on_list(await _companies(runtime, frm, to), on_list)
    return Companies.model_validate(
        {"from": frm, "to": to, "list": on_list, **report.company_figures(rows), "lists": report.by_list(rows)}
    )


@router.get(
    "/v1/stats/departments",
    response_model=Departments,
    responses=PROBLEMS,
    summary="The three rates, breach rates and response times per department",
)
async def departments(when: Period, runtime: StatsRuntimeDep, _: Operators):
    """Rates of the work that reached each department in [from, to), as docs/domain.md defines them."""
    frm, to = when
    rows = await _departments(runtime, frm, to, await _counts(runtime, frm, to))
    return Departments.model_validate(
        {"from": frm, "to": to, "min_volume": runtime.settings.min_volume, "departments": rows}
    )


@router.get(
    "/v1/reports/daily",
    response_model=DailyReport,
    responses={
        **PROBLEMS,
        200: {
            "content": {"application/json": {}, "text/markdown": {}, "text/csv": {}},
            "description": "The report as JSON, Markdown or CSV, by the Accept header.",
        },
    },
    summary="The daily report, as the seeds write it",
)
async def daily(
    request: Request,
    runtime: StatsRuntimeDep,
    _: Operators,
    day: Annotated[
        str | None,
        Query(
            alias="date",
            description="Local day, 2000 to 9998; today by default.",
            json_schema_extra={"format": "date", "pattern": DAY},
        ),
    ] = None,
    start: Annotated[
        str | None,
        Query(alias="from", description="Instead of date: any window. " + _FROM, json_schema_extra={"pattern": MOMENT}),
    ] = None,
    end: Annotated[str | None, Query(alias="to", description=_TO, json_schema_extra={"pattern": MOMENT})] = None,
):
    """Totals, resolved, top categories with shares, size bands, channels, districts and late departments."""
    if day is not None and not _TAKEN_DAY.fullmatch(day):
        raise _invalid("date", f"a day from {YEARS.start} to {YEARS.stop - 1}, e.g. 2026-03-04")
    if start is not None or end is not None:
        frm, to = period(runtime, start, end)
    else:
        try:
            local = date.fromisoformat(day) if day else runtime.clock.now().astimezone(runtime.tz).date()
        except ValueError:
            raise _invalid("date", "29 February is a day of leap years only") from None
        frm = datetime.combine(local, time(), tzinfo=runtime.tz)
        to = frm + timedelta(days=1)
    counts, appeals = await asyncio.gather(_counts(runtime, frm, to), _companies(runtime, frm, to))
    rows = await _departments(runtime, frm, to, counts, latencies=False)
    data = report.daily_report(runtime.city, counts, rows, report.company_figures(appeals), frm, to, runtime.tz)
    accept = request.headers.get("accept", "")
    if "text/markdown" in accept:
        return PlainTextResponse(report.to_markdown(data), media_type="text/markdown; charset=utf-8")
    if "text/csv" in accept:
        return PlainTextResponse(report.to_csv(data), media_type="text/csv; charset=utf-8")
    return DailyReport.model_validate(data)


def _month(runtime: StatsRuntime, value: str | None) -> str:
    """The month asked for (checked to be one stats can count), or this month in the city."""
    if value is None:
        return flows.this_month(runtime)
    return value


Month = Annotated[
    str | None,
    Query(
        pattern=STATS_MONTH,
        description="A month, YYYY-MM, 2000 to 9998, in the city's time; this month by default.",
        examples=["2026-11"],
    ),
]


# A department reads its own line of the scorecard (the workbench shows it to its clerks); operators all of it.
ScorecardReaders = Annotated[Principal, Depends(require("operator", "admin", "department"))]


@router.get(
    "/v1/stats/scorecard",
    response_model=Scorecard,
    responses={
        **PROBLEMS,
        403: {"description": "Not an operator, admin or department key"},
    },
    summary="The city's monthly scorecard of its departments: scores, ranks, red and black lists",
)
async def scorecard(
    runtime: StatsRuntimeDep,
    caller: ScorecardReaders,
    month: Month = None,
    formula: Annotated[
        str | None,
        Query(
            pattern=STATS_MONTH,
            description="Apply the formula in effect from this month (YYYY-MM) instead of the month's own: a preview "
            "of a later formula on this month's figures. The month's own lists never change.",
        ),
    ] = None,
):
    """Per department of the city: volume, the three rates, breaches, redos, overruled send-backs, level-3 urgings,
    answers (outside and unreached apart), score and rank; the red and black lists and the formula applied. Each
    measure counts in the month of its own event, in the city's time zone. A department's key reads its own line
    alone, with the lists, the formula and how many were ranked."""
    card = await flows.scorecard(runtime, _month(runtime, month), formula)
    if caller.kind == "department":
        card = assessment.own_line(card, caller.owner)
    return Scorecard.model_validate(card)


@router.get(
    "/v1/reports/monthly",
    response_model=MonthlyReport,
    responses={
        **PROBLEMS,
        200: {
            "content": {"application/json": {}, "text/markdown": {}, "text/csv": {}},
            "description": "The report as JSON, Markdown or CSV (the scorecard, one row per department), by the "
            "Accept header.",
        },
    },
    summary="The monthly report: the city's answers, redos, and the scorecard with its lists",
)
async def monthly_report(request: Request, runtime: StatsRuntimeDep, _: Operators, month: Month = None):
    """The month's answers by outcome and satisfaction rate, redos, the red and black lists and the formula, in
    sentences, and the scorecard as a table; every figure from the month's scorecard."""
    card = await flows.scorecard(runtime, _month(runtime, month))
    data = monthly.monthly_report(card)
    accept = request.headers.get("accept", "")
    if "text/markdown" in accept:
        return PlainTextResponse(monthly.to_markdown(data), media_type="text/markdown; charset=utf-8")
    if "text/csv" in accept:
        return PlainTextResponse(monthly.to_csv(data), media_type="text/csv; charset=utf-8")
    return MonthlyReport.model_validate(data)


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The operator page; it reads the API with the operator key given after '#key='."""
    return HTMLResponse((STATIC / "dashboard.html").read_text(encoding="utf-8"))


@router.get("/dashboard/plotly.min.js", include_in_schema=False)
async def plotly_js(runtime: StatsRuntimeDep) -> Response:
    """Plotly's browser bundle, from the pinned `plotly` package."""
    return Response(
        runtime.plotly_js(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )
