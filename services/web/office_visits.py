"""The coordinating office's return visits (回访) in the workbench: the visit tasks router lists (those to call now,
every open one, the companies' "not resolved" to review, and the ended ones), each open task with the resolution
beside the contact's name and phone, and a form that records an attempt in router in the clerk's name."""

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.web import visits
from services.web.answers import APPEAL_ID, refusal, see_other
from services.web.cursors import backward, cursor_of, forward, next_cursor, trail_of
from services.web.i18n import t
from services.web.office import office_clerk
from services.web.pages import csrf_ok, keep_session, lang_of, problem_page, render
from services.web.runtime import WebRuntime, WebRuntimeDep
from services.web.session import Clerk
from services.web.workbench import signed_out

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
# The number a page shows; router's cursor, not this, says where it starts (services/web/cursors.py).
MAX_PAGE = 100_000


@dataclass(frozen=True)
class VisitQuery:
    """The tab and page the office asked for; checked, so safe to echo."""

    state: str = visits.TABS[0]
    page: int = 1
    # Where the page starts in router's list, and where those before it did.
    after: str = ""
    trail: str = ""

    @classmethod
    def of(cls, params: dict[str, str]) -> "VisitQuery":
        """The query from the page's parameters; anything else is the first tab's first page (a later page without
        its cursor too)."""
        page = params.get("page", "1")
        after = cursor_of(params.get("after"))
        return cls(
            state=params["state"] if params.get("state") in visits.TABS else visits.TABS[0],
            page=min(max(int(page), 1), MAX_PAGE) if page.isdigit() and after else 1,
            after=after,
            trail=trail_of(params.get("trail")) if after else "",
        )

    def query(self, **changes: Any) -> str:
        """This query (with `changes`) as a query string, defaults left out; the first page has no cursor."""
        if changes.get("page") == 1:
            changes = {**changes, "after": "", "trail": ""}
        chosen = replace(self, **changes)
        return urlencode({k: v for k, v in vars(chosen).items() if v != getattr(VisitQuery(), k)})

    def url(self, notice: dict[str, str] | None = None, **changes: Any) -> str:
        """The visits page of this query (with `changes`), and a `notice` of what was just recorded."""
        query = "&".join(q for q in (self.query(**changes), urlencode(notice or {})) if q)
        return "/workbench/office/visits" + (f"?{query}" if query else "")


async def _visits_page(
    request: Request, runtime: WebRuntime, clerk: Clerk, query: VisitQuery, status_code: int = 200, **extra: Any
) -> Response:
    lang = lang_of(request)
    response = await runtime.upstream.return_visits(clerk.key, query.state, limit=PAGE_SIZE, cursor=query.after or None)
    if response.status_code == 401:
        return signed_out(request, runtime)
    if response.status_code != 200:
        return problem_page(request, runtime, response.status_code, t(lang, "refused"), refusal(response.json()))
    now = datetime.now(UTC)
    rules = runtime.assessment.return_visits
    rows = [visits.task(r, now, rules.attempts) for r in response.json()]
    shown = rows[:PAGE_SIZE]
    following = next_cursor(response)
    shown_ids = {r["appeal_id"] for r in shown}
    errors: dict[str, dict[str, str]] = extra.pop("errors", {})
    page = render(
        request,
        runtime,
        "office_visits.html",
        status_code,
        clerk=clerk,
        query=query,
        rows=shown,
        tabs=visits.TABS,
        has_next=following is not None,
        next_url=query.url(**forward(query.page, query.after, query.trail, following)) if following else None,
        prev_url=query.url(**backward(query.page, query.trail)),
        rules=rules,
        scores=visits.SCORES,
        outcomes=visits.OUTCOMES,
        causes=visits.CAUSES,
        max_note=visits.MAX_NOTE,
        # A refusal is keyed by the task's appeal; one this page no longer shows (recorded or ended meanwhile) is
        # said above the table.
        errors=errors,
        unplaced={k: v.get("form", "") for k, v in errors.items() if k not in shown_ids},
        values=extra.pop("values", {}),
        back=query.query(),
        idempotency=secrets.token_urlsafe(16),
        **extra,
    )
    return keep_session(request, runtime, page, clerk)


@router.get("/workbench/office/visits")
async def visit_tasks(request: Request, runtime: WebRuntimeDep, done: str | None = None, appeal: str | None = None):
    """The office's return visits by tab, each open task with its contact, the resolution and a form per task."""
    clerk = office_clerk(request, runtime)
    if not isinstance(clerk, Clerk):
        return clerk
    query = VisitQuery.of(dict(request.query_params))
    said = done if done in visits.RECORDED and appeal and APPEAL_ID.match(appeal) else None
    return await _visits_page(request, runtime, clerk, query, done=said, done_appeal=appeal if said else None)


@router.post("/workbench/office/visits/{appeal_id}/attempts")
async def record_attempt(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """Record one attempt of a visit (reached or not; the outcome or score; the cause when unsatisfied; a note), or
    the office's review of a company's "not resolved" (the cause), in the visitor's name; back to the same tab and
    page with what it did, or the form again with what was wrong beside it and what was typed."""
    clerk = office_clerk(request, runtime)
    if not isinstance(clerk, Clerk):
        return clerk
    lang = lang_of(request)
    form = await request.form()
    # The page to return to is rebuilt from its parameters, never followed as a URL.
    query = VisitQuery.of({k: v[0] for k, v in parse_qs(str(form.get("back", ""))).items()})
    kind = str(form.get("kind", ""))
    typed = visits.AttemptForm.of(form)

    def again(status_code: int, errors: dict[str, str]) -> Any:
        return _visits_page(
            request, runtime, clerk, query, status_code, errors={appeal_id: errors}, values={appeal_id: typed.values()}
        )

    if not csrf_ok(request, runtime, form):
        return await again(403, {"form": t(lang, "bad_form")})
    if not APPEAL_ID.match(appeal_id) or kind not in ("visit", "review"):
        return await again(422, {"form": t(lang, "bad_form")})
    body, wrong = visits.attempt_body(typed, kind)
    if wrong:
        return await again(422, {name: t(lang, key) for name, key in wrong.items()})
    idempotency = str(form.get("idempotency", ""))[:64] or secrets.token_urlsafe(16)
    response = await runtime.upstream.record_attempt(clerk.key, appeal_id, body, f"web-{idempotency}")
    if response.status_code == 200:
        notice = {"done": visits.recorded(response.json(), kind), "appeal": appeal_id}
        return keep_session(request, runtime, see_other(query.url(notice)), clerk)
    if response.status_code == 401:
        return signed_out(request, runtime)
    return await again(response.status_code, {"form": refusal(response.json())})
