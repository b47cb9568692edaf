"""The workbench's supervision pages over a fake router: the coordinating office's page of the city queue (tabs,
filters, sorting, pages, approving and rejecting an extension in the clerk's name) and the lead's request for an
extension on the appeal's page; and the pure reading of extensions and queue rows behind them."""

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from libs.auth import KeyStore, hash_key
from services.web import extensions
from services.web.app import create_app
from services.web.office import QueueQuery, query_of, sort_rows, view
from services.web.settings import WebSettings

NOW = datetime.now(UTC).replace(microsecond=0)
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
LEAD, OFFICE = "nanshan-hrss", "coord"
KEYS = {LEAD: "lead-department-key", OFFICE: "coordinating-office-key", "operator": "an-operator-key"}


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


def deadline(clock: str, state: str, due_hours: float | None, **extra: Any) -> dict[str, Any]:
    due = at(due_hours) if due_hours is not None else None
    overdue = state == "breached" or (state == "running" and due_hours is not None and due_hours < 0)
    return {
        "clock": clock,
        "department": LEAD,
        "state": state,
        "target": "72h",
        "started_at": at(-24),
        "due_at": due,
        "remaining_seconds": due_hours * 3600 if due_hours is not None else None,
        "overdue": overdue,
        "original_due_at": None,
        **extra,
    }


def pending_extension(**extra: Any) -> dict[str, Any]:
    return {
        "state": "pending",
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


def appeal(**extra: Any) -> dict[str, Any]:
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
        **extra,
    }


class FakeRouter:
    """Router's answers to web: a department's worklist (the sign-in's check), the city queue, an appeal, actions.

    `refuse` answers the next action with (status, detail) instead of applying it."""

    def __init__(self, rows: list[dict] | None = None, one: dict | None = None) -> None:
        self.rows = rows if rows is not None else [queue_row()]
        self.appeal = one or appeal()
        self.queue_params: list[dict[str, str]] = []
        self.actions: list[tuple[dict, str | None, str | None]] = []
        self.refuse: tuple[int, str] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("x-api-key")
        path = request.url.path
        if path.startswith("/v1/departments/"):
            return httpx.Response(200, json=[])
        if path == "/v1/appeals":
            if key != KEYS[OFFICE]:
                return httpx.Response(403, json={"detail": "the city queue is the coordinating office's"})
            params = dict(request.url.params)
            self.queue_params.append(params)
            offset, limit = int(params["offset"]), int(params["limit"])
            return httpx.Response(200, json=self.rows[offset : offset + limit])
        if path == f"/v1/appeals/{APPEAL_ID}" and request.method == "GET":
            return httpx.Response(200, json=self.appeal)
        if path == f"/v1/appeals/{APPEAL_ID}/actions":
            body = json.loads(request.content)
            self.actions.append((body, key, request.headers.get("idempotency-key")))
            if self.refuse:
                status, detail = self.refuse
                return httpx.Response(status, json={"detail": detail})
            if body["action"] == "request_extension":
                asked = pending_extension(until=body["until"], reason=body["reason"], clerk=body["clerk"])
                self.appeal["extensions"] = [*self.appeal["extensions"], asked]
            return httpx.Response(200, json=self.appeal)
        return httpx.Response(404, json={"detail": "not found"})


@contextlib.asynccontextmanager
async def workbench(fake: FakeRouter, department: str, lang: str = "zh", name: str = "陈伟"):
    """A browser signed in to the workbench as `name` of `department`, with `fake` as router."""
    app = create_app(WebSettings(intake_url="http://intake", router_url="http://router"))
    runtime = app.state.runtime
    runtime.keys = KeyStore(
        [{"scope": f"department:{d}", "sha256": hash_key(k)} for d, k in KEYS.items() if d != "operator"]
    )
    await runtime.upstream.http.aclose()
    runtime.upstream.http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://web") as client:
        client.cookies.set("lang", lang)
        form = await client.get("/workbench")
        signed = await client.post(
            "/workbench/sign-in",
            data={"csrf": csrf_of(form), "name": name, "department": department, "key": KEYS[department]},
        )
        assert signed.status_code == 303, signed.text
        yield client
    await runtime.upstream.http.aclose()


def csrf_of(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def idempotency_of(page: httpx.Response, form_id: str) -> str:
    form = re.search(rf'<form [^>]*id="{form_id}".*?</form>', page.text, re.S).group(0)
    return re.search(r'name="idempotency" value="([^"]+)"', form).group(1)


# The pure reading.


def test_the_due_time_a_clerk_types_is_read_in_the_city_time_zone():
    assert extensions.until_of("2026-12-10T18:00") == datetime(2026, 12, 10, 10, 0, tzinfo=UTC)
    assert extensions.until_of("2026-12-10T18:00+00:00") == datetime(2026, 12, 10, 18, 0, tzinfo=UTC)
    assert extensions.until_of("") is None and extensions.until_of("next friday") is None
    assert extensions.local_input("2026-12-10T10:00:00+00:00") == "2026-12-10T18:00"


def test_an_unanswered_extension_lapses_at_the_due_time_it_was_asked_against():
    asked = pending_extension()
    assert extensions.state_of(asked, NOW) == "pending"
    assert extensions.state_of(asked, NOW + timedelta(hours=48)) == "lapsed"
    assert extensions.pending([asked], NOW) == asked
    assert extensions.pending([asked], NOW + timedelta(hours=49)) is None
    assert extensions.state_of({**asked, "state": "approved"}, NOW + timedelta(hours=49)) == "approved"


def test_a_resolution_clock_is_extended_already_by_an_approval_asked_while_it_ran():
    approved = pending_extension(state="approved", asked_at=at(-1))
    running = appeal(extensions=[approved])
    assert extensions.extended_already(running, per_clock=1)
    assert not extensions.extended_already(running, per_clock=2)
    assert not extensions.extended_already(appeal(extensions=[{**approved, "state": "rejected"}]), per_clock=1)
    # A redo's new clock started after the approval: it may be extended again.
    redo = appeal(extensions=[approved], deadlines=[deadline("resolution", "running", 70, started_at=at(0))])
    assert not extensions.extended_already(redo, per_clock=1)
    assert extensions.may_ask(redo, LEAD, NOW, per_clock=1)
    assert not extensions.may_ask(redo, "commerce", NOW, per_clock=1), "the lead's alone"
    assert not extensions.may_ask({**redo, "status": "info_requested"}, LEAD, NOW, per_clock=1)


@pytest.mark.parametrize(
    ("states", "deadlines", "clock", "hours"),
    [
        # Overdue: by the earliest clock that ran out.
        (
            ["overdue"],
            [deadline("scope", "breached", -5), deadline("resolution", "running", -2), deadline("response", "met", 1)],
            "scope",
            -5,
        ),
        # Not overdue (in the queue's words): the soonest running due time, though a met clock was late.
        (["at_risk"], [deadline("scope", "breached", -5), deadline("resolution", "running", 3)], "resolution", 3),
        (["at_risk"], [deadline("response", "running", 7), deadline("resolution", "running", 3)], "resolution", 3),
    ],
)
def test_a_row_stands_by_how_long_it_is_overdue_or_its_soonest_due(states, deadlines, clock, hours):
    standing = extensions.standing({"states": states, "deadlines": deadlines}, NOW)
    assert standing["clock"] == clock and standing["seconds"] == pytest.approx(hours * 3600)


def test_a_row_without_a_running_clock_stands_nowhere():
    assert extensions.standing({"states": [], "deadlines": [deadline("resolution", "paused", None)]}, NOW) is None


def test_columns_sort_either_way_with_rows_lacking_the_value_last():
    rows = [
        view(queue_row(1, deadlines=[deadline("resolution", "running", 5)], lead="commerce"), NOW),
        view(queue_row(2, deadlines=[], lead=None), NOW),
        view(queue_row(3, deadlines=[deadline("resolution", "running", -1)], states=["overdue"]), NOW),
    ]
    titles = lambda rows: [r["title"][-1] for r in rows]  # noqa: E731
    assert titles(sort_rows(rows, "due", False, str)) == ["3", "1", "2"]
    assert titles(sort_rows(rows, "due", True, str)) == ["1", "3", "2"]
    assert titles(sort_rows(rows, "submitted", False, str)) == ["3", "2", "1"]
    assert titles(sort_rows(rows, "lead", False, str)) == ["1", "3", "2"]
    assert titles(sort_rows(rows, "queue", True, str)) == ["1", "2", "3"], "router's own order stays"


def test_the_pages_query_keeps_only_what_the_city_knows_and_its_links_leave_defaults_out():
    runtime = create_app(WebSettings()).state.runtime
    params = {"state": "nope", "department": "<b>", "district": "nanshan", "category": "labour", "page": "-3"}
    query = query_of({**params, "sort": "lead", "order": "desc"}, runtime)
    assert query == QueueQuery(state="overdue", district="nanshan", category="labour", sort="lead", order="desc")
    assert query.filters() == {"district": "nanshan", "category": "labour"}
    assert query_of({"page": "x"}, runtime).page == 1 and query_of({"page": "99999999"}, runtime).page == 4000
    assert QueueQuery().url() == "/workbench/office"
    url = QueueQuery(state="extension_pending").url({"done": "approve_extension"}, page=2)
    assert url == "/workbench/office?state=extension_pending&page=2&done=approve_extension"


# The office's page.


async def test_only_the_coordinating_office_sees_the_link_and_opens_the_page():
    async with workbench(FakeRouter(), LEAD, name="王芳") as client:
        worklist = await client.get("/workbench")
        assert 'href="/workbench/office"' not in worklist.text
        refused = await client.get("/workbench/office")
        assert refused.status_code == 403 and "督办页面只对协调办公室开放" in refused.text
    async with workbench(FakeRouter(), OFFICE) as client:
        worklist = await client.get("/workbench")
        assert '<a href="/workbench/office" id="nav-office">督办</a>' in worklist.text
        assert (await client.get("/workbench/office")).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(WebSettings())), base_url="http://web") as c:
        nobody = await c.get("/workbench/office")
        assert nobody.status_code == 200 and 'action="/workbench/sign-in"' in nobody.text


async def test_a_tab_and_its_filters_ask_router_and_the_row_shows_the_pending_extension_escaped():
    fake = FakeRouter([queue_row(title="<script>alert(1)</script> 员工返岗")])
    async with workbench(fake, OFFICE) as client:
        page = await client.get(
            "/workbench/office",
            params={"state": "extension_pending", "district": "nanshan", "category": "labour", "department": "x"},
        )
    assert page.status_code == 200
    assert fake.queue_params == [
        {"state": "extension_pending", "district": "nanshan", "category": "labour", "limit": "26", "offset": "0"}
    ]
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt; 员工返岗" in page.text
    assert re.search(r'id="tab-extension_pending" aria-current="page">延期待审批<', page.text)
    row = re.search(rf'<tr [^>]*id="row-{APPEAL_ID}".*?</tr>', page.text, re.S).group(0)
    for shown in ("南山区人力资源局", "已受理", "剩余1天23小时", "待审批", "银行授信委员会下周开会", "王芳"):
        assert shown in row, shown
    assert extensions.local_input(at(96)).replace("T", " ") in row, "asked until, in city time"
    assert f'action="/workbench/office/appeals/{APPEAL_ID}/extension"' in row and 'name="csrf"' in row
    assert 'name="back" value="state=extension_pending&amp;district=nanshan&amp;category=labour"' in row
    async with workbench(FakeRouter([queue_row()]), OFFICE, lang="en") as client:
        english = await client.get("/workbench/office", params={"state": "extension_pending"})
    for said in ("The city queue", "Extension pending", "Approve the extension", "Comment (required to reject)"):
        assert said in english.text, said


async def test_the_office_approves_in_its_clerks_name_and_comes_back_to_the_same_tab():
    fake = FakeRouter()
    async with workbench(fake, OFFICE, name="陈伟") as client:
        page = await client.get("/workbench/office", params={"state": "extension_pending", "district": "nanshan"})
        form = {
            "csrf": csrf_of(page),
            "idempotency": idempotency_of(page, f"decide-{APPEAL_ID}"),
            "back": "state=extension_pending&district=nanshan",
            "note": " 同意延期一次。 ",
            "decision": "approve",
        }
        done = await client.post(f"/workbench/office/appeals/{APPEAL_ID}/extension", data=form)
        assert done.status_code == 303
        location = urlsplit(done.headers["location"])
        assert location.path == "/workbench/office"
        assert parse_qs(location.query) == {
            "state": ["extension_pending"],
            "district": ["nanshan"],
            "done": ["approve_extension"],
            "appeal": [APPEAL_ID],
        }
        after = await client.get(done.headers["location"])
        assert re.search(r'id="office-done">已处理: 同意延期 · <a href="/workbench/appeals/' + APPEAL_ID, after.text)
    [(body, key, idempotency)] = fake.actions
    assert body == {"action": "approve_extension", "clerk": "陈伟", "note": "同意延期一次。"}
    assert key == KEYS[OFFICE] and idempotency.startswith("web-") and idempotency.endswith("-approve_extension")


async def test_a_rejection_needs_a_comment_and_routers_refusal_lands_beside_the_rows_form():
    fake = FakeRouter()
    async with workbench(fake, OFFICE) as client:
        page = await client.get("/workbench/office", params={"state": "extension_pending"})
        form = {"csrf": csrf_of(page), "back": "state=extension_pending", "note": "  ", "decision": "reject"}
        bare = await client.post(f"/workbench/office/appeals/{APPEAL_ID}/extension", data=form)
        assert bare.status_code == 422 and fake.actions == []
        error = re.search(rf'<p class="error" role="alert" id="decide-error-{APPEAL_ID}">([^<]*)</p>', bare.text)
        assert error and error.group(1) == "不同意延期时必须填写意见，告知部门原因。"
        assert f'aria-describedby="decide-error-{APPEAL_ID}"' in bare.text

        fake.refuse = (409, "the extension lapsed unanswered at the old due time")
        late = await client.post(f"/workbench/office/appeals/{APPEAL_ID}/extension", data={**form, "note": "材料不足"})
        assert late.status_code == 409
        assert re.search(rf'id="decide-error-{APPEAL_ID}">the extension lapsed unanswered', late.text)
        assert ">材料不足</textarea>" in late.text, "the comment typed comes back"
        assert fake.actions[0][0] == {"action": "reject_extension", "clerk": "陈伟", "note": "材料不足"}

        # A refusal for a row this page no longer shows is said above the table.
        fake.rows = []
        gone = await client.post(f"/workbench/office/appeals/{APPEAL_ID}/extension", data={**form, "note": "x"})
        assert gone.status_code == 409 and re.search(r'<p class="notice" role="alert"><strong>无法执行', gone.text)


async def test_a_decision_needs_the_forms_csrf_token_and_the_office_key():
    fake = FakeRouter()
    async with workbench(fake, OFFICE) as client:
        form = {"back": "", "note": "ok", "decision": "approve"}
        assert (await client.post(f"/workbench/office/appeals/{APPEAL_ID}/extension", data=form)).status_code == 403
    async with workbench(fake, LEAD) as client:
        page = await client.get("/workbench")
        posted = await client.post(
            f"/workbench/office/appeals/{APPEAL_ID}/extension", data={**form, "csrf": csrf_of(page)}
        )
        assert posted.status_code == 403
    assert fake.actions == []


async def test_a_columns_sort_pages_through_routers_window_and_says_its_order():
    rows = [queue_row(n, deadlines=[deadline("resolution", "running", 100 - n)]) for n in range(1, 31)]
    fake = FakeRouter(rows)
    async with workbench(fake, OFFICE) as client:
        first = await client.get("/workbench/office", params={"state": "all", "sort": "due"})
        second = await client.get("/workbench/office", params={"state": "all", "sort": "due", "page": "2"})
        queue_page = await client.get("/workbench/office", params={"state": "all", "page": "2"})
    assert fake.queue_params[0] == {"limit": "500", "offset": "0"}, "state=all asks for every open appeal"
    first_rows = re.findall(r'<tr [^>]*data-appeal="([0-9A-Z]+)"', first.text)
    assert len(first_rows) == 25 and first_rows[0] == rows[-1]["appeal_id"], "the soonest due first"
    assert 'aria-sort="ascending"><a href="/workbench/office?state=all&amp;sort=due&amp;order=desc"' in first.text
    assert 'id="page-next"' in first.text and 'id="page-prev"' not in first.text
    assert len(re.findall(r"<tr [^>]*data-appeal=", second.text)) == 5 and 'id="page-next"' not in second.text
    assert fake.queue_params[2] == {"limit": "26", "offset": "25"}, "router's own order pages at router"
    assert len(re.findall(r"<tr [^>]*data-appeal=", queue_page.text)) == 5


# The lead's request on the appeal's page.


async def test_the_lead_asks_for_an_extension_in_city_time_and_then_waits_for_the_office():
    fake = FakeRouter()
    async with workbench(fake, LEAD, name="王芳") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        assert 'id="act-request_extension"' in page.text
        assert f'name="until" type="datetime-local" required value="{extensions.local_input(at(48))}"' in page.text
        assert "延期最多到原时限后10个工作日" in page.text
        form = {
            "csrf": csrf_of(page),
            "idempotency": idempotency_of(page, "act-request_extension"),
            "until": "2030-12-10T18:00",
            "reason": " 银行授信委员会下周开会 ",
        }
        done = await client.post(f"/workbench/appeals/{APPEAL_ID}/extension", data=form)
        assert done.status_code == 303
        assert done.headers["location"] == f"/workbench/appeals/{APPEAL_ID}?done=request_extension#extensions"
        after = await client.get(done.headers["location"])
    [(body, key, _)] = fake.actions
    assert body == {
        "action": "request_extension",
        "until": "2030-12-10T18:00:00+08:00",
        "reason": "银行授信委员会下周开会",
        "clerk": "王芳",
    }
    assert key == KEYS[LEAD]
    assert "已完成: 申请延期" in after.text and 'id="extension-waiting"' in after.text
    assert 'id="act-request_extension"' not in after.text and 'data-state="pending"' in after.text


async def test_routers_refusal_of_a_request_shows_beside_the_form_with_what_was_typed():
    fake = FakeRouter()
    fake.refuse = (409, "an extension reaches at most 10wd past the current due time")
    async with workbench(fake, LEAD, lang="en") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        form = {"csrf": csrf_of(page), "until": "2030-12-10T18:00", "reason": "<b>the bank</b>"}
        refused = await client.post(f"/workbench/appeals/{APPEAL_ID}/extension", data=form)
        assert refused.status_code == 409
        form_html = re.search(r'<form [^>]*id="act-request_extension".*?</form>', refused.text, re.S).group(0)
        assert 'id="extension-error">an extension reaches at most 10wd' in form_html
        assert 'value="2030-12-10T18:00"' in form_html and "&lt;b&gt;the bank&lt;/b&gt;</textarea>" in form_html

        # What cannot even be sent stays in web, each beside its field; so does a form without its token.
        empty = await client.post(f"/workbench/appeals/{APPEAL_ID}/extension", data={**form, "until": "", "reason": ""})
        assert empty.status_code == 422
        assert 'id="until-error">Give the new due date and time<' in empty.text
        assert 'id="reason-error">Say why the department needs the time<' in empty.text
        stale = await client.post(f"/workbench/appeals/{APPEAL_ID}/extension", data={**form, "csrf": "x"})
        assert stale.status_code == 403
    assert len(fake.actions) == 1


async def test_extensions_extended_deadlines_and_the_timeline_read_in_both_languages():
    decided = pending_extension(
        state="approved", decided_at=at(-0.5), decided_by="陈伟", comment="同意延期一次。", previous_due_at=at(-2)
    )
    timeline = [
        {"type": "appeal.accepted.v1", "status": "accepted", "time": at(-20), "department": LEAD, "clerk": "王芳"},
        {
            "type": "appeal.extension_requested.v1",
            "status": "accepted",
            "time": at(-1),
            "department": LEAD,
            "actor": LEAD,
            "clerk": "王芳",
            "reason": "银行授信委员会下周开会",
            "due_at": at(96),
        },
        {
            "type": "appeal.extension_approved.v1",
            "status": "accepted",
            "time": at(-0.5),
            "department": LEAD,
            "actor": OFFICE,
            "clerk": "陈伟",
            "note": "同意延期一次。",
            "reason": "银行授信委员会下周开会",
            "due_at": at(96),
        },
    ]
    extended = deadline("resolution", "running", 96, original_due_at=at(48))
    fake = FakeRouter(one=appeal(extensions=[decided], timeline=timeline, deadlines=[extended]))
    async with workbench(fake, LEAD, name="王芳") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        client.cookies.set("lang", "en")
        english = await client.get(f"/workbench/appeals/{APPEAL_ID}")
    local = lambda hours: extensions.local_input(at(hours)).replace("T", " ")  # noqa: E731
    assert f"原定 {local(48)}，已延期" in page.text
    assert re.search(r'data-state="approved">\s*<strong class="state">已同意</strong>', page.text)
    assert (
        '<span class="comment">同意延期一次。</span>' in page.text and "审批人: 深圳市企业服务协调办公室" in page.text
    )
    assert "<strong>申请延期</strong> · 南山区人力资源局 · 王芳" in page.text
    assert "<strong>同意延期</strong> · 深圳市企业服务协调办公室（12345热线） · 陈伟" in page.text
    assert f"延期至 {local(96)}" in page.text
    assert 'id="act-request_extension"' not in page.text and "本办结时限已延期，不能再次申请。" in page.text
    assert f"extended from {local(48)}" in english.text and "<strong>Extension approved</strong>" in english.text
    assert "The office&#39;s comment: <span" in english.text
