"""SLA's HTTP surface: an appeal's clocks, the work at risk, the calendars."""

import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from libs.auth import Principal, require
from libs.http import problem_responses
from libs.paging import Pager, page_of, paged_responses, pager
from services.sla import clocks, service
from services.sla.models import AppealClocks, CalendarView, ClockView
from services.sla.runtime import SlaRuntimeDep

router = APIRouter(prefix="/v1", tags=["sla"])

StaffOrOperator = Annotated[
    Principal, Depends(require("department", "operator", "admin"))
]  # a department's, an operator's or an admin's key

PROBLEMS = problem_responses(
    {
        401: "No valid API key",
        403: "Outside the key's department",
        404: "No clocks for this appeal",
        422: "Invalid parameters",
    }
)
# At most some three years ahead in any unit (99,999,999 s, 999,999 m, 9,999 h, 999 d): far beyond any SLA target,
# and bounded in the pattern itself, so the document says it (an unbounded `within` overflowed timedelta, a 500).
_WITHIN = re.compile(r"^([0-9]{1,8})(s)$|^([0-9]{1,6})(m)$|^([0-9]{1,4})(h)$|^([0-9]{1,3})(d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def human(seconds: float) -> str:
    """'1d 2h 5m' for people; negative values read as overdue."""
    sign, seconds = ("overdue ", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v] or [f"{secs}s"]
    return sign + " ".join(parts)


def _view(doc: dict, runtime) -> ClockView:
    calendar = runtime.book.calendars.named(doc["calendar"])
    left = clocks.remaining(doc, calendar, runtime.clock.now())
    return ClockView(
        clock_id=doc["_id"],
        clock=doc["clock"],
        department=doc["department"],
        state=doc["state"],
        target=doc["target"],
        calendar=doc["calendar"],
        sla_profile=doc["sla_profile"],
        started_at=doc["started_at"],
        due_at=doc.get("due_at"),
        original_due_at=doc.get("original_due_at"),
        remaining_seconds=round(left, 3),
        remaining=human(left),
        paused=doc["state"] == "paused",
        breached=100 in doc["levels_fired"],
        warnings_fired=doc["levels_fired"],
        urge_level=max(doc.get("urges_fired") or [1]) if doc["state"] == "breached" else None,
        next_urge_at=doc.get("next_fire_at") if doc.get("next_urge") else None,
        ended_at=doc.get("ended_at"),
    )


@router.get(
    "/appeals/{appeal_id}/sla", response_model=AppealClocks, responses=PROBLEMS, summary="Every clock of an appeal"
)
async def appeal_clocks(appeal_id: str, runtime: SlaRuntimeDep, principal: StaffOrOperator):
    """State, start, due time, remaining time, pause and breach of each clock."""
    docs = await service.clocks_of(runtime.db, appeal_id)
    if not docs:
        raise HTTPException(404, f"no clocks for appeal {appeal_id}")
    if principal.kind == "department" and principal.name not in {d["department"] for d in docs}:
        raise HTTPException(403, f"appeal {appeal_id} has no clock of {principal.name}")
    return AppealClocks(appeal_id=appeal_id, clocks=[_view(d, runtime) for d in docs])


@router.get(
    "/sla/at-risk",
    response_model=list[ClockView],
    responses={**PROBLEMS, **paged_responses("A page of the clocks")},
    summary="Running clocks due soon or overdue",
)
async def clocks_at_risk(
    runtime: SlaRuntimeDep,
    principal: StaffOrOperator,
    page: Annotated[Pager, pager(default=200, maximum=1000)],
    department: str | None = None,
    within: Annotated[str, Query(pattern=_WITHIN.pattern, examples=["4h"])] = "24h",
):
    """Clocks whose due time falls within `within` (30m, 4h, 2d) from now, overdue ones first, then by clock id; a
    `Link` header leads to the next page while there is one. A due time moves when a clock pauses or its deadline
    is extended, so a clock may move between pages."""
    if principal.kind == "department":
        if department not in (None, principal.name):
            raise HTTPException(403, f"a key of {principal.name} cannot see the clocks of {department}")
        department = principal.name
    match = _WITHIN.match(within)
    if match is None:  # the query pattern refuses it first
        raise HTTPException(422, f"within {within!r} is not like 30m, 4h or 2d")
    amount, unit = [part for part in match.groups() if part is not None]
    span = timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    found, more = await service.at_risk(
        runtime.db, department, runtime.clock.now() + span, limit=page.limit, after=page.after("at-risk", datetime, str)
    )
    return [_view(d, runtime) for d in page.link("at-risk", found, more, service.clock_key)]


@router.get(
    "/calendars",
    response_model=list[CalendarView],
    responses=paged_responses("A page of the calendars"),
    summary="Business calendars in use",
)
async def calendars(runtime: SlaRuntimeDep, page: Annotated[Pager, pager(default=100, maximum=500)]):
    """Office hours, holidays and make-up working days of every calendar for the coming year, in the order of
    config/calendars.yaml; a `Link` header leads to the next page while there is one."""
    today = runtime.clock.now().date()
    listed = [(n, name) for n, name in enumerate(runtime.book.calendars)]
    chosen, more = page_of(listed, _positioned, page.after("calendars", int, str), page.limit)
    views = []
    for _, name in page.link("calendars", chosen, more, _positioned):
        cal = runtime.book.calendars[name]
        views.append(
            CalendarView(
                name=name,
                description=cal.config.description,
                timezone=cal.config.timezone,
                country=cal.config.country,
                office_hours=[h.model_dump() for h in cal.config.office_hours],
                working_day_hours=round(cal.day_seconds / 3600, 2),
                **cal.upcoming(today, 366),
            )
        )
    return views


def _positioned(item: tuple[int, str]) -> tuple[int, str]:
    """Where a calendar stands: its place in the configuration, then its name."""
    return item
