"""The department workbench: a clerk signs in with the department's key, reads its worklist, opens an appeal and
acts on it."""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from services.web import contributions, extensions, supervision, visits
from services.web.answers import APPEAL_ID, detail, refusal, see_other
from services.web.i18n import Lang, t
from services.web.pages import (
    LOCAL,
    clerk_of,
    csrf_ok,
    department_key,
    keep_session,
    lang_of,
    problem_page,
    render,
)
from services.web.runtime import WebRuntime, WebRuntimeDep
from services.web.session import SESSION_COOKIE, Clerk
from services.web.upstream import Unavailable

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

STATUSES = (
    "routed",
    "accepted",
    "info_requested",
    "reopened",
    "resolved",
    "confirmed",
    "closed",
)


def _signin_page(request: Request, runtime: WebRuntime, status_code: int = 200, **extra: Any):
    lang = lang_of(request)
    departments = [(d.code, (d.name_zh or d.name) if lang == "zh" else d.name) for d in runtime.city.departments]
    return render(request, runtime, "signin.html", status_code, departments=departments, **extra)


@router.get("/workbench")
async def workbench(request: Request, runtime: WebRuntimeDep, status: str | None = None):
    """The clerk's worklist, its redos (重办) on top and then soonest due first, under the department's line of the
    month's scorecard; the sign-in form when nobody is signed in."""
    clerk = clerk_of(request, runtime)
    if clerk is None:
        return _signin_page(request, runtime)
    chosen = status if status in STATUSES else None
    # Redos are the reopened appeals: asked apart, for one may have no running clock yet (the soonest-due worklist
    # lists only those with one), and the panel counts them whatever the filter.
    calls = [runtime.upstream.worklist(clerk.key, clerk.department, chosen)]
    if chosen != "reopened":
        calls.append(runtime.upstream.worklist(clerk.key, clerk.department, "reopened"))
    answers, assessment = await asyncio.gather(asyncio.gather(*calls), _assessment(runtime, clerk))
    if any(a.status_code in (401, 403) for a in answers):
        return signed_out(request, runtime)
    asked, reopened = answers[0].json(), answers[-1].json()
    redos = [a for a in reopened if visits.is_redo(a)]
    listed = visits.redos_first(redos, asked) if chosen in (None, "reopened") else asked
    now = datetime.now(UTC)
    rows = [_worklist_row(appeal, clerk.department, now) for appeal in listed]
    page = render(
        request,
        runtime,
        "worklist.html",
        clerk=clerk,
        rows=rows,
        statuses=STATUSES,
        status=chosen,
        redos_open=len(redos),
        assessment=assessment,
        month=_this_month(now),
    )
    return keep_session(request, runtime, page, clerk)


def _worklist_row(appeal: dict[str, Any], department: str, now: datetime) -> dict[str, Any]:
    """A worklist row with the time left on its soonest clock, its urging, contribution, transfer and redo marks."""
    due = datetime.fromisoformat(appeal["next_due"]) if appeal.get("next_due") else None
    redo_due = supervision.moment(appeal["redo_due_at"]) if appeal.get("redo_due_at") else None
    return {
        **appeal,
        "left": (due - now).total_seconds() if due else None,
        "urged": supervision.urged(appeal, department),
        "contribution": contributions.due_for(appeal, department),
        "transfer_pending": bool(appeal.get("transfer_request")) and appeal.get("lead") == department,
        "redo": visits.is_redo(appeal) and appeal.get("lead") == department,
        "redo_left": (redo_due - now).total_seconds() if redo_due else None,
    }


def _this_month(now: datetime) -> str:
    """The month it is in the city, YYYY-MM."""
    return now.astimezone(LOCAL).strftime("%Y-%m")


async def _assessment(runtime: WebRuntime, clerk: Clerk) -> dict[str, Any] | None:
    """The department's line of this month's scorecard, read from stats with the clerk's own key; None when stats
    does not answer it (down, or not open to the key), and the worklist shows without it."""
    try:
        response = await runtime.upstream.scorecard(clerk.key, _this_month(datetime.now(UTC)))
    except Unavailable:
        return None
    if response.status_code != 200:
        log.info("the scorecard was not read", extra={"status": response.status_code})
        return None
    return visits.standing(response.json(), clerk.department)


def signed_out(request: Request, runtime: WebRuntime, status_code: int = 200, **extra: Any) -> Response:
    page = _signin_page(request, runtime, status_code, **extra)
    page.delete_cookie(SESSION_COOKIE, path="/workbench")
    return page


@router.post("/workbench/sign-in")
async def sign_in(
    request: Request,
    runtime: WebRuntimeDep,
    name: Annotated[str, Form(max_length=100)] = "",
    department: Annotated[str, Form(max_length=64)] = "",
    key: Annotated[str, Form(max_length=512)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
):
    """A clerk signs in with their name and the department's key; router decides whether the key opens it."""
    lang = lang_of(request)
    if not csrf_ok(request, runtime, {"csrf": csrf}):
        return signed_out(request, runtime, 403, error=t(lang, "bad_form"))
    name = " ".join(name.split())
    if not name or runtime.city.department(department) is None or not key:
        return signed_out(request, runtime, 422, error=t(lang, "key_refused"), name=name)
    # Clerks sign in with their department's key only: an operator's or admin's key reads every department's
    # worklist at router, but the workbench would then act with city-wide powers under a clerk's name.
    principal = runtime.keys.lookup(key)
    if principal is not None and principal.kind != "department":
        return signed_out(request, runtime, 403, error=t(lang, "key_not_department"), name=name)
    if department_key(runtime, key) != department:
        return signed_out(request, runtime, 403, error=t(lang, "key_refused"), name=name)
    answer = await runtime.upstream.worklist(key, department, None)
    if answer.status_code != 200:
        return signed_out(request, runtime, 403, error=t(lang, "key_refused"), name=name)
    clerk = Clerk(name=name, department=department, key=key, signed_in=datetime.now(UTC).timestamp())
    return keep_session(request, runtime, see_other("/workbench"), clerk)


@router.post("/workbench/sign-out")
async def sign_out(request: Request, runtime: WebRuntimeDep, csrf: Annotated[str, Form(max_length=128)] = ""):
    """End the clerk's session."""
    if not csrf_ok(request, runtime, {"csrf": csrf}):
        return problem_page(request, runtime, 403, t(lang_of(request), "refused"), t(lang_of(request), "bad_form"))
    done = see_other("/workbench")
    done.delete_cookie(SESSION_COOKIE, path="/workbench")
    return done


async def _detail_page(
    request: Request, runtime: WebRuntime, clerk: Clerk, appeal_id: str, status_code: int = 200, **extra: Any
) -> Response:
    lang = lang_of(request)
    if not APPEAL_ID.match(appeal_id):
        return problem_page(request, runtime, 404, t(lang, "not_found"), appeal_id)
    response = await runtime.upstream.department_appeal(clerk.key, appeal_id)
    if response.status_code in (403, 404):
        return problem_page(request, runtime, response.status_code, t(lang, "refused"), detail(response.json()))
    if response.status_code == 401:
        return signed_out(request, runtime)
    appeal = response.json()
    now = datetime.now(UTC)
    for deadline in appeal.get("deadlines", []):
        if deadline.get("due_at") and deadline["state"] == "running":
            deadline["left"] = (datetime.fromisoformat(deadline["due_at"]) - now).total_seconds()
    asked = appeal.get("extensions") or []
    per_clock = runtime.supervision.extension.per_clock
    due = extensions.resolution_due(appeal.get("deadlines", []))
    leads = appeal.get("lead") == clerk.department
    window = supervision.send_back_window(appeal, now)
    page = render(
        request,
        runtime,
        "appeal.html",
        status_code,
        clerk=clerk,
        appeal=appeal,
        leads=leads,
        departments=[d.code for d in runtime.city.departments if d.code != clerk.department],
        window=window,
        # Past the window the decline and transfer forms give way to asking the office (request_transfer).
        may_request_transfer=leads
        and not window.open
        and appeal.get("status") in supervision.REQUEST_TRANSFER_FROM
        and not appeal.get("transfer_request"),
        transfer_refused=supervision.transfer_refused(appeal, clerk.department) if leads else None,
        send_back=supervision.send_back_for(appeal, clerk.department),
        urged=supervision.urged(appeal, clerk.department),
        urgings=supervision.urgings(appeal, clerk.department),
        transfer_values=extra.pop("transfer_values", {}),
        transfer_errors=extra.pop("transfer_errors", {}),
        idempotency=secrets.token_urlsafe(16),
        extensions=[{**x, "shown_state": extensions.state_of(x, now)} for x in asked],
        pending_extension=extensions.pending(asked, now),
        may_ask=extensions.may_ask(appeal, clerk.department, now, per_clock),
        extended_already=extensions.extended_already(appeal, per_clock),
        resolution_due=due,
        max_past_due=runtime.supervision.extension.max_past_due,
        extension_values=extra.pop("extension_values", None) or {"until": extensions.local_input(due)},
        extension_errors=extra.pop("extension_errors", {}),
        contribution=contributions.view(appeal, clerk.department),
        contribution_values=extra.pop("contribution_values", {}),
        contribution_errors=extra.pop("contribution_errors", {}),
        max_links=contributions.MAX_LINKS,
        max_note=contributions.MAX_NOTE,
        redo=visits.is_redo(appeal),
        redo_supervised_after=runtime.assessment.redo.supervise_after,
        **extra,
    )
    return keep_session(request, runtime, page, clerk)


@router.get("/workbench/appeals/{appeal_id}")
async def appeal_detail(appeal_id: str, request: Request, runtime: WebRuntimeDep, done: str | None = None):
    """One appeal with its timeline, flags, deadlines, and a form for each action."""
    clerk = clerk_of(request, runtime)
    if clerk is None:
        return signed_out(request, runtime)
    return await _detail_page(request, runtime, clerk, appeal_id, done=done)


@router.post("/workbench/appeals/{appeal_id}/actions")
async def act(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """Take an action; the lifecycle's refusal is shown on the appeal's page, in its own words."""
    clerk = clerk_of(request, runtime)
    if clerk is None:
        return signed_out(request, runtime)
    form = await request.form()
    lang = lang_of(request)
    if not csrf_ok(request, runtime, form):
        return await _detail_page(request, runtime, clerk, appeal_id, 403, error=t(lang, "bad_form"))
    body: dict[str, Any] = {"action": str(form.get("action", "")), "clerk": clerk.name}
    for name in ("note", "guidance", "resolution", "target_department"):
        if str(form.get(name, "")).strip():
            body[name] = str(form[name]).strip()
    refs = [r.strip() for r in str(form.get("policy_refs", "")).split(",") if r.strip()]
    if refs:
        body["policy_refs"] = refs
    idempotency = str(form.get("idempotency", ""))[:64] or secrets.token_urlsafe(16)
    response = await runtime.upstream.act(clerk.key, appeal_id, body, f"web-{idempotency}")
    if response.status_code == 200:
        done = see_other(f"/workbench/appeals/{appeal_id}?done={body['action']}")
        return keep_session(request, runtime, done, clerk)
    message = refusal(response.json())
    return await _detail_page(request, runtime, clerk, appeal_id, response.status_code, error=message)


async def _clerk_form(
    appeal_id: str,
    request: Request,
    runtime: WebRuntime,
    *,
    name: str,
    fields: Callable[[FormData], dict[str, str]],
    check: Callable[[Lang, dict[str, str]], dict[str, str]],
    send: Callable[[Clerk, dict[str, str], str], Awaitable[httpx.Response]],
    done: str,
) -> Response:
    """One of a clerk's forms on the appeal's page (the extension, the transfer request, the contribution): the
    form's `fields` as typed, `check`ed (errors by field, in `lang`), then `send` to router with the clerk and an
    idempotency key; then the appeal's page at `done` (its `?done=` and anchor), or the form again, the page
    keys `<name>_values`, `<name>_errors` and `<name>_error` (a refusal) holding what was typed and what was
    wrong. A key router no longer takes signs the clerk out."""
    clerk = clerk_of(request, runtime)
    if clerk is None:
        return signed_out(request, runtime)
    form = await request.form()
    lang = lang_of(request)
    values = fields(form)
    if not csrf_ok(request, runtime, form):
        again = {f"{name}_error": t(lang, "bad_form"), f"{name}_values": values}
        return await _detail_page(request, runtime, clerk, appeal_id, 403, **again)
    errors = check(lang, values)
    if errors:
        again = {f"{name}_errors": errors, f"{name}_values": values}
        return await _detail_page(request, runtime, clerk, appeal_id, 422, **again)
    idempotency = str(form.get("idempotency", ""))[:64] or secrets.token_urlsafe(16)
    response = await send(clerk, values, f"web-{idempotency}")
    if response.status_code == 200:
        return keep_session(request, runtime, see_other(f"/workbench/appeals/{appeal_id}?done={done}"), clerk)
    if response.status_code == 401:
        return signed_out(request, runtime)
    again = {f"{name}_error": refusal(response.json()), f"{name}_values": values}
    return await _detail_page(request, runtime, clerk, appeal_id, response.status_code, **again)


@router.post("/workbench/appeals/{appeal_id}/extension")
async def request_extension(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """The lead asks the coordinating office for a later due time, typed in the city's time zone; router's refusal
    is shown beside the form, with what was typed."""

    def fields(form: FormData) -> dict[str, str]:
        return {"until": str(form.get("until", "")).strip(), "reason": str(form.get("reason", "")).strip()}

    def check(lang: Lang, values: dict[str, str]) -> dict[str, str]:
        errors = {"until": t(lang, "until_missing")} if extensions.until_of(values["until"]) is None else {}
        if not values["reason"]:
            errors["reason"] = t(lang, "reason_missing")
        return errors

    def send(clerk: Clerk, values: dict[str, str], idempotency_key: str) -> Awaitable[httpx.Response]:
        until = extensions.until_of(values["until"])  # `check` refused a time it cannot read
        return runtime.upstream.request_extension(
            clerk.key,
            appeal_id,
            until=until.isoformat() if until else values["until"],
            reason=values["reason"],
            clerk=clerk.name,
            idempotency_key=idempotency_key,
        )

    done = "request_extension#extensions"
    return await _clerk_form(
        appeal_id, request, runtime, name="extension", fields=fields, check=check, send=send, done=done
    )


@router.post("/workbench/appeals/{appeal_id}/transfer-request")
async def request_transfer(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """Past its send-back window, the lead asks the coordinating office to transfer the appeal to the department it
    suggests, and says why; router's refusal is shown beside the form, with what was typed."""

    def fields(form: FormData) -> dict[str, str]:
        return {
            "target_department": str(form.get("target_department", "")).strip(),
            "reason": str(form.get("reason", "")).strip(),
        }

    def check(lang: Lang, values: dict[str, str]) -> dict[str, str]:
        errors = {}
        if runtime.city.department(values["target_department"]) is None:
            errors["target_department"] = t(lang, "transfer_department_missing")
        if not values["reason"]:
            errors["reason"] = t(lang, "transfer_reason_missing")
        return errors

    def send(clerk: Clerk, values: dict[str, str], idempotency_key: str) -> Awaitable[httpx.Response]:
        return runtime.upstream.request_transfer(
            clerk.key,
            appeal_id,
            target_department=values["target_department"],
            reason=values["reason"],
            clerk=clerk.name,
            idempotency_key=idempotency_key,
        )

    done = "request_transfer#transfer-request"
    return await _clerk_form(
        appeal_id, request, runtime, name="transfer", fields=fields, check=check, send=send, done=done
    )


@router.post("/workbench/appeals/{appeal_id}/contribution")
async def contribute(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """A co-handler's clerk sends the lead the department's part: a note and https links typed one per line. A link
    that is not https is named by its line before anything is sent; router's refusal (not a co-handler, a note
    missing) is shown beside the form, with what was typed."""

    def fields(form: FormData) -> dict[str, str]:
        return {"note": str(form.get("note", "")).strip(), "links": str(form.get("links", ""))}

    def check(lang: Lang, values: dict[str, str]) -> dict[str, str]:
        links, bad = contributions.links_of(values["links"])
        errors: dict[str, str] = {}
        if not values["note"]:
            errors["note"] = t(lang, "contribution_missing")
        elif len(values["note"]) > contributions.MAX_NOTE:
            errors["note"] = t(lang, "contribution_too_long").replace("{n}", str(contributions.MAX_NOTE))
        if bad:
            errors["links"] = "; ".join(
                t(lang, "link_bad").replace("{n}", str(number)).replace("{link}", link[:120]) for number, link in bad
            )
        elif len(links) > contributions.MAX_LINKS:
            errors["links"] = t(lang, "links_too_many").replace("{n}", str(contributions.MAX_LINKS))
        return errors

    def send(clerk: Clerk, values: dict[str, str], idempotency_key: str) -> Awaitable[httpx.Response]:
        links, _ = contributions.links_of(values["links"])
        return runtime.upstream.contribute(
            clerk.key,
            appeal_id,
            note=values["note"],
            attachments=links,
            clerk=clerk.name,
            idempotency_key=idempotency_key,
        )

    done = "contribute#contribution"
    return await _clerk_form(
        appeal_id, request, runtime, name="contribution", fields=fields, check=check, send=send, done=done
    )
