"""Intake's HTTP surface for channel adapters and companies."""

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from libs.auth import Principal, authenticate, require
from libs.deadlines import deadlines
from libs.events import CompanyFeedback, CompanyInfoProvided
from libs.http import problem, problem_responses
from services.intake import service
from services.intake.models import AnswerAccepted, AppealAccepted, AppealIn, AppealView, FeedbackIn, InfoIn
from services.intake.runtime import IntakeRuntimeDep

router = APIRouter(prefix="/v1", tags=["appeals"])

ChannelCaller = Annotated[Principal, Depends(require("channel"))]  # a channel adapter's key

PROBLEMS = problem_responses(
    {
        401: "No valid API key or status token",
        403: "The key's scope does not allow this",
        404: "No such appeal",
        409: "The appeal is not waiting for this answer",
        413: "Body over 1 MB",
        422: "Invalid fields, named in `errors`",
        503: "Broker or database unavailable",
    }
)

TokenHeader = Annotated[str | None, Header(description="The status_token returned at submission.")]


def _base_url(settings: Any, request: Request) -> str:
    return settings.public_base_url or str(request.base_url).rstrip("/")


def _broker_down(settings: Any) -> JSONResponse:
    return problem(
        503,
        "the message broker did not acknowledge the write; nothing was accepted, retry",
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )


async def _open(appeal_id: str, request: Request, runtime: Any, token: str | None, *kinds: str) -> dict[str, Any]:
    # Issued tokens are URL-safe base64; hmac.compare_digest raises TypeError on a non-ASCII str.
    token = token if token and token.isascii() else None
    by_token = service.token_opens(runtime.settings.status_token_secret, appeal_id, token)
    principal = None if by_token else authenticate(request, *kinds)
    record = await service.find_appeal(runtime.db, appeal_id)
    if record is None:
        raise HTTPException(404, f"no appeal {appeal_id}")
    if principal is not None and principal.kind == "channel" and record["channel"] != principal.name:
        raise HTTPException(403, "this appeal was submitted through another channel")
    return record


async def opened_appeal(
    appeal_id: str,
    request: Request,
    runtime: IntakeRuntimeDep,
    x_status_token: TokenHeader = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The appeal, for its status token, the submitting channel's key, or an operator."""
    return await _open(appeal_id, request, runtime, x_status_token or token, "channel", "operator", "admin")


async def answerable_appeal(
    appeal_id: str,
    request: Request,
    runtime: IntakeRuntimeDep,
    x_status_token: TokenHeader = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The appeal, for the company itself: its status token, or the channel it came through."""
    return await _open(appeal_id, request, runtime, x_status_token or token, "channel")


@router.post(
    "/appeals",
    status_code=202,
    response_model=AppealAccepted,
    responses=PROBLEMS,
    summary="Submit an appeal (channel key)",
)
async def submit_appeal(body: AppealIn, request: Request, runtime: IntakeRuntimeDep, principal: ChannelCaller):
    """202 once the appeal is durable in Kafka; the same channel_ref again returns the same appeal."""
    settings = runtime.settings
    refused = service.refusals(body, principal.owner, runtime.city, runtime.registry_config)
    if refused:
        raise RequestValidationError(
            [{"loc": ("body", name), "msg": text, "type": "value_error"} for name, text in refused.items()]
        )
    try:
        result = await service.submit(
            runtime.db,
            runtime.broker,
            runtime.city,
            runtime.clock,
            principal.owner,
            body,
            publish_timeout=settings.publish_timeout_seconds,
            inserts=runtime.inserts,
            link=partial(service.follow_link, settings.follow_url, settings.status_token_secret),
        )
    except service.BrokerUnavailable:
        return _broker_down(settings)
    accepted = AppealAccepted(
        appeal_id=result.appeal_id,
        status=result.status,
        status_url=f"{_base_url(settings, request)}/v1/appeals/{result.appeal_id}",
        status_token=service.status_token(settings.status_token_secret, result.appeal_id),
    )
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.status_url})


# The appeal a request names, once its caller may read it, or also answer it.
OpenedAppeal = Annotated[dict[str, Any], Depends(opened_appeal)]
AnswerableAppeal = Annotated[dict[str, Any], Depends(answerable_appeal)]


@router.get(
    "/appeals/{appeal_id}",
    response_model=AppealView,
    responses=PROBLEMS,
    summary="Status, departments, timeline and deadlines (channel key or status token)",
)
async def get_appeal(record: OpenedAppeal, runtime: IntakeRuntimeDep):
    """The submitting channel's key, or the status token issued for this appeal, opens it."""
    return AppealView(
        appeal_id=record["_id"],
        deadlines=deadlines(record, runtime.clock.now()),
        **{k: v for k, v in record.items() if k not in ("_id", "clocks")},
    )


async def _answer(kind: str, data, record: dict, request: Request, runtime):
    settings = runtime.settings
    try:
        event_id = await service.answer(
            runtime.db,
            runtime.broker,
            runtime.clock,
            record,
            kind,
            data,
            publish_timeout=settings.publish_timeout_seconds,
        )
    except service.AnswerRefused as exc:
        return problem(409, exc.detail)
    except service.BrokerUnavailable:
        return _broker_down(settings)
    status_url = f"{_base_url(settings, request)}/v1/appeals/{record['_id']}"
    return JSONResponse(
        AnswerAccepted(appeal_id=record["_id"], event_id=event_id, status_url=status_url).model_dump(),
        status_code=202,
        headers={"Location": status_url},
    )


@router.post(
    "/appeals/{appeal_id}/info",
    status_code=202,
    response_model=AnswerAccepted,
    responses=PROBLEMS,
    summary="Give the information a department asked for (status token or channel key)",
)
async def provide_info(body: InfoIn, request: Request, record: AnswerableAppeal, runtime: IntakeRuntimeDep):
    """Only while the appeal is `info_requested`, once per request; the resolution clock resumes."""
    data = CompanyInfoProvided(appeal_id=record["_id"], information=body.information, attachments=body.attachments)
    return await _answer("info", data, record, request, runtime)


@router.post(
    "/appeals/{appeal_id}/feedback",
    status_code=202,
    response_model=AnswerAccepted,
    responses=PROBLEMS,
    summary="Confirm or dispute the resolution (status token or channel key)",
)
async def give_feedback(body: FeedbackIn, request: Request, record: AnswerableAppeal, runtime: IntakeRuntimeDep):
    """Only after resolution, once per resolution: `resolved: true` closes, `false` reopens to the lead."""
    data = CompanyFeedback(
        appeal_id=record["_id"], resolved=body.resolved, satisfaction=body.satisfaction, comment=body.comment
    )
    return await _answer("feedback", data, record, request, runtime)
