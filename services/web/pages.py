"""What every page shares: the language, the CSRF cookie and token, rendering, the clerk's session cookie."""

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from services.web import i18n
from services.web.contributions import safe_link
from services.web.i18n import LANGS, Lang
from services.web.runtime import WebRuntime
from services.web.session import CSRF_COOKIE, SESSION_COOKIE, Clerk, new_csrf_cookie

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
LOCAL = ZoneInfo("Asia/Shanghai")
LANG_COOKIE = "lang"
YEAR = 365 * 24 * 3600


def lang_of(request: Request) -> Lang:
    """The reader's language: the switch's cookie, Chinese by default."""
    chosen = request.cookies.get(LANG_COOKIE)
    return "en" if chosen == "en" else "zh"


def secure(request: Request) -> bool:
    """Cookies are `Secure` when the page is served over HTTPS: directly, or behind a trusted proxy that says so
    (uvicorn takes its X-Forwarded-Proto only from the addresses of WEB_FORWARDED_ALLOW_IPS)."""
    return request.url.scheme == "https"


def local(at: str | datetime | None) -> str:
    """A time as the city reads it: '2026-03-04 17:05'."""
    if not at:
        return ""
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return moment.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


def render(
    request: Request, runtime: WebRuntime, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page in the reader's language, with a CSRF token for its forms (and the cookie it belongs to)."""
    lang = lang_of(request)
    cookie = request.cookies.get(CSRF_COOKIE) or new_csrf_cookie()
    names = {d.code: (d.name_zh or d.name) if lang == "zh" else d.name for d in runtime.city.departments}
    categories = {c.code.value: (c.name_zh or c.name) if lang == "zh" else c.name for c in runtime.catalogue.categories}
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "lang": lang,
            "other_lang": "en" if lang == "zh" else "zh",
            "t": lambda key: i18n.t(lang, key),
            "status_label": lambda key: i18n.label(i18n.STATUS, lang, key),
            "action_label": lambda key: i18n.label(i18n.ACTIONS, lang, key),
            "clock_label": lambda key: i18n.label(i18n.CLOCKS, lang, key),
            "state_label": lambda key: i18n.label(i18n.STATES, lang, key),
            "queue_state_label": lambda key: i18n.label(i18n.QUEUE_STATES, lang, key),
            "extension_state_label": lambda key: i18n.label(i18n.EXTENSION_STATES, lang, key),
            "send_back_state_label": lambda key: i18n.label(i18n.SEND_BACK_STATES, lang, key),
            "urge_level_label": lambda level: i18n.urge_level(lang, level),
            "visit_tab_label": lambda key: i18n.label(i18n.VISIT_TABS, lang, key),
            "visit_state_label": lambda key: i18n.label(i18n.VISIT_STATES, lang, key),
            "outcome_label": lambda key: i18n.label(i18n.OUTCOMES, lang, key),
            "cause_label": lambda key: i18n.label(i18n.CAUSES, lang, key),
            "timeline_label": lambda entry, for_company=False: (
                i18n.label(i18n.TIMELINE_TYPES, lang, entry["type"])
                if entry.get("type") in i18n.TIMELINE_TYPES
                and not (for_company and entry["type"] in i18n.AS_STATUS_FOR_COMPANY)
                else i18n.label(i18n.STATUS, lang, entry["status"])
            ),
            "acted_by_types": i18n.ACTED_BY,
            "internal_types": i18n.INTERNAL_TYPES,
            "as_status_for_company": i18n.AS_STATUS_FOR_COMPANY,
            "duration": lambda text: i18n.duration(lang, text),
            "category_name": lambda code: categories.get(code, code),
            "time_left": lambda seconds: i18n.time_left(lang, seconds),
            "department_name": lambda code: names.get(code, code or ""),
            # The workbench's nav links the office's page for the coordinating office's clerks only.
            "coordinating_office": runtime.city.coordinating_office,
            "local": local,
            # A link from a department or a company opens only when it passes the door's check (https, a host).
            "safe_link": safe_link,
            "csrf": runtime.sealer.csrf_token(cookie),
            **context,
        },
        status_code=status_code,
    )
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", secure=secure(request))
    return response


def problem_page(request: Request, runtime: WebRuntime, status_code: int, title: str, message: str) -> HTMLResponse:
    """A plain page saying what went wrong, never a stack trace."""
    return render(request, runtime, "message.html", status_code, title=title, message=message, lost=status_code == 401)


def csrf_ok(request: Request, runtime: WebRuntime, form: Any) -> bool:
    """The form carries the token of this browser's CSRF cookie."""
    return runtime.sealer.csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf"))


def clerk_of(request: Request, runtime: WebRuntime) -> Clerk | None:
    """The signed-in clerk, if the session cookie is valid, not idle too long and not too old, and its key is
    still its department's (a key taken out of the key file ends the sessions it opened at web's next start)."""
    settings = runtime.settings
    clerk = runtime.sealer.open(
        request.cookies.get(SESSION_COOKIE), settings.idle_minutes * 60, settings.session_hours * 3600
    )
    return clerk if clerk is not None and department_key(runtime, clerk.key) == clerk.department else None


def department_key(runtime: WebRuntime, key: str) -> str | None:
    """The department whose key `key` is; None for any other key (operator, admin, channel, liaison) or none."""
    principal = runtime.keys.lookup(key)
    return principal.name if principal is not None and principal.kind == "department" else None


def keep_session(request: Request, runtime: WebRuntime, response: Response, clerk: Clerk) -> Response:
    """Seal the session again: its idle clock starts over with this request."""
    response.set_cookie(
        SESSION_COOKIE,
        runtime.sealer.seal(clerk),
        max_age=int(runtime.settings.session_hours * 3600),
        path="/workbench",
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )
    return response


def safe_next(target: str | None) -> str:
    """A local path to go back to after switching language; anything else goes home."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def lang_cookie(response: Response, lang: str, request: Request) -> Response:
    """Remember the reader's language for a year."""
    if lang in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=YEAR, samesite="lax", secure=secure(request))
    return response
