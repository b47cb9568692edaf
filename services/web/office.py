"""The coordinating office's page in the workbench: the city queue (overdue, at risk, extension pending, sent back,
transfer requested, all) as a table to filter, sort and page, and the office's decisions on its rows (an extension,
a send-back, a transfer request, urging the lead), for clerks signed in with the office's key.

As the city's dispatcher the office also moves any open appeal to another lead and brings in a co-handler
(services/router/lifecycle.py, OFFICE_DISPATCH: `transfer` and `add_cohandler` in the office's name, no send-back
window holding it), from the statuses router takes them from."""

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.web import extensions, supervision
from services.web.answers import APPEAL_ID, refusal, see_other
from services.web.cursors import backward, cursor_of, forward, next_cursor, trail_of
from services.web.i18n import t
from services.web.pages import clerk_of, csrf_ok, keep_session, lang_of, problem_page, render
from services.web.runtime import WebRuntime, WebRuntimeDep
from services.web.session import Clerk
from services.web.workbench import signed_out

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
# Router answers at most 500 rows a call and sorts the queue its own way (the longest overdue, the soonest lapsing,
# or the oldest first), page after page by its `Link` header; a column's sort is web's, over this many rows of that
# order, paged here.
SORTED_WINDOW = 500
LAST_PAGE = SORTED_WINDOW // PAGE_SIZE
# The number a page of router's order shows; router's cursor, not this, says where it starts.
MAX_PAGE = 100_000
# `redo`: appeals redone as often as the office supervises (config/assessment.yaml, redo.supervise_after).
TABS = ("overdue", "at_risk", "extension_pending", "sent_back", "transfer_requested", "redo", "all")
SORTS = ("queue", "due", "submitted", "lead")


@dataclass(frozen=True)
class Decision:
    """One button of an office form: router's action, the message when a comment is required (None: optional),
    whether it names a department, and the message when that department is missing or unknown."""

    action: str
    comment_required: str | None = None
    names_department: bool = False
    department_missing: str = "target_missing"


# The office's forms on a row, by the path they post to, and each form's buttons (its `decision`).
FORMS: dict[str, dict[str, Decision]] = {
    "extension": {
        "approve": Decision("approve_extension"),
        "reject": Decision("reject_extension", comment_required="comment_required"),
    },
    "send-back": {"overrule": Decision("overrule_decline"), "confirm": Decision("confirm_decline")},
    "transfer": {
        "grant": Decision("grant_transfer", names_department=True),
        "refuse": Decision("refuse_transfer", comment_required="refusal_comment_required"),
    },
    "urge": {"urge": Decision("urge", comment_required="urge_comment_required")},
    # The office as dispatcher: moving the appeal to another lead, bringing in a co-handler.
    "move": {"transfer": Decision("transfer", names_department=True)},
    "add-cohandler": {
        "add": Decision("add_cohandler", names_department=True, department_missing="cohandler_missing"),
    },
}
DONE = {decision.action for buttons in FORMS.values() for decision in buttons.values()}


@dataclass(frozen=True)
class QueueQuery:
    """What the office asked the page for; every field checked against the city's names, so it is safe to echo."""

    state: str = TABS[0]
    department: str = ""
    district: str = ""
    category: str = ""
    urge_level: int = 0
    sort: str = "queue"
    order: str = "asc"
    page: int = 1
    # In router's own order, where the page starts and where those before it did (services/web/cursors.py).
    after: str = ""
    trail: str = ""

    def filters(self) -> dict[str, str]:
        """Router's filters of the city queue."""
        chosen = {"department": self.department, "district": self.district, "category": self.category}
        return {k: v for k, v in chosen.items() if v}

    def query(self, **changes: Any) -> str:
        """This query (with `changes`) as the page's query string, defaults left out; the first page has no cursor."""
        if changes.get("page") == 1:
            changes = {**changes, "after": "", "trail": ""}
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
        page = min(max(int(params.get("page", "1")), 1), MAX_PAGE)
    except ValueError:
        page = 1
    department = params.get("department", "")
    district = params.get("district", "")
    category = params.get("category", "")
    level = params.get("urge_level", "")
    urge_level = int(level) if level.isdigit() and int(level) in urge_levels(runtime) else 0
    state = params.get("state", "") if params.get("state") in TABS else TABS[0]
    sort = params.get("sort", "") if params.get("sort") in SORTS else "queue"
    # Router's order pages at router, from the cursor the page starts at: a later page without one is the first.
    after = cursor_of(params.get("after")) if sort == "queue" else ""
    if sort == "queue" and not after:
        page = 1
    elif sort != "queue":
        page = min(page, LAST_PAGE)
    return QueueQuery(
        # Router filters the overdue appeals by their urging level, no others.
        state="overdue" if urge_level else state,
        department=department if city.department(department) is not None else "",
        district=district if district and not city.unknown_district(district) else "",
        category=category if category in {c.code.value for c in runtime.catalogue.categories} else "",
        urge_level=urge_level,
        sort=sort,
        order="desc" if params.get("order") == "desc" else "asc",
        page=page,
        after=after,
        trail=trail_of(params.get("trail")) if after else "",
    )


def urge_levels(runtime: WebRuntime) -> list[int]:
    """The urging ladder's levels: 1, the breach, then those config/supervision.yaml adds (2 催办, 3 督办)."""
    return [1, *(rung.level for rung in runtime.supervision.urging.levels)]


def office_actions(row: dict[str, Any], office: str) -> list[str]:
    """The office's forms a row offers (keys of FORMS): deciding a pending extension, reviewing a pending send-back,
    answering a transfer request, and urging the lead of any appeal awaiting its work (not one the office leads
    itself: router leaves that to an operator); and, on any appeal with a lead, moving it to another (where router
    transfers from; not while a transfer request waits, whose answer grants it to the department the office chooses)
    and bringing in a co-handler (where router adds one)."""
    actions = []
    if row.get("extension_state") == "pending":
        actions.append("extension")
    if (row.get("send_back") or {}).get("state") == "pending":
        actions.append("send-back")
    if row.get("transfer_request"):
        actions.append("transfer")
    if row.get("status") in supervision.URGE_FROM and row.get("lead") and row["lead"] != office:
        actions.append("urge")
    if row.get("lead") and row.get("status") in supervision.TRANSFER_FROM and not row.get("transfer_request"):
        actions.append("move")
    if row.get("lead") and row.get("status") in supervision.ADD_COHANDLER_FROM:
        actions.append("add-cohandler")
    return actions


def view(row: dict[str, Any], now: datetime, office: str) -> dict[str, Any]:
    """A row of router's city queue with what the page shows of it: where it stands, its extension's state and the
    office's actions."""
    extension = row.get("extension")
    shown = {
        **row,
        "standing": extensions.standing(row, now),
        "extension_state": extensions.state_of(extension, now) if extension else None,
    }
    return {**shown, "actions": office_actions(shown, office)}


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


def office_clerk(request: Request, runtime: WebRuntime) -> Clerk | Response:
    """The signed-in clerk of the coordinating office, or the page to show instead: the sign-in, or a refusal."""
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
        response = await runtime.upstream.city_queue(
            clerk.key, state, query.filters(), limit=PAGE_SIZE, cursor=query.after or None, urge_level=query.urge_level
        )
        start = 0
    else:
        response = await runtime.upstream.city_queue(
            clerk.key, state, query.filters(), limit=SORTED_WINDOW, urge_level=query.urge_level
        )
        start = (query.page - 1) * PAGE_SIZE
    if response.status_code == 401:
        return signed_out(request, runtime)
    if response.status_code != 200:
        return problem_page(request, runtime, response.status_code, t(lang, "refused"), refusal(response.json()))
    answered = response.json()
    office = runtime.city.coordinating_office
    viewed = [view(r, now, office) for r in answered]
    rows = sort_rows(viewed, query.sort, query.order == "desc", lambda c: names.get(c, c))
    shown = rows[start : start + PAGE_SIZE]
    if query.sort == "queue":
        following = next_cursor(response)
        next_url = query.url(**forward(query.page, query.after, query.trail, following)) if following else None
        prev_url = query.url(**backward(query.page, query.trail))
    else:
        next_url = query.url(page=query.page + 1) if len(rows) > start + PAGE_SIZE else None
        prev_url = query.url(page=query.page - 1)
    shown_ids = {r["appeal_id"] for r in shown}
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
        has_next=next_url is not None,
        next_url=next_url,
        prev_url=prev_url,
        capped=query.sort != "queue" and next_cursor(response) is not None,
        sorted_within=SORTED_WINDOW,
        headers=_sort_headers(query),
        departments=sorted(names.items(), key=lambda item: item[1]),
        districts=[(d.code, (d.name_zh or d.name) if lang == "zh" else d.name) for d in runtime.city.districts],
        categories=[
            (c.code.value, (c.name_zh or c.name) if lang == "zh" else c.name) for c in runtime.catalogue.categories
        ],
        district_names={d.code: (d.name_zh or d.name) if lang == "zh" else d.name for d in runtime.city.districts},
        urge_levels=urge_levels(runtime),
        # A refusal is keyed by its form and row ("transfer:<appeal id>"); one whose row this page no longer shows
        # (decided or lapsed meanwhile) is said above the table.
        errors=errors,
        unplaced={k.split(":", 1)[1]: v for k, v in errors.items() if k.split(":", 1)[1] not in shown_ids},
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
    clerk = office_clerk(request, runtime)
    if not isinstance(clerk, Clerk):
        return clerk
    query = query_of(dict(request.query_params), runtime)
    decided = done if done in DONE and appeal and APPEAL_ID.match(appeal) else None
    return await _office_page(request, runtime, clerk, query, done=decided, done_appeal=appeal if decided else None)


@router.post("/workbench/office/appeals/{appeal_id}/{form_name}")
async def decide(appeal_id: str, form_name: str, request: Request, runtime: WebRuntimeDep):
    """One of the office's forms on a row (FORMS): approve or reject an extension, overrule or confirm a send-back,
    grant a transfer (to the suggested department or another) or refuse it, urge the lead, move the appeal to
    another lead, bring in a co-handler; a comment where the decision needs one. Posted in the signed-in clerk's
    name; back to the same tab, filters, sort and page, or the refusal beside the row's form with what was typed."""
    clerk = office_clerk(request, runtime)
    if not isinstance(clerk, Clerk):
        return clerk
    lang = lang_of(request)
    if form_name not in FORMS:
        return problem_page(request, runtime, 404, t(lang, "not_found"), form_name)
    form = await request.form()
    # The page to return to is rebuilt from its parameters, never followed as a URL.
    query = query_of({k: v[0] for k, v in parse_qs(str(form.get("back", ""))).items()}, runtime)
    note = str(form.get("note", "")).strip()
    target = str(form.get("target_department", "")).strip()
    decision = FORMS[form_name].get(str(form.get("decision", "")))

    def again(status_code: int, message: str) -> Any:
        key = f"{form_name}:{appeal_id}"
        errors, values = {key: message}, {key: {"note": note, "target_department": target}}
        return _office_page(request, runtime, clerk, query, status_code, errors=errors, values=values)

    if not csrf_ok(request, runtime, form):
        return await again(403, t(lang, "bad_form"))
    if not APPEAL_ID.match(appeal_id) or decision is None:
        return await again(422, t(lang, "bad_form"))
    if decision.comment_required and not note:
        return await again(422, t(lang, decision.comment_required))
    body: dict[str, Any] = {"action": decision.action, "clerk": clerk.name}
    if note:
        body["note"] = note
    if decision.names_department:
        if runtime.city.department(target) is None:
            return await again(422, t(lang, decision.department_missing))
        body["target_department"] = target
    idempotency = str(form.get("idempotency", ""))[:64] or secrets.token_urlsafe(16)
    response = await runtime.upstream.act(clerk.key, appeal_id, body, f"web-{idempotency}-{decision.action}")
    if response.status_code == 200:
        done = see_other(query.url({"done": decision.action, "appeal": appeal_id}))
        return keep_session(request, runtime, done, clerk)
    if response.status_code == 401:
        return signed_out(request, runtime)
    return await again(response.status_code, refusal(response.json()))
