"""The coordinating office's page in the workbench: the city queue (overdue, at risk, extension pending, all) as a
table to filter, sort and page, and the office's decisions on its rows, for clerks signed in with the office's key."""

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.web import extensions
from services.web.answers import APPEAL_ID, refusal, see_other
from services.web.i18n import t
from services.web.pages import clerk_of, csrf_ok, keep_session, lang_of, problem_page, render
from services.web.runtime import WebRuntime, WebRuntimeDep
from services.web.session import Clerk
from services.web.workbench import signed_out

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
# Router answers at most 500 rows a call and sorts the queue its own way (the longest overdue, the soonest lapsing,
# or the oldest first); a column's sort is web's, over this many rows of that order.
SORTED_WINDOW = 500
# Router takes offsets up to 100 000.
LAST_PAGE = 100_000 // PAGE_SIZE
TABS = ("overdue", "at_risk", "extension_pending", "all")
SORTS = ("queue", "due", "submitted", "lead")
DECISIONS = {"approve": "approve_extension", "reject": "reject_extension"}


@dataclass(frozen=True)
class QueueQuery:
    """What the office asked the page for; every field checked against the city's names, so it is safe to echo."""

    state: str = TABS[0]
    department: str = ""
    district: str = ""
    category: str = ""
    sort: str = "queue"
    order: str = "asc"
    page: int = 1

    def filters(self) -> dict[str, str]:
        """Router's filters of the city queue."""
        chosen = {"department": self.department, "district": self.district, "category": self.category}
        return {k: v for k, v in chosen.items() if v}

    def query(self, **changes: Any) -> str:
        """This query (with `changes`) as the page's query string, defaults left out."""
        chosen = asdict(replace(self, **changes))
        defaults = asdict(QueueQuery())
        return urlencode({k: v for k, v in chosen.items() if v != defaults[k]})

    def url(self, notice: dict[str, str] | None = None, **changes: Any) -> str:
        """The office's page showing this query (with `changes`), and a `notice` of what was just done."""
        query = "&".join(q for q in (self.query(**changes), urlencode(notice or {})) if q)
        return "/workbench/office" + (f"?{query}" if query else "")


def query_of(params: dict[str, str], runtime: WebRuntime) -> QueueQuery:
    """The page's query from its parameters; anything the city does not know is left out, not refused."""
    city = runtime.city
    try:
        page = min(max(int(params.get("page", "1")), 1), LAST_PAGE)
    except ValueError:
        page = 1
    department = params.get("department", "")
    district = params.get("district", "")
    category = params.get("category", "")
    return QueueQuery(
        state=params.get("state", "") if params.get("state") in TABS else TABS[0],
        department=department if city.department(department) is not None else "",
        district=district if district and not city.unknown_district(district) else "",
        category=category if category in {c.code.value for c in runtime.catalogue.categories} else "",
        sort=params.get("sort", "") if params.get("sort") in SORTS else "queue",
        order="desc" if params.get("order") == "desc" else "asc",
        page=page,
    )


def office_actions(row: dict[str, Any]) -> list[str]:
    """The office's actions a row offers; each is a form of the office's template (overruling a send-back, urging,
    transferring and adding a co-handler join here as router takes them)."""
    return ["decide_extension"] if row.get("extension_state") == "pending" else []


def view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A row of router's city queue with what the page shows of it: where it stands, its extension's state and the
    office's actions."""
    extension = row.get("extension")
    shown = {
        **row,
        "standing": extensions.standing(row, now),
        "extension_state": extensions.state_of(extension, now) if extension else None,
    }
    return {**shown, "actions": office_actions(shown)}


def sort_rows(
    rows: list[dict[str, Any]], sort: str, descending: bool, lead_name: Callable[[str], str]
) -> list[dict[str, Any]]:
    """Viewed rows by a column; rows without the value (no clock, no lead) last either way."""
    if sort == "queue":
        return rows

    def value(row: dict[str, Any]) -> Any:
        if sort == "due":
            return row["standing"]["seconds"] if row.get("standing") else None
        if sort == "submitted":
            return datetime.fromisoformat(row["submitted_at"])
        return lead_name(row["lead"]) if row.get("lead") else None

    having = [r for r in rows if value(r) is not None]
    return sorted(having, key=value, reverse=descending) + [r for r in rows if value(r) is None]


def _office_clerk(request: Request, runtime: WebRuntime) -> Clerk | Response:
    clerk = clerk_of(request, runtime)
    if clerk is None:
        return signed_out(request, runtime)
    if clerk.department != runtime.city.coordinating_office:
        lang = lang_of(request)
        return problem_page(request, runtime, 403, t(lang, "refused"), t(lang, "office_only"))
    return clerk


async def _office_page(
    request: Request, runtime: WebRuntime, clerk: Clerk, query: QueueQuery, status_code: int = 200, **extra: Any
) -> Response:
    lang = lang_of(request)
    state = None if query.state == "all" else query.state
    now = datetime.now(UTC)
    names = {d.code: (d.name_zh or d.name) if lang == "zh" else d.name for d in runtime.city.departments}
    if query.sort == "queue":
        offset = (query.page - 1) * PAGE_SIZE
        response = await runtime.upstream.city_queue(
            clerk.key, state, query.filters(), limit=PAGE_SIZE + 1, offset=offset
        )
        start = 0
    else:
        response = await runtime.upstream.city_queue(clerk.key, state, query.filters(), limit=SORTED_WINDOW, offset=0)
        start = (query.page - 1) * PAGE_SIZE
    if response.status_code == 401:
        return signed_out(request, runtime)
    if response.status_code != 200:
        return problem_page(request, runtime, response.status_code, t(lang, "refused"), refusal(response.json()))
    answered = response.json()
    rows = sort_rows([view(r, now) for r in answered], query.sort, query.order == "desc", lambda c: names.get(c, c))
    shown = rows[start : start + PAGE_SIZE]
    errors: dict[str, str] = extra.pop("errors", {})
    page = render(
        request,
        runtime,
        "office.html",
        status_code,
        clerk=clerk,
        query=query,
        rows=shown,
        tabs=TABS,
        has_next=len(rows) > start + PAGE_SIZE,
        capped=query.sort != "queue" and len(answered) >= SORTED_WINDOW,
        sorted_within=SORTED_WINDOW,
        headers=_sort_headers(query),
        departments=sorted(names.items(), key=lambda item: item[1]),
        districts=[(d.code, (d.name_zh or d.name) if lang == "zh" else d.name) for d in runtime.city.districts],
        categories=[
            (c.code.value, (c.name_zh or c.name) if lang == "zh" else c.name) for c in runtime.catalogue.categories
        ],
        district_names={d.code: (d.name_zh or d.name) if lang == "zh" else d.name for d in runtime.city.districts},
        errors=errors,
        # A refusal whose row this page no longer shows (decided or lapsed meanwhile) is said above the table.
        unplaced={k: v for k, v in errors.items() if k not in {r["appeal_id"] for r in shown}},
        values=extra.pop("values", {}),
        back=query.query(),
        idempotency=secrets.token_urlsafe(16),
        **extra,
    )
    return keep_session(request, runtime, page, clerk)


def _sort_headers(query: QueueQuery) -> dict[str, dict[str, str | None]]:
    """Each sortable column's link (the other order when it is the current sort) and its aria-sort."""
    headers: dict[str, dict[str, str | None]] = {}
    for column in SORTS[1:]:
        current = query.sort == column
        order = ("desc" if query.order == "asc" else "asc") if current else "asc"
        aria = ("ascending" if query.order == "asc" else "descending") if current else None
        headers[column] = {"url": query.url(sort=column, order=order, page=1), "aria": aria}
    return headers


@router.get("/workbench/office")
async def office(request: Request, runtime: WebRuntimeDep, done: str | None = None, appeal: str | None = None):
    """The city queue for the coordinating office: a tab per state, filters, sortable columns, pages, and the
    office's decisions on each row."""
    clerk = _office_clerk(request, runtime)
    if not isinstance(clerk, Clerk):
        return clerk
    query = query_of(dict(request.query_params), runtime)
    decided = done if done in DECISIONS.values() and appeal and APPEAL_ID.match(appeal) else None
    return await _office_page(request, runtime, clerk, query, done=decided, done_appeal=appeal if decided else None)


@router.post("/workbench/office/appeals/{appeal_id}/extension")
async def decide_extension(appeal_id: str, request: Request, runtime: WebRuntimeDep):
    """Approve or reject the pending extension with a comment (a rejection needs one), in the signed-in clerk's
    name; back to the same tab, filters, sort and page, or the refusal beside the row's form."""
    clerk = _office_clerk(request, runtime)
    if not isinstance(clerk, Clerk):
        return clerk
    form = await request.form()
    lang = lang_of(request)
    # The page to return to is rebuilt from its parameters, never followed as a URL.
    query = query_of({k: v[0] for k, v in parse_qs(str(form.get("back", ""))).items()}, runtime)
    note = str(form.get("note", "")).strip()
    decision = DECISIONS.get(str(form.get("decision", "")))

    def again(status_code: int, message: str) -> Any:
        errors, values = {appeal_id: message}, {appeal_id: note}
        return _office_page(request, runtime, clerk, query, status_code, errors=errors, values=values)

    if not csrf_ok(request, runtime, form):
        return await again(403, t(lang, "bad_form"))
    if not APPEAL_ID.match(appeal_id) or decision is None:
        return await again(422, t(lang, "bad_form"))
    if decision == "reject_extension" and not note:
        return await again(422, t(lang, "comment_required"))
    idempotency = str(form.get("idempotency", ""))[:64] or secrets.token_urlsafe(16)
    response = await runtime.upstream.decide_extension(
        clerk.key,
        appeal_id,
        approve=decision == "approve_extension",
        note=note,
        clerk=clerk.name,
        idempotency_key=f"web-{idempotency}-{decision}",
    )
    if response.status_code == 200:
        done = see_other(query.url({"done": decision, "appeal": appeal_id}))
        return keep_session(request, runtime, done, clerk)
    if response.status_code == 401:
        return signed_out(request, runtime)
    return await again(response.status_code, refusal(response.json()))
