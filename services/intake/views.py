"""Intake's HTTP surface for channel adapters and companies."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, APIKeyQuery

from libs.auth import ApiKey, Principal, authenticate, require
from libs.contract import APPEALS_CONTACTS, COMPANY_MESSAGES
from libs.deadlines import deadlines
from libs.events import CompanyFeedback, CompanyInfoProvided, CompanyMessage
from libs.http import problem, problem_responses
from libs.kafka.publishing import make_event
from libs.kinds import EventType
from services.intake import codes, privacy, read_model, service
from services.intake.codes import Limit
from services.intake.models import (
    AnswerAccepted,
    AppealAccepted,
    AppealIn,
    AppealView,
    CodeCheck,
    CodeChecked,
    CodeRequest,
    CodeSent,
    FeedbackIn,
    InfoIn,
    LinkRequest,
)
from services.intake.runtime import IntakeRuntimeDep

router = APIRouter(prefix="/v1", tags=["appeals"])

ChannelCaller = Annotated[Principal, Depends(require("channel"))]  # a channel adapter's key
TOO_MANY = problem_responses({429: "A public form asked too often for this phone or address; see Retry-After"})[429]
# A public form (web) names the address of the person behind each request, for the limits on asking. Only a channel's
# key reaches the views that read it, so it is the word of a platform adapter, not of the person: web sends the
# address its own server saw, which is a trusted proxy's X-Forwarded-For only where FORWARDED_ALLOW_IPS says so.
# Without it the limits count the peer that called intake (again through a trusted proxy only).
ClientAddress = Annotated[
    str | None,
    Header(
        max_length=64,
        description="The IP address (v4 or v6) of the person using a public form, as the form's server saw it.",
        json_schema_extra={"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]},
    ),
]

PROBLEMS = problem_responses(
    {
        401: "No valid API key or status token",
        403: "The key's scope does not allow this",
        404: "No such appeal",
        409: "The appeal is not waiting for this answer",
        413: "Body over 1 MB",
        422: "Invalid fields, named in `errors`",
        503: "Broker or database unavailable, or routing too far behind (submissions); see Retry-After",
    }
)

REUSED_REF = problem_responses({409: "channel_ref was used before with another body; nothing was accepted"})

# The company's own way in, beside a key: the token given at submission (its follow link carries it too).
STATUS_TOKEN = APIKeyHeader(
    name="X-Status-Token",
    scheme_name="StatusToken",
    description="The status_token returned at submission.",
    auto_error=False,
)
TokenHeader = Annotated[str | None, Security(STATUS_TOKEN)]
# The same token in the follow link's query (`?token=`), which a company's browser opens as it is.
STATUS_TOKEN_QUERY = APIKeyQuery(
    name="token",
    scheme_name="StatusTokenQuery",
    description="The status_token in the query, as the follow link carries it.",
    auto_error=False,
)
TokenQuery = Annotated[str | None, Security(STATUS_TOKEN_QUERY)]


def _base_url(settings: Any, request: Request) -> str:
    return settings.public_base_url or str(request.base_url).rstrip("/")


def _busy(wait: int, detail: str) -> JSONResponse:
    return problem(503, detail, kind="platform-behind", headers={"Retry-After": str(wait)})


def _broker_down(settings: Any) -> JSONResponse:
    return problem(
        503,
        "the message broker did not acknowledge the write; nothing was accepted, retry",
        kind="broker-unavailable",
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )


async def _open(appeal_id: str, request: Request, runtime: Any, token: str | None, *kinds: str) -> dict[str, Any]:
    # Issued tokens are URL-safe base64; hmac.compare_digest raises TypeError on a non-ASCII str.
    token = token if token and token.isascii() else None
    # A token opens the appeal at the record's token version: one from a link sent before the company asked for
    # its link again is refused like a wrong one (401 without a key), and a token for no appeal also gets 401, so a
    # token tells nobody which appeals exist.
    record = await read_model.find_appeal(runtime.db, appeal_id) if token else None
    if record is not None and service.token_opens(runtime.settings.status_token_secret, record, token):
        return record
    principal = authenticate(request, *kinds)
    record = record or await read_model.find_appeal(runtime.db, appeal_id)
    if record is None:
        raise HTTPException(404, f"no appeal {appeal_id}")
    if principal.kind == "channel" and record["channel"] != principal.name:
        raise HTTPException(403, "this appeal was submitted through another channel")
    return record


async def opened_appeal(
    appeal_id: str,
    request: Request,
    runtime: IntakeRuntimeDep,
    # The key first: the order the document lists the ways in, and tools try them.
    _: ApiKey = None,
    x_status_token: TokenHeader = None,
    token: TokenQuery = None,
) -> dict[str, Any]:
    """The appeal, for its status token, the submitting channel's key, or an operator."""
    return await _open(appeal_id, request, runtime, x_status_token or token, "channel", "operator", "admin")


async def answerable_appeal(
    appeal_id: str,
    request: Request,
    runtime: IntakeRuntimeDep,
    # The key first: the order the document lists the ways in, and tools try them.
    _: ApiKey = None,
    x_status_token: TokenHeader = None,
    token: TokenQuery = None,
) -> dict[str, Any]:
    """The appeal, for the company itself: its status token, or the channel it came through."""
    return await _open(appeal_id, request, runtime, x_status_token or token, "channel")


@router.post(
    "/appeals",
    status_code=202,
    response_model=AppealAccepted,
    responses={**PROBLEMS, **REUSED_REF, 429: TOO_MANY},
    summary="Submit an appeal (channel key)",
)
async def submit_appeal(
    body: AppealIn,
    request: Request,
    runtime: IntakeRuntimeDep,
    principal: ChannelCaller,
    x_client_address: ClientAddress = None,
):
    """202 once the appeal is durable in Kafka; the same channel_ref with the same body again returns the same
    appeal, and with another body answers 409 (a used channel_ref never opens an appeal to a different body).

    A public form names its client's address in X-Client-Address: its submissions are limited per
    phone and per address (429 with Retry-After).
    """
    settings = runtime.settings
    beyond = service.beyond_scope(body, principal.owner)
    if beyond:
        raise HTTPException(403, beyond)
    refused = service.refusals(body, runtime.city, runtime.registry_config)
    if refused:
        raise RequestValidationError(
            [{"loc": ("body", *name.split(".")), "msg": text, "type": "value_error"} for name, text in refused.items()]
        )
    if shed := runtime.shed_wait():
        return _busy(*shed)
    if x_client_address is not None:
        phone, address = _subjects(runtime, body.contact.phone, _address(request, x_client_address))
        limits = [
            (Limit("submit-phone", settings.submissions_per_phone_per_hour, 3600), phone),
            (Limit("submit-address", settings.submissions_per_address_per_hour, 3600), address),
        ]
        wait = await codes.spend(runtime.db, limits, runtime.clock.now())
        if wait:
            return _too_many(wait, "appeals from this phone or address")
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
            link=runtime.follow_link,
            body_key=settings.status_token_secret,
        )
    except service.BrokerUnavailable:
        return _broker_down(settings)
    except service.ChannelRefReused as exc:
        return problem(409, str(exc.detail), errors=[{"field": "channel_ref", "message": str(exc.detail)}])
    accepted = AppealAccepted(
        appeal_id=result.appeal_id,
        status=result.status,
        status_url=f"{_base_url(settings, request)}/v1/appeals/{result.appeal_id}",
        status_token=service.status_token(settings.status_token_secret, result.appeal_id, version=result.token_version),
    )
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.status_url})


def _too_many(wait: int, what: str) -> JSONResponse:
    return problem(429, f"too many {what}; try again in {wait} s", headers={"Retry-After": str(wait)})


def _subjects(runtime: Any, phone: str, address: str) -> tuple[str, str]:
    """What the limits count for a phone and a client address: keyed hashes, never the values themselves."""
    secret = runtime.settings.status_token_secret
    return codes.keyed(secret, "phone", codes.normalized(phone)), codes.keyed(secret, "address", address)


def _address(request: Request, given: str | None) -> str:
    """The subject of per-address limits: the address a public form names, else the peer intake's server saw."""
    try:
        return codes.client_subject(given if given is not None else (request.client.host if request.client else ""))
    except ValueError:
        if given is not None:
            raise RequestValidationError(
                [{"loc": ("header", "x-client-address"), "msg": "must be an IP address", "type": "value_error"}]
            ) from None
        return "unknown"  # a peer without an IP address (a Unix socket): all such callers share one budget


async def _tell(runtime: Any, type_: EventType, subject: str, message: CompanyMessage) -> JSONResponse | None:
    """Hand a message to notify over Kafka; a 503 answer if the broker does not take it."""
    event = make_event(service.SOURCE, type_, subject, message)
    try:
        await service.publish_acknowledged(
            runtime.broker, COMPANY_MESSAGES, event, runtime.settings.publish_timeout_seconds
        )
    except service.BrokerUnavailable:
        return _broker_down(runtime.settings)
    return None


@router.post(
    "/verifications",
    status_code=202,
    response_model=CodeSent,
    responses={**PROBLEMS, 429: TOO_MANY},
    summary="Send a one-time code to the contact's phone (channel key)",
)
async def request_code(
    body: CodeRequest,
    request: Request,
    runtime: IntakeRuntimeDep,
    _: ChannelCaller,
    x_client_address: ClientAddress = None,
):
    """Six digits by SMS, valid 10 minutes; each phone and client address may ask only so often."""
    settings = runtime.settings
    phone, address = _subjects(runtime, body.phone, _address(request, x_client_address))
    limits = [
        (Limit("code-phone-minute", settings.codes_per_phone_per_minute, 60), phone),
        (Limit("code-phone-hour", settings.codes_per_phone_per_hour, 3600), phone),
        (Limit("code-address", settings.codes_per_address_per_hour, 3600), address),
    ]
    wait = await codes.spend(runtime.db, limits, runtime.clock.now())
    if wait:
        return _too_many(wait, "codes for this phone or address")
    key, code, expires = await codes.issue(runtime.db, settings.status_token_secret, body.phone, runtime.clock.now())
    message = CompanyMessage(phone=body.phone, language=body.language, code=code, expires_at=expires)
    failed = await _tell(runtime, EventType.company_code_issued, key, message)
    return failed or JSONResponse(CodeSent(expires_at=expires).model_dump(mode="json"), status_code=202)


@router.post(
    "/verifications/check",
    response_model=CodeChecked,
    responses={**PROBLEMS, 429: TOO_MANY},
    summary="Check the code the contact received (channel key)",
)
async def check_code(
    body: CodeCheck,
    request: Request,
    runtime: IntakeRuntimeDep,
    _: ChannelCaller,
    x_client_address: ClientAddress = None,
):
    """True once for the right code within its 10 minutes; five wrong tries void it.

    Each client address may check as many codes as the codes it may ask for have tries: one address
    cannot try its guesses on many phones' codes.
    """
    settings = runtime.settings
    address = _subjects(runtime, body.phone, _address(request, x_client_address))[1]
    limit = Limit("check-address", settings.codes_per_address_per_hour * codes.MAX_TRIES, 3600)
    wait = await codes.spend(runtime.db, [(limit, address)], runtime.clock.now())
    if wait:
        return _too_many(wait, "code checks from this address")
    now = runtime.clock.now()
    return CodeChecked(verified=await codes.check(runtime.db, settings.status_token_secret, body.phone, body.code, now))


@router.post(
    "/appeals/{appeal_id}/link",
    status_code=202,
    responses={**PROBLEMS, 429: TOO_MANY},
    summary="Send the appeal's follow link again to its phone (channel key)",
)
async def resend_link(
    appeal_id: str,
    body: LinkRequest,
    request: Request,
    runtime: IntakeRuntimeDep,
    _: ChannelCaller,
    x_client_address: ClientAddress = None,
):
    """The link goes by SMS to the appeal's own phone, and only when the phone given is that one.

    The appeal's token moves to a new version first: every link and token given out before stops working (a lost
    phone or a link read elsewhere opens nothing more), and the SMS carries the only one that does. If the broker
    does not take the message (503), the version has moved all the same; asking again sends a working link.
    The answer is the same either way, so it tells nobody whether an appeal or a phone exists.
    """
    settings = runtime.settings
    phone_key, address = _subjects(runtime, body.phone, _address(request, x_client_address))
    limits = [
        (Limit("link-phone", settings.codes_per_phone_per_hour, 3600), phone_key),
        (Limit("link-address", settings.codes_per_address_per_hour, 3600), address),
    ]
    wait = await codes.spend(runtime.db, limits, runtime.clock.now())
    if wait:
        return _too_many(wait, "requests for this phone or address")
    record = await runtime.db.appeals.find_one({"_id": appeal_id}, {"event": 1, "contact": 1, "contact_erased_at": 1})
    stored = codes.phone_of(record) if record else None
    phone = codes.normalized(stored) if stored else None
    if phone and settings.follow_url and phone == body.phone:
        version = await service.bump_token(runtime.db, appeal_id)
        link = runtime.follow_link(appeal_id, version)
        message = CompanyMessage(phone=phone, language=body.language, appeal_id=appeal_id, follow_url=link)
        key = phone_key
        failed = await _tell(runtime, EventType.company_link_requested, key, message)
        if failed:
            return failed
        # Notify's later messages carry the link too: the new one replaces the void one where it keeps it.
        if (current := await privacy.next_contact_event(runtime.db, appeal_id, runtime.follow_link)) is not None:
            try:
                await service.publish_acknowledged(
                    runtime.broker, APPEALS_CONTACTS, current, settings.publish_timeout_seconds
                )
            except service.BrokerUnavailable:
                return _broker_down(settings)
    return JSONResponse({"detail": "if the phone is the appeal's, the link is on its way by SMS"}, status_code=202)


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
