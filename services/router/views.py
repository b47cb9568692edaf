"""Router's HTTP surface for departments and operators."""

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from libs.auth import Principal
from libs.contract import department_topic
from libs.deadlines import deadlines
from libs.events import DepartmentAction
from libs.http import problem_responses
from libs.ids import new_id
from libs.kinds import AppealStatus, Category
from libs.paging import Pager, page_of, paged_responses, pager
from services.router import lifecycle, queue, registry, registry_store, service, supervision
from services.router.callers import AnyCaller, OperatorCaller, StaffOrOperator, office_or_operator
from services.router.models import (
    ActionIn,
    AppealOut,
    PreviewIn,
    PreviewOut,
    QueueRow,
)
from services.router.registry_views import uscc_of
from services.router.rules import AppealFacts, RoutingBook, route
from services.router.runtime import RouterRuntimeDep
from services.router.transitions import ActionError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

PROBLEMS = problem_responses(
    {
        401: "No valid API key",
        403: "Outside the key's department",
        404: "No such appeal or department",
        409: "The lifecycle forbids this transition",
        422: "Invalid or missing fields",
    }
)


_NOT_SHOWN = ("_id", "clocks")


def appeal_out(doc: dict, now: datetime, book: RoutingBook) -> AppealOut:
    fields = {k: v for k, v in doc.items() if k not in _NOT_SHOWN}
    closes = supervision.closes_at(doc, book)
    return AppealOut(appeal_id=doc["_id"], deadlines=deadlines(doc, now), send_back_closes_at=closes, **fields)


def _may_see(principal: Principal, doc: dict, office: str) -> bool:
    """Operators and the coordinating office read every appeal; a department reads those it handles."""
    if principal.kind in ("operator", "admin") or principal.name == office:
        return True
    return _handles(principal, doc)


def _handles(principal: Principal, doc: dict) -> bool:
    return principal.name == doc.get("lead") or principal.name in doc.get("cohandlers", [])


@router.get(
    "/departments",
    tags=["departments"],
    responses={**PROBLEMS, **paged_responses("A page of the departments")},
    summary="All departments",
)
async def list_departments(
    runtime: RouterRuntimeDep, _: AnyCaller, page: Annotated[Pager, pager(default=100, maximum=500)]
) -> list[dict]:
    """Departments with their level, district and Kafka topic, in the order of config/city.yaml; a `Link` header
    leads to the next page while there is one."""
    listed = [(n, d.code) for n, d in enumerate(runtime.book.city.departments)]
    chosen, more = page_of(listed, _positioned, page.after("departments", int, str), page.limit)
    departments = runtime.book.city.departments
    return [
        {
            "code": d.code,
            "name": d.name,
            "name_zh": d.name_zh,
            "level": d.level,
            "district": d.district,
            "counterpart_of": d.counterpart_of,
            "topic": department_topic(d.code),
        }
        for d in (departments[n] for n, _ in page.link("departments", chosen, more, _positioned))
    ]


def _positioned(item: tuple[int, str]) -> tuple[int, str]:
    """Where an entry of a configured list stands: its place in the configuration, then its name."""
    return item


@router.get(
    "/departments/{code}/appeals",
    tags=["departments"],
    response_model=list[AppealOut],
    responses={**PROBLEMS, **paged_responses("A page of the worklist")},
    summary="A department's worklist",
)
async def department_worklist(
    code: str,
    runtime: RouterRuntimeDep,
    principal: StaffOrOperator,
    page: Annotated[Pager, pager(default=100, maximum=1000)],
    status: AppealStatus | None = None,
    sort: Annotated[
        Literal["submitted", "due"],
        Query(
            description="`submitted`: oldest first; `due`: appeals with a running clock, soonest due first. A due "
            "time changes (an extension, a clock paused or restarted), so with `due` an appeal may move between "
            "pages: shown twice, or not at all, while it does."
        ),
    ] = "submitted",
    # Bounded: MongoDB's skip is a 64-bit int, and no worklist is this deep.
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, deprecated=True, description="Items to leave out; follow `Link` instead.")
    ] = 0,
):
    """Appeals the department leads or co-handles, optionally of one status, oldest first or soonest due first;
    a `Link` header leads to the next page while there is one."""
    if runtime.book.city.department(code) is None:
        raise HTTPException(404, f"no department {code}")
    if principal.kind == "department" and principal.name != code:
        raise HTTPException(403, f"a key of {principal.name} cannot read the worklist of {code}")
    key_of = service.due_key if sort == "due" else service.worklist_key
    docs, more = await service.worklist(
        runtime.db,
        code,
        status.value if status else None,
        limit=page.limit,
        after=page.after("worklist", datetime, str),
        skip=offset,
        by_due=sort == "due",
    )
    now = runtime.clock.now()
    return [appeal_out(d, now, runtime.book) for d in page.link("worklist", docs, more, key_of)]


@router.get(
    "/appeals",
    tags=["supervision"],
    response_model=list[QueueRow],
    responses={**PROBLEMS, **paged_responses("A page of the queue")},
    summary="The city queue (the coordinating office's key or an operator's)",
)
async def city_queue(
    runtime: RouterRuntimeDep,
    principal: StaffOrOperator,
    page: Annotated[Pager, pager(default=100, maximum=500)],
    state: Annotated[
        queue.QueueState | None,
        Query(
            description="overdue: a scope or resolution clock ran out while it awaits its answer; at_risk: a running "
            "clock passed its 80 % warning; extension_pending: an extension awaits the office; sent_back: a decline "
            "awaits the office's review; transfer_requested: the lead asks the office to move it; redo: redone as "
            "often as the office supervises (config/assessment.yaml). None: every open appeal, oldest first.\n\n"
            "Each state's order is by a time, then the appeal's id: the submission (none: it never changes), the "
            "first due time (overdue, at_risk), the extension's end, the send-back's, the transfer request's or the "
            "supervision's time. All but the submission can change while the appeal is in the state (an extension "
            "granted, a request made again), so in those states an appeal may move between pages."
        ),
    ] = None,
    department: Annotated[str | None, Query(max_length=64, description="A department handling it.")] = None,
    district: Annotated[str | None, Query(max_length=64)] = None,
    category: Category | None = None,
    urge_level: Annotated[
        int | None,
        Query(
            ge=1,
            le=9,
            description="Appeals whose urging reached this level or higher (1: the breach): without a state, the "
            "overdue ones; with one, those of the state.",
        ),
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=100_000, deprecated=True, description="Items to leave out; follow `Link` instead.")
    ] = 0,
):
    """Open appeals across the city in a queue state, the longest overdue or the soonest lapsing first; a `Link`
    header leads to the next page while there is one."""
    office_or_operator(principal, runtime.book.city.coordinating_office, "the city queue is")
    if department is not None and runtime.book.city.department(department) is None:
        raise HTTPException(422, f"department {department!r} is not a department of the city")
    if district is not None and runtime.book.city.unknown_district(district):
        raise HTTPException(422, f"district {district!r} is not a district of the city")
    if urge_level and state is None:
        state = "overdue"
    filters = {"department": department, "district": district, "category": category.value if category else None}
    now = runtime.clock.now()
    rows, more = await queue.city_queue(
        runtime.db,
        now,
        state,
        {k: v for k, v in filters.items() if v},
        limit=page.limit,
        after=page.after("queue", datetime, str),
        skip=offset,
        urge_level=urge_level,
    )
    return [_queue_row(row, now) for row in page.link("queue", rows, more, queue.key_of(state))]


def _queue_row(row: dict, now: datetime) -> QueueRow:
    extensions = row.get("extensions") or []
    return QueueRow(
        appeal_id=row["_id"],
        title=row["title"],
        category=row["category"],
        district=row["district"],
        enterprise_name=row.get("enterprise", {}).get("name"),
        lead=row.get("lead"),
        cohandlers=row.get("cohandlers", []),
        status=row["status"],
        submitted_at=row["submitted_at"],
        states=row["states"],
        deadlines=deadlines(row, now),
        extension=extensions[-1] if extensions else None,
        send_back=row.get("send_back"),
        transfer_request=row.get("transfer_request"),
        urge_level=row.get("urge_level"),
        urgings=len(row.get("urgings", [])),
        redo_count=row.get("redo_count", 0),
    )


@router.get(
    "/appeals/{appeal_id}",
    tags=["appeals"],
    response_model=AppealOut,
    responses=PROBLEMS,
    summary="One appeal, for the departments handling it",
)
async def get_appeal(
    appeal_id: str,
    runtime: RouterRuntimeDep,
    principal: StaffOrOperator,
):
    """The appeal with its routing; a department sees only appeals it leads or co-handles."""
    doc = await service.find(runtime.db, appeal_id)
    if doc is None:
        raise HTTPException(404, f"no appeal {appeal_id}")
    if not _may_see(principal, doc, runtime.book.city.coordinating_office):
        raise HTTPException(403, f"appeal {appeal_id} is not assigned to {principal.name}")
    if not _handles(principal, doc) and doc.get("contact"):
        # Handling departments read their appeals' contacts as their work; anyone else's reading is on record.
        log.warning(
            "a contact was read", extra={"appeal_id": appeal_id, "by": principal.label, "scope": principal.kind}
        )
    return appeal_out(doc, runtime.clock.now(), runtime.book)


@router.post(
    "/appeals/{appeal_id}/actions",
    tags=["appeals"],
    response_model=AppealOut,
    responses=PROBLEMS,
    summary="Act on an appeal (department key; an operator takes the coordinating office's actions)",
)
async def act(
    appeal_id: str,
    body: ActionIn,
    runtime: RouterRuntimeDep,
    principal: StaffOrOperator,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
):
    """Accept, decline with guidance (inside the send-back window), request information, resolve, transfer
    (inside the window), add a co-handler, ask for an extension or, past the window, for a transfer. The
    coordinating office (its key, or an operator) approves or rejects an extension, grants or refuses a transfer,
    and overrules or confirms a send-back.

    The answer is the appeal as the action left it, without deadlines: sla re-times the clocks
    after the action, so the deadlines known at this moment would be the old ones. GET the appeal
    for them a moment later.
    """
    operator = principal.kind != "department"
    if operator and body.action not in lifecycle.OFFICE_ACTIONS:
        raise HTTPException(403, f"an operator takes only the coordinating office's actions, not {body.action.value}")
    if missing := body.missing():
        raise RequestValidationError(
            [{"loc": ("body", f), "msg": f"is required to {body.action.value}", "type": "missing"} for f in missing]
        )
    acting = runtime.book.city.coordinating_office if operator else principal.owner
    fields = body.model_dump()
    if operator and not fields.get("clerk"):
        fields["clerk"] = principal.label
    action = DepartmentAction(appeal_id=appeal_id, department=acting, **fields)
    now = runtime.clock.now()
    event_id = f"http:{principal.name or principal.label}:{idempotency_key}" if idempotency_key else new_id()
    clocks = await service.clocks_for(runtime.db, action)
    try:
        doc = await service.transition(
            runtime.db,
            runtime.broker,
            appeal_id,
            lambda d: lifecycle.with_echo(
                lifecycle.decide_action(d, action, runtime.book, now, clocks=clocks, operator=operator),
                action,
                event_id,
            ),
            now,
            event_id=event_id,
        )
    except ActionError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return appeal_out(doc, now, runtime.book)


@router.get(
    "/routing/rules",
    tags=["routing"],
    responses={**PROBLEMS, **paged_responses("A page of the rules")},
    summary="The ordered routing rules",
)
async def routing_rules(
    runtime: RouterRuntimeDep, _: OperatorCaller, page: Annotated[Pager, pager(default=100, maximum=500)]
) -> list[dict]:
    """Rules in the order they are tried; the first match wins. A `Link` header leads to the next page while there
    is one."""
    rules = runtime.book.routing.rules
    listed = [(n, rule.id) for n, rule in enumerate(rules)]
    chosen, more = page_of(listed, _positioned, page.after("rules", int, str), page.limit)
    return [rules[n].model_dump() for n, _ in page.link("rules", chosen, more, _positioned)]


@router.post(
    "/routing/preview",
    tags=["routing"],
    response_model=PreviewOut,
    responses=PROBLEMS,
    summary="Which rule and policy would match, and why",
)
async def routing_preview(body: PreviewIn, runtime: RouterRuntimeDep, _: OperatorCaller):
    """Dry-run the routing for an appeal's facts; nothing is stored or published.

    The flags routing sees come from the government lists: those given in `lists`, or else those the
    registry has the company (`uscc`) on today. Flags a channel would declare are shown and ignored.
    """
    book = runtime.book
    city = book.city
    uscc = uscc_of(body.uscc) if body.uscc is not None else None
    size_band = city.size_band(body.employees)
    if body.lists is not None:
        unknown = [list_id for list_id in body.lists if book.registry.find_list(list_id) is None]
        if unknown:
            raise HTTPException(422, f"lists: no list {', '.join(unknown)}")
        lists = sorted(set(body.lists))
    elif uscc is not None:
        company = (await registry_store.companies(runtime.db, [uscc])).get(uscc)
        lists = registry.lists_on(company, runtime.clock.now().astimezone(book.tz).date())
    else:
        lists = []
    if body.department is not None and city.cannot_choose(body.department):
        raise HTTPException(422, f"department: {city.cannot_choose(body.department)}")
    flags = registry.flags_of(lists, book.registry)
    facts = AppealFacts(
        category=body.category.value,
        district=body.district,
        size_band=size_band,
        title=body.title,
        description=body.description,
        flags=tuple(sorted(flags)),
    )
    decision = route(book, facts, chosen=body.department)
    reasons = [f"flag {flag} from list {list_id}" for flag, list_id in sorted(flags.items())]
    if body.department:
        fallback = route(book, facts, exclude={body.department})
        reasons.append(
            f"if {body.department} declines, the rules give it to {fallback.lead}"
            + (f" with {', '.join(fallback.cohandlers)}" if fallback.cohandlers else "")
        )
    ignored = sorted(set(body.flags) - set(flags))
    if ignored:
        reasons.append("declared flags change nothing: " + ", ".join(ignored))
    return PreviewOut(
        lead=decision.lead,
        cohandlers=decision.cohandlers,
        rule_id=decision.rule_id,
        policies=decision.policies,
        policy_available=decision.policy_available,
        sla_profile=decision.sla_profile,
        size_band=size_band,
        flags_from_lists=flags,
        declared_flags_ignored=ignored,
        explanation=reasons + decision.explanation,
    )
