"""The company portal's appeal pages: following an appeal with its link, answering the department's request for
information, feedback on the resolution, and correcting the contact."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from services.web.answers import APPEAL_ID, detail, see_other
from services.web.i18n import t
from services.web.pages import csrf_ok, lang_of, problem_page, render
from services.web.portal import errors_of, keep_token, said_in, token_cookie
from services.web.runtime import WebRuntime, WebRuntimeDep
from services.web.upstream import Unavailable

router = APIRouter(include_in_schema=False)

# The contact form of an appeal's page: the submit form's names (so its labels and errors), without the prefix at
# intake ("phone" in its 422 answers).
CONTACT_FIELDS = ("name", "phone", "email")


@router.get("/appeals/{appeal_id}")
async def follow(
    appeal_id: str,
    request: Request,
    runtime: WebRuntimeDep,
    token: str | None = None,
    new: str | None = None,
    sent: str | None = None,
    corrected: str | None = None,
):
    """The company's page of its appeal, opened by the link of its SMS, e-mail or WeChat message."""
    lang = lang_of(request)
    if not APPEAL_ID.match(appeal_id):
        return problem_page(request, runtime, 404, t(lang, "not_found"), t(lang, "wrong_link"))
    if token:
        # The token moves from the link into a cookie, so it stays out of the address bar, history and referrers.
        clean = see_other(f"/appeals/{appeal_id}")
        keep_token(request, clean, appeal_id, token)
        return clean
    kept = request.cookies.get(token_cookie(appeal_id))
    if not kept:
        return problem_page(request, runtime, 401, t(lang, "appeal"), t(lang, "need_link"))
    response = await runtime.upstream.appeal(appeal_id, kept)
    if response.status_code != 200:
        return problem_page(request, runtime, 403, t(lang, "appeal"), t(lang, "wrong_link"))
    return await _follow_page(
        request, runtime, response.json(), kept, new=bool(new), sent=bool(sent), corrected=bool(corrected)
    )


async def _kept_contact(runtime: WebRuntime, appeal_id: str, token: str) -> dict[str, Any] | None:
    """Intake's answer on the appeal's contact (`contact`, `erased_at`); None when it gives none just now, and the
    rest of the page shows without it."""
    try:
        response = await runtime.upstream.contact(appeal_id, token)
    except Unavailable:
        return None
    return response.json() if response.status_code == 200 else None


async def _follow_page(
    request: Request,
    runtime: WebRuntime,
    appeal: dict[str, Any],
    token: str,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The appeal's page; `values` are the contact form's as sent, when they come back with intake's errors."""
    resolution_clock = next((d for d in appeal.get("deadlines", []) if d["clock"] == "resolution"), None)
    # The department's request itself: not an entry that only kept the status (an urging, a co-handler's part).
    asked = [
        e
        for e in appeal.get("timeline", [])
        if e["status"] == "info_requested" and e.get("type") in (None, "appeal.info_requested.v1")
    ]
    link = str(request.base_url).rstrip("/") + f"/appeals/{appeal['appeal_id']}?token={token}"
    kept = await _kept_contact(runtime, appeal["appeal_id"], token)
    contact = (kept or {}).get("contact") or {}
    return render(
        request,
        runtime,
        "follow.html",
        status_code,
        appeal=appeal,
        resolution_clock=resolution_clock,
        asked=asked[-1] if asked else None,
        link=link,
        kept=kept,
        values=values or {f"contact.{name}": contact.get(name) or "" for name in CONTACT_FIELDS},
        visit_rules=runtime.assessment.return_visits,
        errors=errors or {},
        **extra,
    )


async def _opened(appeal_id: str, request: Request, runtime: WebRuntime) -> tuple[str, FormData] | Response:
    """The appeal's token (its cookie) and the posted form, or the page saying why the form is not taken: no link
    opened this appeal in this browser, or the form's CSRF token is not this browser's."""
    lang = lang_of(request)
    form = await request.form()
    token = request.cookies.get(token_cookie(appeal_id))
    if not APPEAL_ID.match(appeal_id) or not token:
        return problem_page(request, runtime, 401, t(lang, "appeal"), t(lang, "need_link"))
    if not csrf_ok(request, runtime, form):
        return problem_page(request, runtime, 403, t(lang, "refused"), t(lang, "bad_form"))
    return token, form


async def _again(
    request: Request,
    runtime: WebRuntime,
    appeal_id: str,
    token: str,
    status_code: int,
    errors: dict[str, str],
    values: dict[str, str] | None = None,
) -> Response:
    """The appeal's page once more, as it is now, with the errors of the form just sent (and what it held)."""
    current = await runtime.upstream.appeal(appeal_id, token)
    if current.status_code != 200:
        lang = lang_of(request)
        return problem_page(request, runtime, 403, t(lang, "appeal"), t(lang, "wrong_link"))
    return await _follow_page(
        request, runtime, current.json(), token, errors=errors, values=values, status_code=status_code
    )


async def _answer(
    appeal_id: str,
    request: Request,
    runtime: WebRuntime,
    kind: str,
    body_of: Callable[[FormData], tuple[dict[str, Any], dict[str, str]]],
) -> Response:
    opened = await _opened(appeal_id, request, runtime)
    if isinstance(opened, Response):
        return opened
    token, form = opened
    body, errors = body_of(form)
    if not errors:
        response = await runtime.upstream.answer(appeal_id, token, kind, body)
        if response.status_code == 202:
            return see_other(f"/appeals/{appeal_id}?sent=1")
        if response.status_code == 422:
            errors, other = errors_of(response.json())
            errors = errors or {kind: "; ".join(other)}
        else:
            errors = {kind: detail(response.json())}
    return await _again(request, runtime, appeal_id, token, 422, errors)


@router.post("/appeals/{appeal_id}/info")
async def provide_info(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """The company answers the department's request for information."""

    def body_of(form) -> tuple[dict[str, Any], dict[str, str]]:
        information = str(form.get("information", "")).strip()
        return {"information": information}, ({} if information else {"info": "must not be empty"})

    return await _answer(appeal_id, request, runtime, "info", body_of)


@router.post("/appeals/{appeal_id}/feedback")
async def give_feedback(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """The company confirms the resolution or asks for the appeal to be reopened, with a satisfaction score."""

    def body_of(form) -> tuple[dict[str, Any], dict[str, str]]:
        solved, score = form.get("resolved"), str(form.get("satisfaction", ""))
        if solved not in ("yes", "no") or score not in ("1", "2", "3", "4", "5"):
            return {}, {"feedback": "choose whether it is solved and a score from 1 to 5"}
        body: dict[str, Any] = {"resolved": solved == "yes", "satisfaction": int(score)}
        if str(form.get("comment", "")).strip():
            body["comment"] = str(form["comment"]).strip()
        return body, {}

    return await _answer(appeal_id, request, runtime, "feedback", body_of)


def _contact_body(values: dict[str, str], kept: dict[str, Any] | None) -> dict[str, Any]:
    """Intake's body for a correction: the form's name, phone and e-mail (none when left empty); a WeChat open id the
    contact came with stays, for the form does not show it and intake replaces the whole contact."""
    body: dict[str, Any] = {"name": values["contact.name"], "phone": values["contact.phone"]}
    if values["contact.email"]:
        body["email"] = values["contact.email"]
    if kept and kept.get("wechat_openid"):
        body["wechat_openid"] = kept["wechat_openid"]
    return body


def _contact_errors(payload: Any) -> dict[str, str]:
    """Intake's 422 on a correction, by the form's fields ("phone" lands on `contact.phone`)."""
    errors = payload.get("errors", []) if isinstance(payload, dict) else []
    prefixed = [{**e, "field": f"contact.{e.get('field', '')}"} for e in errors if isinstance(e, dict)]
    by_field, other = errors_of({"errors": prefixed})
    if other or not by_field:
        by_field["contact"] = "; ".join(other) or detail(payload)
    return by_field


@router.post("/appeals/{appeal_id}/contact")
async def correct_contact(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """The company corrects the contact kept for its appeal; intake passes it on to the departments and notify."""
    lang = lang_of(request)
    opened = await _opened(appeal_id, request, runtime)
    if isinstance(opened, Response):
        return opened
    token, form = opened
    values = {f"contact.{name}": str(form.get(f"contact.{name}", "")).strip() for name in CONTACT_FIELDS}
    kept = await runtime.upstream.contact(appeal_id, token)
    if kept.status_code != 200:
        return problem_page(request, runtime, 403, t(lang, "appeal"), t(lang, "wrong_link"))
    response = await runtime.upstream.correct_contact(
        appeal_id, token, _contact_body(values, kept.json().get("contact"))
    )
    if response.status_code == 202:
        return see_other(f"/appeals/{appeal_id}?corrected=1#contact")
    if response.status_code in (401, 403, 404):
        return problem_page(request, runtime, 403, t(lang, "appeal"), t(lang, "wrong_link"))
    # 409: erased meanwhile, and the page says so; 422: intake's words beside the fields, as they were typed.
    if response.status_code == 422:
        errors = said_in(lang, _contact_errors(response.json()))
        errors.setdefault("contact", t(lang, "fix_fields"))
    else:
        errors = {} if response.status_code == 409 else {"contact": detail(response.json())}
    status_code = 409 if response.status_code == 409 else 422
    return await _again(request, runtime, appeal_id, token, status_code, errors, values)
