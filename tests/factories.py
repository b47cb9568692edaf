"""Test data in one place: what the services answer (an appeal and its deadlines as router shows them), fakes of the
services behind web, and a browser on web (a clerk signed in to the workbench, a company holding its link).

Each test module states only what differs from these; the times are hours from `NOW`, taken once at import.
"""

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from libs.auth import KeyStore, hash_key
from libs.phones import e164
from services.web.app import create_app
from services.web.settings import WebSettings
from tests.helpers import appeal_body, fake_page

NOW = datetime.now(UTC).replace(microsecond=0)
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
LEAD, OFFICE = "nanshan-hrss", "coord"
# One key per department a test signs in as or acts for.
KEYS = {
    LEAD: "lead-department-key",
    OFFICE: "coordinating-office-key",
    "commerce": "commerce-department-key",
    "tax": "tax-department-key",
}
TOKEN = "the-status-token"


def at(hours: float) -> str:
    """`NOW` and `hours`, as router and intake write a time."""
    return (NOW + timedelta(hours=hours)).isoformat()


# What a channel posts.


def lanhai_appeal(**overrides: Any) -> dict[str, Any]:
    """The browser tests' company (深圳市蓝海网络科技有限公司, 25 staff, Nanshan) asking for help hiring after the
    holiday, as a channel posts it; nested overrides as `appeal_body` takes them."""
    lanhai = {
        "category": "labour",
        "title": "节后员工无法返岗",
        "description": "节后员工无法返岗，订单交付困难，希望协助招工。",
        "enterprise": {
            "name": "深圳市蓝海网络科技有限公司",
            "employees": 25,
            "industry": "互联网服务",
            "district": "nanshan",
        },
        "contact": {"name": "李伟", "phone": "13800138000", "email": "liwei@example.com"},
    }
    for key, value in overrides.items():
        lanhai[key] = (
            {**lanhai[key], **value} if isinstance(value, dict) and isinstance(lanhai.get(key), dict) else value
        )
    return appeal_body(**lanhai)


# What router answers.


def deadline(clock: str, state: str, due_hours: float | None, *, department: str = LEAD, **extra: Any) -> dict:
    """A deadline as router shows it (`libs.deadlines.Deadline`): due in `due_hours` (None while paused); seconds
    remaining only while it runs."""
    overdue = state == "breached" or (state == "running" and due_hours is not None and due_hours < 0)
    return {
        "clock": clock,
        "department": department,
        "state": state,
        "target": "72h",
        "started_at": at(-24),
        "due_at": at(due_hours) if due_hours is not None else None,
        "remaining_seconds": due_hours * 3600 if state == "running" and due_hours is not None else None,
        "overdue": overdue,
        "original_due_at": None,
        "clock_id": f"{APPEAL_ID}:{clock}:0",
        "urge_level": 1 if state == "breached" else None,
        **extra,
    }


def appeal_view(**extra: Any) -> dict[str, Any]:
    """An appeal as router shows it to a department (`AppealOut`): accepted by `LEAD`, its resolution clock running
    with 48 hours left."""
    return {
        "appeal_id": APPEAL_ID,
        "status": "accepted",
        "lead": LEAD,
        "cohandlers": [],
        "category": "labour",
        "district": "nanshan",
        "size_band": "small",
        "channel": "web",
        "flags": [],
        "lists": [],
        "declared_flags": [],
        "policies": [],
        "title": "节后员工无法返岗",
        "description": "订单交付困难。",
        "enterprise": {"uscc": "91440300MA5FXT4K8Y", "name": "蓝海科技", "employees": 25, "industry": "互联网"},
        "contact": {"name": "李伟", "phone": "+8613800138000"},
        "submitted_at": at(-30),
        "sequence": 3,
        "deadlines": [deadline("resolution", "running", 48)],
        "timeline": [{"type": "appeal.accepted.v1", "status": "accepted", "time": at(-20), "department": LEAD}],
        "extensions": [],
        "contributions": [],
        "urgings": [],
        "redo_count": 0,
        "redo_due_at": None,
        "visit": None,
        **extra,
    }


def pending_extension(**extra: Any) -> dict[str, Any]:
    """An extension of the resolution clock `LEAD` asked for and the office has not answered."""
    return {
        "state": "pending",
        "clock_id": f"{APPEAL_ID}:resolution:0",
        "department": LEAD,
        "clerk": "王芳",
        "until": at(96),
        "reason": "银行授信委员会下周开会",
        "previous_due_at": at(48),
        "asked_at": at(-1),
        "decided_at": None,
        "decided_by": None,
        "comment": None,
        **extra,
    }


def queue_row(n: int = 0, **extra: Any) -> dict[str, Any]:
    """A row of router's city queue (GET /v1/appeals): the n-th appeal, an extension pending."""
    return {
        "appeal_id": APPEAL_ID if n == 0 else f"01JB8X4R5ZJ6Q8V2Y7K9M3N{n:03d}",
        "title": f"节后员工无法返岗 {n}",
        "category": "labour",
        "district": "nanshan",
        "enterprise_name": "深圳市蓝海网络科技有限公司",
        "lead": LEAD,
        "cohandlers": [],
        "status": "accepted",
        "submitted_at": at(-30 - n),
        "states": ["extension_pending"],
        "deadlines": [deadline("resolution", "running", 48 - n)],
        "extension": pending_extension(),
        **extra,
    }


# Fakes of the services behind web, as `httpx.MockTransport` handlers.


def _refused(refuse: tuple[int, str]) -> httpx.Response:
    status, detail = refuse
    return httpx.Response(status, json={"detail": detail})


class FakeRouter:
    """Router's answers to web: a department's worklist (the sign-in's check), the city queue (to the office's key
    alone), the appeal, and actions, each kept with its key and idempotency key. A contribution, an extension asked
    and a transfer asked land on the appeal as router keeps them; `refuse` answers the next action with (status,
    detail) instead of applying it."""

    def __init__(self, rows: list[dict] | None = None, one: dict | None = None) -> None:
        self.rows = rows if rows is not None else [queue_row()]
        self.appeal = one or appeal_view()
        self.worklist: list[dict] = []
        self.queue_params: list[dict[str, str]] = []
        self.actions: list[tuple[dict, str | None, str | None]] = []
        self.refuse: tuple[int, str] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("x-api-key")
        path = request.url.path
        if path.startswith("/v1/departments/"):
            return httpx.Response(200, json=self.worklist)
        if path == "/v1/appeals":
            if key != KEYS[OFFICE]:
                return httpx.Response(403, json={"detail": "the city queue is the coordinating office's"})
            params = dict(request.url.params)
            self.queue_params.append(params)
            return fake_page(request, self.rows)
        if path == f"/v1/appeals/{APPEAL_ID}" and request.method == "GET":
            return httpx.Response(200, json=self.appeal)
        if path == f"/v1/appeals/{APPEAL_ID}/actions":
            body = json.loads(request.content)
            self.actions.append((body, key, request.headers.get("idempotency-key")))
            if self.refuse:
                return _refused(self.refuse)
            self._apply(body, key)
            return httpx.Response(200, json=self.appeal)
        return httpx.Response(404, json={"detail": "not found"})

    def _apply(self, body: dict, key: str | None) -> None:
        if body["action"] == "contribute":
            department = next(d for d, k in KEYS.items() if k == key)
            sent = {"department": department, "at": at(0), **{k: body[k] for k in ("clerk", "note", "attachments")}}
            self.appeal["contributions"] = [*self.appeal["contributions"], sent]
        if body["action"] == "request_extension":
            asked = pending_extension(until=body["until"], reason=body["reason"], clerk=body["clerk"])
            self.appeal["extensions"] = [*self.appeal["extensions"], asked]
        if body["action"] == "request_transfer":
            self.appeal["transfer_request"] = {
                "department": self.appeal["lead"],
                "clerk": body["clerk"],
                "target_department": body["target_department"],
                "reason": body["reason"],
                "at": at(0),
            }


class FakeIntake:
    """Intake's answers to web for one appeal and its status token: the appeal, and its contact (GET, and PUT as
    intake's contact calls do: the phone to E.164, 422 naming the field, 409 once erased). Each PUT is kept."""

    def __init__(
        self,
        contact: dict | None = None,
        erased_at: str | None = None,
        timeline: list[dict] | None = None,
        status: str = "routed",
        resolution: str | None = None,
    ) -> None:
        self.contact, self.erased_at, self.status, self.resolution = contact, erased_at, status, resolution
        submitted = [{"time": "2026-03-04T09:00:00+00:00", "status": "submitted"}]
        self.timeline = timeline if timeline is not None else submitted
        self.puts: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-status-token") != TOKEN:
            return httpx.Response(401, json={"detail": "wrong token"})
        path = request.url.path
        if path == f"/v1/appeals/{APPEAL_ID}":
            appeal = {
                "appeal_id": APPEAL_ID,
                "title": "节后员工无法返岗",
                "status": self.status,
                "resolution": self.resolution,
                "timeline": self.timeline,
            }
            return httpx.Response(200, json={**appeal, "submitted_at": "2026-03-04T09:00:00+00:00", "deadlines": []})
        if path == f"/v1/appeals/{APPEAL_ID}/contact" and request.method == "GET":
            return httpx.Response(
                200, json={"appeal_id": APPEAL_ID, "contact": self.contact, "erased_at": self.erased_at}
            )
        if path == f"/v1/appeals/{APPEAL_ID}/contact" and request.method == "PUT":
            return self._correct(json.loads(request.content))
        return httpx.Response(404, json={"detail": "not found"})

    def _correct(self, body: dict) -> httpx.Response:
        self.puts.append(dict(body))
        if self.erased_at:
            return httpx.Response(409, json={"detail": "this appeal's contact was erased"})
        try:
            body["phone"] = e164(body["phone"])
        except ValueError as exc:
            errors = [{"field": "phone", "message": f"Value error, {exc}"}]
            return httpx.Response(422, json={"detail": "invalid request", "errors": errors})
        self.contact = {"email": None, "wechat_openid": None, **body}
        return httpx.Response(202, json={"appeal_id": APPEAL_ID, "event_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N4P6"})


# A browser on web, with fakes behind it.


def web_app(upstream: Callable[[httpx.Request], httpx.Response], **settings: Any) -> FastAPI:
    """Web with `upstream` answering its calls to the services, and a department key for each of `KEYS`."""
    urls = {"intake_url": "http://intake", "router_url": "http://router", "stats_url": "http://stats"}
    app = create_app(WebSettings(**{**urls, **settings}))
    runtime = app.state.runtime
    runtime.keys = KeyStore([{"scope": f"department:{d}", "sha256": hash_key(k)} for d, k in KEYS.items()])
    runtime.upstream.http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    return app


@contextlib.asynccontextmanager
async def workbench(
    upstream: Callable[[httpx.Request], httpx.Response],
    department: str,
    lang: str = "zh",
    name: str = "陈伟",
    **settings: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in to the workbench as `name` of `department`, with `upstream` behind web."""
    app = web_app(upstream, **settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://web") as client:
        client.cookies.set("lang", lang)
        form = await client.get("/workbench")
        signed = await client.post(
            "/workbench/sign-in",
            data={"csrf": csrf_of(form), "name": name, "department": department, "key": KEYS[department]},
        )
        assert signed.status_code == 303, signed.text
        yield client
    await app.state.runtime.upstream.http.aclose()


@contextlib.asynccontextmanager
async def portal(
    intake: Callable[[httpx.Request], httpx.Response], lang: str = "zh"
) -> AsyncIterator[httpx.AsyncClient]:
    """A company's browser on web, holding the appeal's token cookie, with `intake` behind web."""
    app = web_app(intake)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://web") as client:
        client.cookies.set(f"appeal_{APPEAL_ID}", TOKEN)
        client.cookies.set("lang", lang)
        yield client
    await app.state.runtime.upstream.http.aclose()


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of the page's form."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "the page has a form with its CSRF token"
    return found.group(1)


def section(page: httpx.Response, pattern: str) -> str:
    """The part of the page `pattern` finds (dot matching newlines)."""
    found = re.search(pattern, page.text, re.S)
    assert found, pattern
    return found.group(0)
