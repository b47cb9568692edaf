"""Open311 GeoReport v2 facade: existing 311 channel software submits and follows appeals unchanged.

Categories are services; the enterprise fields are the services' attributes; the
channel key is the `api_key`. Submissions go through the same validation,
idempotency and durability as `POST /v1/appeals`. Errors are the spec's list of
`{code, description}`. Only the JSON format is served. The translation between
GeoReport's documents and appeals is services/intake/open311_translation.py.

Reading a request by its id needs no key, as in the spec, but without one a request
shows no company data: status, service, department and dates only. The channel's own
key (or an operator's) adds the description and the departments' answers. Listing
needs a key: a channel's lists its own requests (an operator's, every one), so no
anonymous caller learns which appeals exist and where they stand.
"""

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from libs.auth import Principal
from services.intake import read_model, service
from services.intake.open311_translation import (
    CHANGESET,
    CLOSED,
    FIELD_NAMES,
    MAX_RESULTS,
    MAX_SPAN,
    POST_ERRORS,
    READ_ERRORS,
    REQUEST_FORM,
    SPECIFICATION,
    Format,
    Open311Error,
    appeal_from_form,
    errors_response,
    json_only,
    parse_w3c,
    request_view,
    service_definition,
    service_list,
)
from services.intake.runtime import IntakeRuntimeDep

router = APIRouter(prefix="/open311/v2", tags=["open311"])


def _check_jurisdiction(runtime: Any, jurisdiction_id: str | None) -> None:
    if jurisdiction_id and jurisdiction_id != runtime.settings.open311_jurisdiction_id:
        raise Open311Error(
            404,
            f"jurisdiction_id {jurisdiction_id!r} not found; this endpoint serves "
            f"{runtime.settings.open311_jurisdiction_id!r}",
        )


def _caller(request: Request, api_key: str | None) -> Principal | None:
    """Who an `api_key` belongs to; none given is anonymous, an unknown one is refused."""
    if not api_key:
        return None
    principal = request.app.state.keys.lookup(api_key)
    if principal is None:
        raise Open311Error(403, "api_key is not valid")
    return principal


def listing_scope(principal: Principal | None) -> dict[str, Any]:
    """What a caller may list without naming ids, as a query: its channel's requests, or every one for an operator
    or an admin. Open311Error(403) for anyone else, naming what is needed."""
    if principal is None:
        raise Open311Error(
            403,
            "api_key is required to list requests (a channel's key lists that channel's requests); "
            "without one, look requests up by service_request_id, one or a comma-separated list",
        )
    if principal.kind in ("operator", "admin"):
        return {}
    if principal.kind == "channel" and principal.name:
        return {"channel": principal.name}
    raise Open311Error(
        403, f"api_key belongs to a {principal.kind}, which lists no requests; look them up by service_request_id"
    )


def _sees_all(principal: Principal | None, record: dict[str, Any]) -> bool:
    if principal is None:
        return False
    return principal.kind in ("operator", "admin") or (
        principal.kind == "channel" and principal.name == record["channel"]
    )


async def on_open311_error(_: Request, exc: Exception) -> JSONResponse:
    """Exception handler: Open311Error as the spec's error list."""
    if not isinstance(exc, Open311Error):  # registered for Open311Error only
        raise exc
    return errors_response(exc.status, exc.description)


@router.get("/discovery.{fmt}", summary="Open311 discovery", responses=READ_ERRORS)
async def discovery(fmt: Format, request: Request, runtime: IntakeRuntimeDep):
    """Where the GeoReport v2 endpoint is and what it speaks."""
    json_only(fmt)
    base = (runtime.settings.public_base_url or str(request.base_url).rstrip("/")) + "/open311/v2"
    return {
        "changeset": CHANGESET,
        "contact": runtime.settings.open311_contact,
        "key_service": "Channel keys are issued by the platform's administrators.",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": base,
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["application/json"],
            }
        ],
    }


@router.get("/services.{fmt}", summary="Open311 service list: the appeal categories", responses=READ_ERRORS)
async def services(fmt: Format, runtime: IntakeRuntimeDep, jurisdiction_id: str | None = None):
    """Every category as a service, with its group and keywords."""
    json_only(fmt)
    _check_jurisdiction(runtime, jurisdiction_id)
    return service_list(runtime.catalogue)


@router.get(
    "/services/{code}.{fmt}", summary="Open311 service definition: the enterprise attributes", responses=READ_ERRORS
)
async def service_definition_view(
    code: str, fmt: Format, runtime: IntakeRuntimeDep, jurisdiction_id: str | None = None
):
    """The attributes a request for this service carries."""
    json_only(fmt)
    _check_jurisdiction(runtime, jurisdiction_id)
    entry = runtime.catalogue.entry(code)
    if entry is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    return service_definition(entry, runtime.city)


@router.post(
    "/requests.{fmt}",
    status_code=201,
    summary="Open311: create a service request (an appeal)",
    responses=POST_ERRORS,
    openapi_extra=REQUEST_FORM,
)
async def create_request(fmt: Format, request: Request, runtime: IntakeRuntimeDep):
    """Form-encoded as the spec says; `api_key` is the channel key. 201 once the appeal is durable."""
    json_only(fmt)
    if "multipart/" in request.headers.get("content-type", ""):
        raise Open311Error(400, "send application/x-www-form-urlencoded; give files as media_url")
    form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    fields = dict(form)
    principal = _caller(request, request.query_params.get("api_key") or fields.get("api_key"))
    if principal is None:
        raise Open311Error(403, "api_key is required: the channel key issued to this 311 system")
    if principal.kind != "channel":
        raise Open311Error(403, f"api_key belongs to a {principal.kind}, not a channel")
    _check_jurisdiction(runtime, request.query_params.get("jurisdiction_id") or fields.get("jurisdiction_id"))
    code = fields.get("service_code")
    if not code:
        raise Open311Error(400, "service_code is required")
    if runtime.catalogue.entry(code) is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    appeal = appeal_from_form(form, code)
    beyond = service.beyond_scope(appeal, principal.owner)
    if beyond:
        raise Open311Error(403, beyond)
    refused = service.refusals(appeal, runtime.city, runtime.registry_config)
    if refused:
        raise Open311Error(400, "; ".join(f"{FIELD_NAMES.get(k, k)}: {v}" for k, v in refused.items()))
    settings = runtime.settings
    if shed := runtime.shed_wait():
        wait, detail = shed
        return errors_response(503, detail, headers={"Retry-After": str(wait)})
    try:
        result = await service.submit(
            runtime.db,
            runtime.broker,
            runtime.city,
            runtime.clock,
            principal.owner,
            appeal,
            publish_timeout=settings.publish_timeout_seconds,
            inserts=runtime.inserts,
            link=runtime.follow_link,
            body_key=settings.status_token_secret,
        )
    except service.BrokerUnavailable:
        return errors_response(
            503,
            "the message broker did not acknowledge the request; nothing was accepted, post it again",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    except service.ChannelRefReused as exc:
        return errors_response(409, f"{FIELD_NAMES.get('channel_ref', 'channel_ref')}: {exc.detail}")
    return JSONResponse(
        [
            {
                "service_request_id": result.appeal_id,
                "account_id": None,
                "service_notice": "Received. The responsible department is told at once and "
                "the deadlines run from now.",
                "status_token": service.status_token(
                    settings.status_token_secret, result.appeal_id, version=result.token_version
                ),
            }
        ],
        status_code=201,
    )


@router.get(
    "/requests.{fmt}", summary="Open311: service requests by id, service, date and status", responses=READ_ERRORS
)
async def list_requests(
    fmt: Format,
    request: Request,
    runtime: IntakeRuntimeDep,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    jurisdiction_id: str | None = None,
    api_key: str | None = None,
):
    """Ids override the other filters: anyone may look requests up by `service_request_id` (one or a
    comma-separated list). Listing by service, dates and status needs an `api_key`: a channel's lists that
    channel's requests, an operator's every one; at most 90 days and 1000 requests, newest first. Without a
    key, or with another kind, a list is refused (403).

    A post that was answered 503 is not listed (its record is `unsent` until a retry
    goes through).
    """
    json_only(fmt)
    _check_jurisdiction(runtime, jurisdiction_id)
    principal = _caller(request, api_key)
    query: dict[str, Any] = {"state": {"$ne": service.UNSENT}}
    ids = [i.strip() for i in (service_request_id or "").split(",") if i.strip()]
    if ids:
        query["_id"] = {"$in": ids[:MAX_RESULTS]}
    else:
        query.update(listing_scope(principal))
        end = parse_w3c(end_date, "end_date") if end_date else runtime.clock.now()
        start = parse_w3c(start_date, "start_date") if start_date else end - MAX_SPAN
        if start > end:
            raise Open311Error(400, "start_date is after end_date")
        if end - start > MAX_SPAN:
            raise Open311Error(400, "start_date to end_date may span at most 90 days")
        query["submitted_at"] = {"$gte": start, "$lte": end}
        if service_code:
            codes = [c.strip() for c in service_code.split(",") if c.strip()]
            unknown = [c for c in codes if runtime.catalogue.entry(c) is None]
            if unknown:
                raise Open311Error(404, f"service_code {', '.join(unknown)} not found")
            query["category"] = {"$in": codes}
        if status:
            wanted = {s.strip() for s in status.split(",") if s.strip()}
            if not wanted <= {"open", "closed"}:
                raise Open311Error(400, f"status {', '.join(sorted(wanted - {'open', 'closed'}))}: use open or closed")
            if wanted == {"closed"}:
                query["status"] = {"$in": [s.value for s in CLOSED]}
            elif wanted == {"open"}:
                query["status"] = {"$nin": [s.value for s in CLOSED]}
    records = await runtime.db.appeals.find(query, {"event": 0}).sort("submitted_at", -1).to_list(MAX_RESULTS)
    return [request_view(r, runtime.city, runtime.catalogue, _sees_all(principal, r)) for r in records]


@router.get("/requests/{request_id}.{fmt}", summary="Open311: one service request", responses=READ_ERRORS)
async def get_request(
    request_id: str,
    fmt: Format,
    request: Request,
    runtime: IntakeRuntimeDep,
    jurisdiction_id: str | None = None,
    api_key: str | None = None,
):
    """A list holding the one request, as the spec has it."""
    json_only(fmt)
    _check_jurisdiction(runtime, jurisdiction_id)
    principal = _caller(request, api_key)
    record = await read_model.find_appeal(runtime.db, request_id)
    if record is None:
        raise Open311Error(404, f"service_request_id {request_id!r} not found")
    return [request_view(record, runtime.city, runtime.catalogue, _sees_all(principal, record))]
