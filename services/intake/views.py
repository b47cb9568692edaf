"""Intake's HTTP surface for channel adapters and companies."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from libs.app import get_runtime
from libs.auth import Principal, authenticate, require
from libs.http import problem, problem_responses
from services.intake import service
from services.intake.models import AppealAccepted, AppealIn, AppealView

router = APIRouter(prefix="/v1", tags=["appeals"])

PROBLEMS = problem_responses({
    401: "No valid API key", 403: "The key's scope does not allow this", 404: "No such appeal",
    413: "Body over 1 MB", 422: "Invalid fields, named in `errors`", 503: "Broker or database unavailable",
})


@router.post("/appeals", status_code=202, response_model=AppealAccepted, responses=PROBLEMS,
             summary="Submit an appeal (channel key)")
async def submit_appeal(body: AppealIn, request: Request, runtime=Depends(get_runtime),
                        principal: Principal = Depends(require("channel")),
                        traceparent: Annotated[str | None, Header()] = None):
    """202 once the appeal is durable in Kafka; the same channel_ref again returns the same appeal."""
    settings = runtime.settings
    try:
        result = await service.submit(runtime.db, runtime.broker, runtime.city, runtime.clock, principal.name,
                                      body, publish_timeout=settings.publish_timeout_seconds,
                                      traceparent=traceparent)
    except service.BrokerUnavailable:
        return problem(503, "the message broker did not acknowledge the appeal; nothing was accepted, "
                       "retry with the same channel_ref", headers={"Retry-After": str(settings.retry_after_seconds)})
    base = settings.public_base_url or str(request.base_url).rstrip("/")
    accepted = AppealAccepted(appeal_id=result.appeal_id, status=result.status,
                              status_url=f"{base}/v1/appeals/{result.appeal_id}",
                              status_token=service.status_token(settings.status_token_secret, result.appeal_id))
    return JSONResponse(accepted.model_dump(), status_code=202,
                        headers={"Location": accepted.status_url})


@router.get("/appeals/{appeal_id}", response_model=AppealView, responses=PROBLEMS,
            summary="Status and timeline of an appeal (channel key or status token)")
async def get_appeal(appeal_id: str, request: Request, runtime=Depends(get_runtime),
                     x_status_token: Annotated[str | None, Header()] = None, token: str | None = None):
    """The submitting channel's key, or the status token issued for this appeal, opens it."""
    presented = x_status_token or token
    by_token = service.token_opens(runtime.settings.status_token_secret, appeal_id, presented)
    principal = None if by_token else authenticate(request, "channel", "operator", "admin")
    record = await service.find_appeal(runtime.db, appeal_id)
    if record is None:
        raise HTTPException(404, f"no appeal {appeal_id}")
    if principal is not None and principal.kind == "channel" and record["channel"] != principal.name:
        raise HTTPException(403, "this appeal was submitted through another channel")
    return AppealView(appeal_id=record["_id"], **{k: v for k, v in record.items() if k != "_id"})
