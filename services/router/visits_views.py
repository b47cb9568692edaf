"""Router's HTTP surface for return visits (回访): the office's list of visit tasks, and each attempt it records."""

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query

from libs.deadlines import aware
from libs.http import problem_responses
from libs.ids import new_id
from libs.paging import Pager, paged_responses, pager
from libs.wire import Instant
from services.router import service, visits
from services.router.callers import StaffOrOperator, office_or_operator
from services.router.models import AppealOut, AttemptIn, ReturnVisitRow
from services.router.runtime import RouterRuntimeDep
from services.router.transitions import ActionError
from services.router.views import appeal_out

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["return visits"])

PROBLEMS = problem_responses(
    {
        401: "No valid API key",
        403: "Not the coordinating office's key or an operator's",
        404: "No such appeal",
        409: "No visit is open on this appeal",
        422: "Invalid or missing fields",
    }
)

VisitState = Literal["open", "to_call", "review", "visited", "answered", "unreached"]
# The stored states each listed state reads.
STATES: dict[str, tuple[str, ...]] = {
    "open": visits.OPEN,
    "to_call": visits.OPEN,
    "review": (visits.REVIEW,),
    "visited": (visits.VISITED,),
    "answered": (visits.ANSWERED,),
    "unreached": (visits.UNREACHED,),
}
# A visitor needs the contact to call: shown on the tasks still to be done, never on those ended.
WITH_CONTACT = {*visits.OPEN, visits.REVIEW}


@router.get(
    "/return-visits",
    response_model=list[ReturnVisitRow],
    responses={**PROBLEMS, **paged_responses("A page of the visit tasks")},
    summary="Return visit tasks (the coordinating office's key or an operator's)",
)
async def list_visits(
    runtime: RouterRuntimeDep,
    principal: StaffOrOperator,
    page: Annotated[Pager, pager(default=100, maximum=500)],
    state: Annotated[
        VisitState,
        Query(
            description="open: selected and not ended; to_call: open, still silent past its call time (the office "
            "calls these); review: the company said not resolved, the office may find the cause outside the "
            "department; visited, answered (by the company), unreached."
        ),
    ] = "to_call",
    due_before: Annotated[Instant | None, Query(description="Visits due before this instant, with its offset.")] = None,
    offset: Annotated[
        int, Query(ge=0, le=100_000, deprecated=True, description="Items to leave out; follow `Link` instead.")
    ] = 0,
):
    """Visit tasks in `state`, the earliest due first, then by appeal; the contact's name and phone only on tasks
    not ended. A `Link` header leads to the next page while there is one. A visit's due time is set when its round
    begins, and a reopened appeal's next resolution begins another round: its task may then move between pages."""
    office_or_operator(principal, runtime.book.city.coordinating_office, "return visits are")
    now = runtime.clock.now()
    docs, more = await service.return_visits(
        runtime.db,
        STATES[state],
        due_before,
        now if state == "to_call" else None,
        limit=page.limit,
        after=page.after("visits", datetime, str),
        skip=offset,
    )
    rows = [_row(doc, now) for doc in page.link("visits", docs, more, service.visit_key)]
    if any(row.contact for row in rows):
        log.warning(
            "contacts were read for return visits",
            extra={"appeals": len(rows), "by": principal.label, "scope": principal.kind},
        )
    return rows


def _row(doc: dict, now: datetime) -> ReturnVisitRow:
    visit = doc["visit"]
    call_from = visit.get("call_from")
    return ReturnVisitRow(
        appeal_id=doc["_id"],
        title=doc["title"],
        category=doc["category"],
        lead=doc.get("lead"),
        status=doc["status"],
        enterprise_name=(doc.get("enterprise") or {}).get("name"),
        contact=_contact(doc) if visit["state"] in WITH_CONTACT else None,
        resolution=doc.get("resolution"),
        resolved_at=visit.get("resolved_at") or doc.get("resolved_at"),
        redo_count=doc.get("redo_count", 0),
        visit=visit,
        to_call=visit["state"] in visits.OPEN and call_from is not None and aware(call_from) <= now,
    )


def _contact(doc: dict) -> dict | None:
    contact = doc.get("contact")
    return {"name": contact.get("name"), "phone": contact.get("phone")} if contact else None


@router.post(
    "/return-visits/{appeal_id}/attempts",
    response_model=AppealOut,
    responses=PROBLEMS,
    summary="Record an attempt of a return visit (the coordinating office's key or an operator's)",
)
async def record_attempt(
    appeal_id: str,
    body: AttemptIn,
    runtime: RouterRuntimeDep,
    principal: StaffOrOperator,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
):
    """One call to the company. Not reached: the visit stays open until its attempts run out (unreached). Reached:
    satisfied or basically satisfied closes the appeal; unsatisfied at the department sends it back to the lead as a
    redo with a new resolution clock; unsatisfied for reasons outside the department closes it, reported apart. On
    a task in review (the company said not resolved) the cause alone decides: outside closes the appeal."""
    office_or_operator(principal, runtime.book.city.coordinating_office, "return visits are")
    tried = visits.Attempt(
        visitor=body.visitor,
        reached=body.reached,
        outcome=body.outcome,
        score=body.score,
        cause=body.cause,
        note=body.note,
    )
    now = runtime.clock.now()
    event_id = f"visit:{principal.name or principal.label}:{idempotency_key}" if idempotency_key else new_id()
    try:
        doc = await service.transition(
            runtime.db,
            runtime.broker,
            appeal_id,
            lambda d: visits.attempt(d, tried, runtime.book, now),
            now,
            event_id=event_id,
        )
    except ActionError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return appeal_out(doc, now, runtime.book)
