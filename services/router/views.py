"""Router's HTTP surface for departments and operators."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query

from libs.auth import Principal, require
from libs.contract import department_topic
from libs.events import AppealStatus, DepartmentAction
from libs.http import problem_responses
from services.router import lifecycle, service
from services.router.models import ActionIn, AppealOut, PreviewIn, PreviewOut
from services.router.rules import AppealFacts, route
from services.router.runtime import RouterRuntimeDep

router = APIRouter(prefix="/v1")

AnyCaller = Annotated[
    Principal, Depends(require("department", "operator", "admin", "channel"))
]  # any key but a liaison's
DepartmentCaller = Annotated[Principal, Depends(require("department"))]  # a department's key
OperatorCaller = Annotated[Principal, Depends(require("operator", "admin"))]  # an operator's or an admin's key
StaffOrOperator = Annotated[
    Principal, Depends(require("department", "operator", "admin"))
]  # a department's, an operator's or an admin's key

PROBLEMS = problem_responses(
    {
        401: "No valid API key",
        403: "Outside the key's department",
        404: "No such appeal or department",
        409: "The lifecycle forbids this transition",
        422: "Invalid or missing fields",
    }
)


def _out(doc: dict) -> AppealOut:
    return AppealOut(appeal_id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


def _may_see(principal: Principal, doc: dict) -> bool:
    if principal.kind in ("operator", "admin"):
        return True
    return principal.name == doc.get("lead") or principal.name in doc.get("cohandlers", [])


@router.get("/departments", tags=["departments"], responses=PROBLEMS, summary="All departments")
async def list_departments(runtime: RouterRuntimeDep, _: AnyCaller) -> list[dict]:
    """Departments with their level, district and Kafka topic."""
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
        for d in runtime.book.city.departments
    ]


@router.get(
    "/departments/{code}/appeals",
    tags=["departments"],
    response_model=list[AppealOut],
    responses=PROBLEMS,
    summary="A department's worklist",
)
async def department_worklist(
    code: str,
    runtime: RouterRuntimeDep,
    principal: StaffOrOperator,
    status: AppealStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    # Bounded: MongoDB's skip is a 64-bit int, and no worklist is this deep.
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
):
    """Appeals the department leads or co-handles, optionally of one status."""
    if runtime.book.city.department(code) is None:
        raise HTTPException(404, f"no department {code}")
    if principal.kind == "department" and principal.name != code:
        raise HTTPException(403, f"a key of {principal.name} cannot read the worklist of {code}")
    docs = await service.worklist(runtime.db, code, status.value if status else None, limit, offset)
    return [_out(d) for d in docs]


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
    if not _may_see(principal, doc):
        raise HTTPException(403, f"appeal {appeal_id} is not assigned to {principal.name}")
    return _out(doc)


@router.post(
    "/appeals/{appeal_id}/actions",
    tags=["appeals"],
    response_model=AppealOut,
    responses=PROBLEMS,
    summary="Act on an appeal (department key)",
)
async def act(
    appeal_id: str,
    body: ActionIn,
    runtime: RouterRuntimeDep,
    principal: DepartmentCaller,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
):
    """Accept, decline with guidance, request information, resolve, transfer or add a co-handler."""
    action = DepartmentAction(appeal_id=appeal_id, department=principal.owner, **body.model_dump())
    now = runtime.clock.now()
    event_id = f"http:{principal.name}:{idempotency_key}" if idempotency_key else None
    try:
        doc = await service.transition(
            runtime.db,
            runtime.broker,
            appeal_id,
            lambda d: lifecycle.decide_action(d, action, runtime.book, now),
            now,
            event_id=event_id,
        )
    except lifecycle.ActionError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return _out(doc)


@router.get("/routing/rules", tags=["routing"], responses=PROBLEMS, summary="The ordered routing rules")
async def routing_rules(runtime: RouterRuntimeDep, _: OperatorCaller) -> list[dict]:
    """Rules in the order they are tried; the first match wins."""
    return [rule.model_dump() for rule in runtime.book.routing.rules]


@router.post(
    "/routing/preview",
    tags=["routing"],
    response_model=PreviewOut,
    responses=PROBLEMS,
    summary="Which rule and policy would match, and why",
)
async def routing_preview(body: PreviewIn, runtime: RouterRuntimeDep, _: OperatorCaller):
    """Dry-run the routing for an appeal's facts; nothing is stored or published."""
    city = runtime.book.city
    size_band = city.size_band(body.employees)
    decision = route(
        runtime.book,
        AppealFacts(
            category=body.category.value,
            district=body.district,
            size_band=size_band,
            title=body.title,
            description=body.description,
            flags=tuple(body.flags),
        ),
    )
    return PreviewOut(
        lead=decision.lead,
        cohandlers=decision.cohandlers,
        rule_id=decision.rule_id,
        policies=decision.policies,
        policy_available=decision.policy_available,
        sla_profile=decision.sla_profile,
        size_band=size_band,
        explanation=decision.explanation,
    )
