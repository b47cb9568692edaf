"""The company portal's submission pages: the form, the one-time code that proves the contact's phone, sending the
appeal to intake, and asking for a lost link again."""

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from libs import phones
from services.web import pages
from services.web.answers import APPEAL_ID, detail, see_other
from services.web.i18n import t
from services.web.pages import csrf_ok, lang_of, render
from services.web.portal import client_of, errors_of, keep_token, said_in, too_many, wait_words
from services.web.runtime import WebRuntime, WebRuntimeDep
from services.web.session import PORTAL_COOKIE, new_portal_session

router = APIRouter(include_in_schema=False)

# A phone proven with a code stays proven in this browser for half an hour (a sealed cookie).
VERIFIED_COOKIE = "verified"
VERIFIED_SECONDS = 1800
# The browser's portal session, of which each appeal's channel_ref is made (see Sealer.channel_ref); a day.
PORTAL_SECONDS = 24 * 3600


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


def _form_page(request: Request, runtime: WebRuntime, values: dict[str, str], status_code: int = 200, **extra: Any):
    lang = lang_of(request)
    errors = said_in(lang, extra.pop("errors", {}))
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
    response = await runtime.upstream.request_code(values.get("contact.phone", ""), lang, client_of(request))
    if response.status_code == 202:
        return _form_page(request, runtime, values, notice=t(lang, "code_sent"))
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "60")
        page = _form_page(request, runtime, values, 429, errors={"code": wait_words(lang, wait)})
        return too_many(page, response)
    by_field, other = errors_of(response.json())
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
    answer = await runtime.upstream.check_code(phone, code, client_of(request))
    if answer.status_code == 429:
        return wait_words(lang, answer.headers.get("retry-after", "60"))
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
    response = await runtime.upstream.submit(body, client_of(request))
    if response.status_code == 202:
        accepted = response.json()
        appeal_id = accepted["appeal_id"]
        done = see_other(f"/appeals/{appeal_id}?new=1")
        keep_token(request, done, appeal_id, accepted["status_token"])
        _remember_verified(request, runtime, done, phone)
        return _keep_portal_session(request, runtime, done, session)
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "60")
        page = _form_page(request, runtime, values, 429, general=[wait_words(lang, wait)], verified=phone)
        _remember_verified(request, runtime, page, phone)
        return too_many(page, response)
    if response.status_code == 422:
        by_field, other = errors_of(response.json())
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
    response = await runtime.upstream.resend_link(appeal_id, values.get("phone", ""), lang, client_of(request))
    if response.status_code == 202:
        return render(request, runtime, "lost.html", values={}, errors={}, notice=t(lang, "link_sent"))
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "60")
        page = render(request, runtime, "lost.html", 429, values=values, errors={}, error=wait_words(lang, wait))
        return too_many(page, response)
    by_field, other = errors_of(response.json())
    errors = {"phone": "; ".join([*by_field.values(), *other]) or detail(response.json())}
    return render(request, runtime, "lost.html", 422, values=values, errors=errors)
