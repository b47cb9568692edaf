"""The company portal: submit an appeal, follow it with its link, answer, give feedback, correct the contact."""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from libs import phones
from services.web import answers, pages
from services.web.answers import APPEAL_ID, detail, see_other
from services.web.i18n import t
from services.web.pages import csrf_ok, lang_of, problem_page, render
from services.web.runtime import WebRuntime, WebRuntimeDep
from services.web.session import PORTAL_COOKIE, new_portal_session
from services.web.upstream import Unavailable

router = APIRouter(include_in_schema=False)

# Form fields as intake names them in its 422 answers ("enterprise.uscc"), so each error lands beside its field.
TEXT_FIELDS = (
    "enterprise.uscc",
    "enterprise.name",
    "enterprise.employees",
    "enterprise.industry",
    "enterprise.district",
    "contact.name",
    "contact.phone",
    "contact.email",
    "category",
    "title",
    "description",
    "attachments",
    "department",
    "code",
)
# The contact form of an appeal's page: the submit form's names (so its labels and errors), without the prefix at
# intake ("phone" in its 422 answers).
CONTACT_FIELDS = ("name", "phone", "email")
# A phone proven with a code stays proven in this browser for half an hour (a sealed cookie).
VERIFIED_COOKIE = "verified"
VERIFIED_SECONDS = 1800
# The browser's portal session, of which each appeal's channel_ref is made (see Sealer.channel_ref); a day.
PORTAL_SECONDS = 24 * 3600


def _errors_of(response_json: Any) -> tuple[dict[str, str], list[str]]:
    """Intake's 422 problem as messages by the portal's form fields, and those that belong to no field."""
    return answers.errors_of(response_json, TEXT_FIELDS)


@router.get("/")
async def home() -> RedirectResponse:
    """The portal's front page is the form."""
    return see_other("/appeals/new")


@router.get("/lang/{lang}")
async def switch_language(lang: str, request: Request, next_url: Annotated[str | None, Query(alias="next")] = None):
    """Switch between Chinese and English and go back to the page (the workbench's pages link here too)."""
    return pages.lang_cookie(see_other(pages.safe_next(next_url)), lang, request)


def _client(request: Request) -> str:
    """The visitor's address for intake's limits: the peer of the connection, or the address a trusted proxy
    passed (uvicorn believes X-Forwarded-For only from WEB_FORWARDED_ALLOW_IPS); empty if there is none."""
    return request.client.host if request.client else ""


def _portal_session(request: Request, runtime: WebRuntime) -> str | None:
    sealed = runtime.sealer.open_value(request.cookies.get(PORTAL_COOKIE), PORTAL_SECONDS)
    session = sealed.get("session") if sealed else None
    return session if isinstance(session, str) else None


def _keep_portal_session(request: Request, runtime: WebRuntime, response: Response, session: str) -> Response:
    response.set_cookie(
        PORTAL_COOKIE,
        runtime.sealer.seal_value({"session": session}),
        max_age=PORTAL_SECONDS,
        path="/appeals",
        httponly=True,
        samesite="strict",
        secure=pages.secure(request),
    )
    return response


def _same_phone(a: str | None, b: str | None) -> bool:
    """Whether two phones as typed are one number (`138 0013 8000` and `+8613800138000` are)."""
    if not a or not b:
        return False
    try:
        return phones.e164(a) == phones.e164(b)
    except ValueError:
        return a == b


def _verified_phone(request: Request, runtime: WebRuntime) -> str | None:
    sealed = runtime.sealer.open_value(request.cookies.get(VERIFIED_COOKIE), VERIFIED_SECONDS)
    return str(sealed["phone"]) if sealed else None


def _remember_verified(request: Request, runtime: WebRuntime, response: Response, phone: str) -> None:
    response.set_cookie(
        VERIFIED_COOKIE,
        runtime.sealer.seal_value({"phone": phone}),
        max_age=VERIFIED_SECONDS,
        path="/appeals",
        httponly=True,
        samesite="strict",
        secure=pages.secure(request),
    )


def _wait_words(lang: str, seconds: str) -> str:
    return f"请求过于频繁，请 {seconds} 秒后再试。" if lang == "zh" else f"Too many requests: try again in {seconds} s."


def _too_many(page: Response, upstream: Any) -> Response:
    page.headers["Retry-After"] = upstream.headers.get("retry-after", "60")
    return page


def _said_in(lang: str, errors: dict[str, str]) -> dict[str, str]:
    """Intake words its errors in English; a Chinese page says which field is wrong in Chinese first."""
    return {
        name: (f"{t('zh', 'invalid')}（{text}）" if lang == "zh" and text.isascii() else text)
        for name, text in errors.items()
    }


def _form_page(request: Request, runtime: WebRuntime, values: dict[str, str], status_code: int = 200, **extra: Any):
    lang = lang_of(request)
    errors = _said_in(lang, extra.pop("errors", {}))
    departments = [d for d in runtime.city.departments if not runtime.city.cannot_choose(d.code)]
    verified = extra.pop("verified", _verified_phone(request, runtime))
    page = render(
        request,
        runtime,
        "submit.html",
        status_code,
        values=values,
        districts=[(d.code, (d.name_zh or d.name) if lang == "zh" else d.name) for d in runtime.city.districts],
        categories=[
            (c.code.value, (c.name_zh or c.name) if lang == "zh" else c.name, c.description)
            for c in runtime.catalogue.categories
        ],
        departments=[(d.code, (d.name_zh or d.name) if lang == "zh" else d.name) for d in departments],
        errors=errors,
        general=extra.pop("general", []),
        # The form's phone as typed when it is the proven one, whatever the form it was proven in.
        verified=values.get("contact.phone") if _same_phone(verified, values.get("contact.phone")) else verified,
        **extra,
    )
    return _keep_portal_session(request, runtime, page, _portal_session(request, runtime) or new_portal_session())


@router.get("/appeals/new")
async def new_appeal(request: Request, runtime: WebRuntimeDep):
    """The form a company fills in."""
    return _form_page(request, runtime, {})


def _appeal_body(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Intake's body from the form's fields, and what cannot even be sent (a count that is not a number)."""
    errors: dict[str, str] = {}
    employees: int | str = values.get("enterprise.employees", "").strip()
    try:
        employees = int(employees)
    except ValueError:
        errors["enterprise.employees"] = "must be a whole number"
    contact = {"name": values.get("contact.name", ""), "phone": values.get("contact.phone", "")}
    if values.get("contact.email", "").strip():
        contact["email"] = values["contact.email"].strip()
    body: dict[str, Any] = {
        "enterprise": {
            "uscc": values.get("enterprise.uscc", ""),
            "name": values.get("enterprise.name", ""),
            "employees": employees,
            "industry": values.get("enterprise.industry", ""),
            "district": values.get("enterprise.district", ""),
        },
        "contact": contact,
        "category": values.get("category", ""),
        "title": values.get("title", ""),
        "description": values.get("description", ""),
        "attachments": [line.strip() for line in values.get("attachments", "").splitlines() if line.strip()],
    }
    if values.get("department"):
        body["department"] = values["department"]
    return body, errors


@router.post("/appeals/code")
async def send_code(request: Request, runtime: WebRuntimeDep):
    """Send a one-time code to the phone in the form, and show the form again as it was."""
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    lang = lang_of(request)
    if not csrf_ok(request, runtime, form):
        return _form_page(request, runtime, values, 403, general=[t(lang, "bad_form")])
    response = await runtime.upstream.request_code(values.get("contact.phone", ""), lang, _client(request))
    if response.status_code == 202:
        return _form_page(request, runtime, values, notice=t(lang, "code_sent"))
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "60")
        page = _form_page(request, runtime, values, 429, errors={"code": _wait_words(lang, wait)})
        return _too_many(page, response)
    by_field, other = _errors_of(response.json())
    errors = {"contact.phone": by_field.get("phone") or "; ".join(other) or detail(response.json())}
    return _form_page(request, runtime, values, 422, errors=errors)


async def _phone_proven(request: Request, runtime: WebRuntime, values: dict[str, str]) -> str | None:
    """None if the form's phone is proven (by this browser before, or by the code given now), else the error."""
    lang = lang_of(request)
    phone = values.get("contact.phone", "")
    if _same_phone(_verified_phone(request, runtime), phone):
        return None
    code = values.get("code", "").strip()
    if not re.fullmatch(r"[0-9]{6}", code):
        return t(lang, "code_missing")
    answer = await runtime.upstream.check_code(phone, code, _client(request))
    if answer.status_code == 429:
        return _wait_words(lang, answer.headers.get("retry-after", "60"))
    return None if answer.status_code == 200 and answer.json().get("verified") else t(lang, "code_wrong")


@router.post("/appeals/new")
async def submit_appeal(request: Request, runtime: WebRuntimeDep):
    """Send the form to intake; its errors come back beside their fields, success goes to the appeal's page.

    The contact's phone must be proven with a code sent to it first.
    """
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    lang = lang_of(request)
    if not csrf_ok(request, runtime, form):
        return _form_page(request, runtime, values, 403, general=[t(lang, "bad_form")])
    body, errors = _appeal_body(values)
    if values.get("consent") != "yes":
        errors["consent"] = t(lang, "consent_missing")
    if errors:
        return _form_page(request, runtime, values, 422, errors=errors, general=[t(lang, "fix_fields")])
    unproven = await _phone_proven(request, runtime, values)
    if unproven:
        return _form_page(request, runtime, values, 422, errors={"code": unproven}, general=[t(lang, "fix_fields")])
    phone = values.get("contact.phone", "")
    # The channel_ref is this browser's portal session's for this body; a form's own field is ignored.
    session = _portal_session(request, runtime) or new_portal_session()
    body["channel_ref"] = runtime.sealer.channel_ref(session, body)
    response = await runtime.upstream.submit(body, _client(request))
    if response.status_code == 202:
        accepted = response.json()
        appeal_id = accepted["appeal_id"]
        done = see_other(f"/appeals/{appeal_id}?new=1")
        _keep_token(request, done, appeal_id, accepted["status_token"])
        _remember_verified(request, runtime, done, phone)
        return _keep_portal_session(request, runtime, done, session)
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "60")
        page = _form_page(request, runtime, values, 429, general=[_wait_words(lang, wait)], verified=phone)
        _remember_verified(request, runtime, page, phone)
        return _too_many(page, response)
    if response.status_code == 422:
        by_field, other = _errors_of(response.json())
        general = [t(lang, "fix_fields"), *other]
        page = _form_page(request, runtime, values, 422, errors=by_field, general=general, verified=phone)
        _remember_verified(request, runtime, page, phone)
        return page
    return _form_page(request, runtime, values, response.status_code, general=[detail(response.json())])


@router.get("/appeals/lost")
async def lost_link(request: Request, runtime: WebRuntimeDep):
    """A company that lost its link asks for it again with the appeal's number and its phone."""
    return render(request, runtime, "lost.html", values={}, errors={})


@router.post("/appeals/lost")
async def resend_link(request: Request, runtime: WebRuntimeDep):
    """The link goes by SMS to the appeal's phone; the page says the same whether or not the phone matched."""
    form = await request.form()
    values = {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}
    lang = lang_of(request)
    if not csrf_ok(request, runtime, form):
        return render(request, runtime, "lost.html", 403, values=values, errors={}, error=t(lang, "bad_form"))
    appeal_id = values.get("appeal_id", "").upper()
    if not APPEAL_ID.match(appeal_id):
        errors = {"appeal_id": t(lang, "appeal_id_wrong")}
        return render(request, runtime, "lost.html", 422, values=values, errors=errors)
    response = await runtime.upstream.resend_link(appeal_id, values.get("phone", ""), lang, _client(request))
    if response.status_code == 202:
        return render(request, runtime, "lost.html", values={}, errors={}, notice=t(lang, "link_sent"))
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "60")
        page = render(request, runtime, "lost.html", 429, values=values, errors={}, error=_wait_words(lang, wait))
        return _too_many(page, response)
    by_field, other = _errors_of(response.json())
    errors = {"phone": "; ".join([*by_field.values(), *other]) or detail(response.json())}
    return render(request, runtime, "lost.html", 422, values=values, errors=errors)


def _token_cookie(appeal_id: str) -> str:
    return f"appeal_{appeal_id}"


def _keep_token(request: Request, response: Response, appeal_id: str, token: str) -> None:
    # Path-scoped: the browser sends it to this appeal's pages only.
    response.set_cookie(
        _token_cookie(appeal_id),
        token,
        max_age=pages.YEAR,
        path=f"/appeals/{appeal_id}",
        httponly=True,
        samesite="lax",
        secure=pages.secure(request),
    )


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
        _keep_token(request, clean, appeal_id, token)
        return clean
    kept = request.cookies.get(_token_cookie(appeal_id))
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
        errors=errors or {},
        **extra,
    )


async def _answer(appeal_id: str, request: Request, runtime: WebRuntime, kind: str, body_of) -> Response:
    lang = lang_of(request)
    form = await request.form()
    token = request.cookies.get(_token_cookie(appeal_id))
    if not APPEAL_ID.match(appeal_id) or not token:
        return problem_page(request, runtime, 401, t(lang, "appeal"), t(lang, "need_link"))
    if not csrf_ok(request, runtime, form):
        return problem_page(request, runtime, 403, t(lang, "refused"), t(lang, "bad_form"))
    body, errors = body_of(form)
    if not errors:
        response = await runtime.upstream.answer(appeal_id, token, kind, body)
        if response.status_code == 202:
            return see_other(f"/appeals/{appeal_id}?sent=1")
        if response.status_code == 422:
            errors, other = _errors_of(response.json())
            errors = errors or {kind: "; ".join(other)}
        else:
            errors = {kind: detail(response.json())}
    current = await runtime.upstream.appeal(appeal_id, token)
    if current.status_code != 200:
        return problem_page(request, runtime, 403, t(lang, "appeal"), t(lang, "wrong_link"))
    return await _follow_page(request, runtime, current.json(), token, errors=errors, status_code=422)


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
    by_field, other = _errors_of({"errors": prefixed})
    if other or not by_field:
        by_field["contact"] = "; ".join(other) or detail(payload)
    return by_field


@router.post("/appeals/{appeal_id}/contact")
async def correct_contact(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """The company corrects the contact kept for its appeal; intake passes it on to the departments and notify."""
    lang = lang_of(request)
    form = await request.form()
    token = request.cookies.get(_token_cookie(appeal_id))
    if not APPEAL_ID.match(appeal_id) or not token:
        return problem_page(request, runtime, 401, t(lang, "appeal"), t(lang, "need_link"))
    if not csrf_ok(request, runtime, form):
        return problem_page(request, runtime, 403, t(lang, "refused"), t(lang, "bad_form"))
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
        errors = _said_in(lang, _contact_errors(response.json()))
        errors.setdefault("contact", t(lang, "fix_fields"))
    else:
        errors = {} if response.status_code == 409 else {"contact": detail(response.json())}
    current = await runtime.upstream.appeal(appeal_id, token)
    if current.status_code != 200:
        return problem_page(request, runtime, 403, t(lang, "appeal"), t(lang, "wrong_link"))
    status_code = 409 if response.status_code == 409 else 422
    page = _follow_page(request, runtime, current.json(), token, errors=errors, values=values, status_code=status_code)
    return await page
