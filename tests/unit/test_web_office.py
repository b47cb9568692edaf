"""The workbench's supervision pages over a fake router: the coordinating office's page of the city queue (tabs,
filters, sorting, pages, and its decisions in the clerk's name: extensions, send-backs, transfer requests, urging,
and as the city's dispatcher moving an appeal or bringing in a co-handler),
and on the lead's appeal page the extension it asks for, the send-back window, its transfer requests and the
office's urgings; and the pure reading of extensions, windows, urgings and queue rows behind them."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.web import extensions, supervision
from services.web.app import create_app
from services.web.office import QueueQuery, office_actions, query_of, sort_rows, view
from services.web.settings import WebSettings
from tests.factories import (
    APPEAL_ID,
    KEYS,
    LEAD,
    NOW,
    OFFICE,
    FakeRouter,
    appeal_view,
    at,
    csrf_of,
    deadline,
    pending_extension,
    queue_row,
    workbench,
)


def idempotency_of(page: httpx.Response, form_id: str) -> str:
    form = re.search(rf'<form [^>]*id="{form_id}".*?</form>', page.text, re.S)
    assert form, f"the page has the form {form_id}"
    found = re.search(r'name="idempotency" value="([^"]+)"', form.group(0))
    assert found, f"the form {form_id} has its idempotency token"
    return found.group(1)


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


def test_the_current_resolution_clock_is_extended_already_by_an_approval_naming_it():
    approved = pending_extension(state="approved", asked_at=at(-1))
    running = appeal_view(extensions=[approved])
    assert extensions.extended_already(running, per_clock=1)
    assert not extensions.extended_already(running, per_clock=2)
    assert not extensions.extended_already(appeal_view(extensions=[{**approved, "state": "rejected"}]), per_clock=1)
    # A rejection asked later names the same clock: the approval still counts.
    rejected_later = {**approved, "state": "rejected", "asked_at": at(-0.5)}
    assert extensions.extended_already(appeal_view(extensions=[approved, rejected_later]), per_clock=1)
    # A reopening's new run is the current clock, named anew: it may be extended again, from its own due time.
    first = deadline("resolution", "met", None, started_at=at(-30))
    again = deadline("resolution", "running", 70, started_at=at(0), clock_id=f"{APPEAL_ID}:resolution:1")
    redo = appeal_view(extensions=[approved], deadlines=[again, first])
    assert extensions.current_resolution(redo["deadlines"]) is again
    assert extensions.resolution_due(redo["deadlines"]) == at(70)
    assert not extensions.extended_already(redo, per_clock=1)
    assert extensions.may_ask(redo, LEAD, NOW, per_clock=1)
    assert not extensions.may_ask(redo, "commerce", NOW, per_clock=1), "the lead's alone"
    assert not extensions.may_ask({**redo, "status": "info_requested"}, LEAD, NOW, per_clock=1)
    second = {**approved, "clock_id": f"{APPEAL_ID}:resolution:1", "asked_at": at(0.5)}
    assert extensions.extended_already({**redo, "extensions": [approved, second]}, per_clock=1)
    # The current clock paused (information asked): no due time to extend from.
    paused = deadline("resolution", "paused", None, started_at=at(0), clock_id=f"{APPEAL_ID}:resolution:1")
    assert extensions.resolution_due([deadline("resolution", "running", 48), paused]) is None
    # A clock router does not name counts no approval: router refuses a request past the limit.
    unnamed = deadline("resolution", "running", 48, clock_id=None)
    assert not extensions.extended_already(appeal_view(extensions=[approved], deadlines=[unnamed]), per_clock=1)


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
        view(queue_row(1, deadlines=[deadline("resolution", "running", 5)], lead="commerce"), NOW, OFFICE),
        view(queue_row(2, deadlines=[], lead=None), NOW, OFFICE),
        view(queue_row(3, deadlines=[deadline("resolution", "running", -1)], states=["overdue"]), NOW, OFFICE),
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
    assert (
        query_of({"page": "x"}, runtime).page == 1 and query_of({"page": "99999999", "sort": "due"}, runtime).page == 20
    )
    assert query_of({"page": "3"}, runtime).page == 1, "in router's order a later page needs its cursor"
    later = query_of({"page": "3", "after": "QUJD", "trail": "WFla.<b>.Wlpa"}, runtime)
    assert (later.page, later.after, later.trail) == (3, "QUJD", "WFla"), "what is not a cursor ends the trail"
    assert query_of({"page": "3", "after": "<b>"}, runtime).after == ""
    assert QueueQuery().url() == "/workbench/office"
    url = QueueQuery(state="extension_pending", after="QUJD").url({"done": "approve_extension"}, page=2)
    assert url == "/workbench/office?state=extension_pending&page=2&after=QUJD&done=approve_extension"
    assert QueueQuery(state="overdue", page=4, after="QUJD", trail="WFla").url(page=1) == "/workbench/office"


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
        {"state": "extension_pending", "district": "nanshan", "category": "labour", "limit": "25"}
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
    assert fake.queue_params[0] == {"limit": "500"}, "state=all asks for every open appeal"
    first_rows = re.findall(r'<tr [^>]*data-appeal="([0-9A-Z]+)"', first.text)
    assert len(first_rows) == 25 and first_rows[0] == rows[-1]["appeal_id"], "the soonest due first"
    assert 'aria-sort="ascending"><a href="/workbench/office?state=all&amp;sort=due&amp;order=desc"' in first.text
    assert 'id="page-next"' in first.text and 'id="page-prev"' not in first.text
    assert len(re.findall(r"<tr [^>]*data-appeal=", second.text)) == 5 and 'id="page-next"' not in second.text
    assert fake.queue_params[2] == {"limit": "25"}, "a later page of router's order without its cursor is the first"
    assert len(re.findall(r"<tr [^>]*data-appeal=", queue_page.text)) == 25


async def test_routers_order_pages_by_its_link_header_forward_and_back():
    rows = [queue_row(n) for n in range(1, 61)]
    fake = FakeRouter(rows)
    async with workbench(fake, OFFICE) as client:
        pages, url = [], "/workbench/office?state=all"
        while url:
            page = await client.get(url)
            pages.append(page)
            found = re.search(r'<a href="([^"]+)" rel="next" id="page-next">', page.text)
            url = found.group(1).replace("&amp;", "&") if found else None
        back = re.search(r'<a href="([^"]+)" rel="prev" id="page-prev">', pages[-1].text).group(1).replace("&amp;", "&")
        again = await client.get(back)
    shown = [re.findall(r'<tr [^>]*data-appeal="([0-9A-Z]+)"', p.text) for p in pages]
    assert [len(s) for s in shown] == [25, 25, 10]
    assert [a for s in shown for a in s] == [r["appeal_id"] for r in rows], "every row once, in router's order"
    assert [q.get("cursor") for q in fake.queue_params[:3]] == [None, "25", "50"], "each cursor from router's Link"
    assert re.findall(r'<tr [^>]*data-appeal="([0-9A-Z]+)"', again.text) == shown[1]
    assert '<span aria-current="page">第 3 页</span>' in pages[-1].text


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
    fake = FakeRouter(one=appeal_view(extensions=[decided], timeline=timeline, deadlines=[extended]))
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


# Supervision: the pure reading.

OTHER = "commerce"


def urging(hours: float = -1, note: str = "请今天下班前答复企业。") -> dict[str, Any]:
    """The office's urging by hand, as router lists it on the appeal."""
    return {"at": at(hours), "by": "陈伟", "note": note}


def urged_entry(department: str = LEAD, hours: float = -1, note: str = "请今天下班前答复企业。") -> dict[str, Any]:
    """The timeline's entry of the office urging `department` by hand."""
    return {
        "type": "appeal.urged.v1",
        "status": "accepted",
        "time": at(hours),
        "department": department,
        "actor": OFFICE,
        "clerk": "陈伟",
        "note": note,
    }


def asked_transfer(hours: float = -2) -> dict[str, Any]:
    return {
        "type": "appeal.transfer_requested.v1",
        "status": "accepted",
        "time": at(hours),
        "department": LEAD,
        "actor": LEAD,
        "clerk": "王芳",
        "reason": "属商务部门职责",
    }


def refused_transfer(hours: float = -1) -> dict[str, Any]:
    return {
        "type": "appeal.transfer_refused.v1",
        "status": "accepted",
        "time": at(hours),
        "department": LEAD,
        "actor": OFFICE,
        "clerk": "陈伟",
        "note": "请先与企业核实用工情况。",
    }


def send_back(state: str = "pending", **extra: Any) -> dict[str, Any]:
    decided = {"decided_at": at(-0.5), "decided_by": "陈伟", "comment": "属人社职责，请继续办理。"}
    return {
        "state": state,
        "declined_by": LEAD,
        "to": OTHER,
        "guidance": "请找商务局",
        "at": at(-3),
        **({} if state == "pending" else decided),
        **extra,
    }


@pytest.fixture(scope="module")
def runtime():
    return create_app(WebSettings()).state.runtime


def test_the_send_back_window_is_the_one_router_reckons():
    def window(**fields: Any) -> supervision.Window:
        return supervision.send_back_window(appeal_view(**fields), NOW)

    fresh = window(assigned_at=at(-1), send_back_closes_at=at(5))
    assert fresh == supervision.Window(open=True, closes_at=NOW + timedelta(hours=5))
    late = window(assigned_at=at(-7), send_back_closes_at=at(-1))
    assert late == supervision.Window(open=False, closes_at=NOW - timedelta(hours=1))
    # Router gives no end when the office leads (the city's fallback) or for an appeal from before windows.
    assert window(assigned_at=at(-7), lead=OFFICE) == supervision.Window(open=True)
    assert window() == supervision.Window(open=True), "router decides"
    # Returned by the office: closed since its overrule.
    overruled = window(assigned_at=at(-30), send_back=send_back("overruled"), send_back_closes_at=at(-0.5))
    assert overruled == supervision.Window(open=False, closes_at=NOW - timedelta(hours=0.5), overruled=True)
    # Moved away and transferred back after the overrule: a new assignment, a new window.
    back_again = window(assigned_at=at(0), send_back=send_back("overruled"), send_back_closes_at=at(6))
    assert back_again.open and not back_again.overruled
    # A time without its zone is UTC, as router keeps it.
    naive = window(send_back_closes_at=(NOW + timedelta(hours=1)).replace(tzinfo=None).isoformat())
    assert naive == supervision.Window(open=True, closes_at=NOW + timedelta(hours=1))


def test_urgings_press_the_lead_since_it_was_assigned_and_the_level_comes_from_its_own_clocks():
    breached = deadline("scope", "breached", -5)
    pressed = [urging(hours=-30), urging(hours=-3), urging(hours=-1, note="最后一次催办")]
    mine = appeal_view(
        assigned_at=at(-20), urgings=pressed, deadlines=[breached, deadline("resolution", "running", 40)]
    )
    urged = supervision.urged(mine, LEAD)
    assert urged["count"] == 2, "the urging before its assignment pressed an earlier lead"
    assert urged["latest"]["note"] == "最后一次催办" and urged["latest"]["by"] == "陈伟"
    assert urged["level"] == 1 and urged["marked"]
    # Urgings press the lead: a co-handler reads none, and its level comes from its own (contribution) clock.
    cohandled = {**mine, "cohandlers": [OTHER]}
    assert supervision.urged(cohandled, OTHER) == {"count": 0, "latest": None, "level": None, "marked": False}
    late_part = deadline("contribution", "breached", -2, department=OTHER, urge_level=2)
    assert supervision.urged({**cohandled, "deadlines": [late_part]}, OTHER)["level"] == 2
    # Returned by the office: what pressed the department the appeal went to meanwhile is not the returned lead's.
    returned = appeal_view(
        assigned_at=at(-30),
        send_back=send_back("overruled"),
        urgings=[urging(hours=-5), urging(hours=-2, note="别的部门"), urging(hours=-0.2)],
    )
    assert [u["at"] for u in supervision.urgings(returned, LEAD)] == [at(-5), at(-0.2)]
    # From before router kept the assignment's time: every urging is the lead's.
    assert supervision.urged(appeal_view(urgings=pressed), LEAD)["count"] == 3
    # The breach alone is the ladder's first step, not the office's urging; router's level counts, and a clock
    # past due that sla has not reported yet is the breach.
    quiet = appeal_view(deadlines=[breached])
    assert supervision.urged(quiet, LEAD) == {"count": 0, "latest": None, "level": 1, "marked": False}
    laddered = appeal_view(
        deadlines=[{**breached, "urge_level": 3}, deadline("scope", "breached", -9, department=OTHER)]
    )
    assert supervision.urged(laddered, LEAD)["level"] == 3 and supervision.urged(laddered, LEAD)["marked"]
    assert supervision.urged(appeal_view(deadlines=[deadline("scope", "running", -0.1)]), LEAD)["level"] == 1
    assert supervision.urged(appeal_view(), LEAD)["level"] is None


def test_the_lead_reads_the_offices_refusal_until_it_asks_again():
    assert supervision.transfer_refused(appeal_view(timeline=[asked_transfer(), refused_transfer()]), LEAD)["note"] == (
        "请先与企业核实用工情况。"
    )
    again = appeal_view(timeline=[asked_transfer(-3), refused_transfer(-2), asked_transfer(-1)])
    assert supervision.transfer_refused(again, LEAD) is None
    assert supervision.transfer_refused(appeal_view(timeline=[asked_transfer()]), LEAD) is None
    assert supervision.transfer_refused(appeal_view(timeline=[refused_transfer()]), OTHER) is None


def test_a_send_back_reads_as_declined_by_one_department_and_received_by_the_other():
    sent = appeal_view(send_back=send_back("overruled"))
    assert supervision.send_back_for(sent, LEAD)["role"] == "declined"
    assert supervision.send_back_for(sent, OTHER)["role"] == "received"
    assert supervision.send_back_for(sent, "tax") is None and supervision.send_back_for(appeal_view(), LEAD) is None


@pytest.mark.parametrize(
    ("fields", "actions"),
    [
        ({}, ["extension", "urge", "move", "add-cohandler"]),
        ({"extension": None, "send_back": send_back()}, ["send-back", "urge", "move", "add-cohandler"]),
        ({"extension": None, "send_back": send_back("confirmed")}, ["urge", "move", "add-cohandler"]),
        # A transfer request's answer grants it where the office chooses: no second way to move it meanwhile.
        ({"extension": None, "transfer_request": {"target_department": OTHER}}, ["transfer", "urge", "add-cohandler"]),
        # Router adds a co-handler while the company is asked for information, but transfers only an open one.
        ({"extension": None, "status": "info_requested"}, ["urge", "add-cohandler"]),
        ({"extension": None, "status": "routed"}, ["urge", "move", "add-cohandler"]),
        ({"extension": None, "status": "reopened"}, ["urge", "move", "add-cohandler"]),
        # Nothing awaits the lead's work, or nobody leads it yet.
        ({"extension": None, "status": "resolved"}, []),
        ({"extension": None, "status": "submitted", "lead": None}, []),
        # The office leads it (the city's fallback): an operator urges then, but the office dispatches it.
        ({"extension": None, "lead": OFFICE}, ["move", "add-cohandler"]),
    ],
)
def test_a_row_offers_the_offices_forms_for_what_awaits_it(fields, actions):
    assert view(queue_row(**fields), NOW, OFFICE)["actions"] == actions
    assert office_actions({"status": "accepted", "lead": LEAD}, OFFICE) == ["urge", "move", "add-cohandler"]


def test_an_urging_level_filters_the_overdue_tab(runtime):
    query = query_of({"state": "sent_back", "urge_level": "2"}, runtime)
    assert (query.state, query.urge_level) == ("overdue", 2)
    assert query.url() == "/workbench/office?urge_level=2"
    assert query_of({"state": "sent_back", "urge_level": "7"}, runtime) == QueueQuery(state="sent_back")
    assert query_of({"urge_level": "x"}, runtime).urge_level == 0


# Supervision: the office's page.


def supervised_row(**extra: Any) -> dict[str, Any]:
    """A row with a pending send-back (it came to commerce) and commerce's transfer request, urged twice, at level 2."""
    return queue_row(
        lead=OTHER,
        status="routed",
        states=["overdue", "sent_back", "transfer_requested"],
        deadlines=[deadline("scope", "breached", -3, department=OTHER)],
        extension=None,
        send_back=send_back(),
        transfer_request={
            "department": OTHER,
            "clerk": "刘洋",
            "target_department": "tax",
            "reason": "涉及社保费缴纳，属税务部门",
            "at": at(-1),
        },
        urge_level=2,
        urgings=2,
        **extra,
    )


async def test_the_office_finds_send_backs_and_transfer_requests_under_their_tabs_with_the_urging_level():
    fake = FakeRouter([supervised_row()])
    async with workbench(fake, OFFICE) as client:
        page = await client.get("/workbench/office", params={"state": "sent_back"})
        await client.get("/workbench/office", params={"state": "transfer_requested"})
        leveled = await client.get("/workbench/office", params={"state": "all", "urge_level": "2"})
        client.cookies.set("lang", "en")
        english = await client.get("/workbench/office", params={"state": "transfer_requested"})
    assert [q.get("state") for q in fake.queue_params] == [
        "sent_back",
        "transfer_requested",
        "overdue",
        "transfer_requested",
    ]
    assert fake.queue_params[2]["urge_level"] == "2" and "urge_level" not in fake.queue_params[0]
    assert re.search(r'id="tab-sent_back" aria-current="page">退单待审核<', page.text)
    assert re.search(r'id="tab-overdue" aria-current="page">', leveled.text)
    assert '<option value="2" selected>二级（催办）及以上</option>' in leveled.text
    assert 'href="/workbench/office?urge_level=2" id="tab-overdue"' in leveled.text
    assert 'href="/workbench/office?state=sent_back" id="tab-sent_back"' in leveled.text, "other tabs leave the level"
    row = re.search(rf'<tr [^>]*id="row-{APPEAL_ID}".*?</tr>', page.text, re.S).group(0)
    for shown in (
        "南山区人力资源局退回，已改派深圳市商务局",
        "请找商务局",
        "建议转至国家税务总局深圳市税务局",
        "涉及社保费缴纳，属税务部门",
        "刘洋",
        'data-level="2">二级（催办）',
        "已催办2次",
        "催办深圳市商务局",
    ):
        assert shown in row, shown
    for form in (f"send-back-{APPEAL_ID}", f"transfer-{APPEAL_ID}", f"urge-{APPEAL_ID}"):
        assert f'id="{form}"' in row, form
    transfer = re.search(rf'<form [^>]*id="transfer-{APPEAL_ID}".*?</form>', row, re.S).group(0)
    assert '<option value="tax" selected>国家税务总局深圳市税务局（部门建议）</option>' in transfer
    assert 'value="commerce"' not in transfer, "not to the department that leads it"
    assert re.search(r"<details class=\"urge\">\s*<summary>催办</summary>", row), "urging folds away until needed"
    for said in ("Transfer requested", "Grant the transfer", "Overrule: return it", "Level 2 (催办, pressed)"):
        assert said in english.text, said


async def test_the_office_overrules_or_confirms_a_send_back_in_its_clerks_name():
    fake = FakeRouter([supervised_row()])
    async with workbench(fake, OFFICE, name="陈伟") as client:
        page = await client.get("/workbench/office", params={"state": "sent_back"})
        form = {"csrf": csrf_of(page), "idempotency": idempotency_of(page, f"send-back-{APPEAL_ID}")}
        url = f"/workbench/office/appeals/{APPEAL_ID}/send-back"
        overruled = await client.post(
            url, data={**form, "back": "state=sent_back", "decision": "overrule", "note": " 属人社职责。 "}
        )
        assert overruled.status_code == 303
        assert parse_qs(urlsplit(overruled.headers["location"]).query)["done"] == ["overrule_decline"]
        after = await client.get(overruled.headers["location"])
        assert 'id="office-done">已处理: 退单不成立，退回原部门' in after.text
        confirmed = await client.post(url, data={**form, "back": "state=sent_back", "decision": "confirm", "note": ""})
        assert confirmed.status_code == 303
    assert [(body, key) for body, key, _ in fake.actions] == [
        ({"action": "overrule_decline", "clerk": "陈伟", "note": "属人社职责。"}, KEYS[OFFICE]),
        ({"action": "confirm_decline", "clerk": "陈伟"}, KEYS[OFFICE]),
    ]
    assert fake.actions[0][2].endswith("-overrule_decline") and fake.actions[1][2].endswith("-confirm_decline")


async def test_the_office_grants_a_transfer_where_it_chooses_and_refuses_one_only_with_a_comment():
    fake = FakeRouter([supervised_row()])
    async with workbench(fake, OFFICE) as client:
        page = await client.get("/workbench/office", params={"state": "transfer_requested"})
        form = {"csrf": csrf_of(page), "back": "state=transfer_requested"}
        url = f"/workbench/office/appeals/{APPEAL_ID}/transfer"
        bare = await client.post(url, data={**form, "decision": "refuse", "target_department": "tax", "note": " "})
        assert bare.status_code == 422
        assert re.search(rf'id="transfer-error-{APPEAL_ID}">不同意转办时必须填写意见，告知部门原因。<', bare.text)
        nowhere = await client.post(url, data={**form, "decision": "grant", "target_department": "<b>"})
        assert nowhere.status_code == 422 and "请选择要转至的部门。" in nowhere.text
        granted = await client.post(url, data={**form, "decision": "grant", "target_department": "hrss"})
        assert granted.status_code == 303
        fake.refuse = (409, "no transfer request is pending on this appeal")
        refused = await client.post(
            url, data={**form, "decision": "refuse", "target_department": "hrss", "note": "请先核实"}
        )
        assert refused.status_code == 409
    transfer = re.search(rf'<form [^>]*id="transfer-{APPEAL_ID}".*?</form>', refused.text, re.S).group(0)
    assert 'id="transfer-error-' + APPEAL_ID + '">no transfer request is pending' in transfer
    assert ">请先核实</textarea>" in transfer and '<option value="hrss" selected>' in transfer, "as typed"
    assert [body for body, _, _ in fake.actions] == [
        {"action": "grant_transfer", "clerk": "陈伟", "target_department": "hrss"},
        {"action": "refuse_transfer", "clerk": "陈伟", "note": "请先核实"},
    ]


async def test_urging_needs_a_comment_and_routers_refusal_opens_the_form_beside_the_row():
    fake = FakeRouter([supervised_row()])
    async with workbench(fake, OFFICE, lang="en") as client:
        page = await client.get("/workbench/office", params={"state": "overdue"})
        form = {"csrf": csrf_of(page), "back": "state=overdue", "decision": "urge"}
        url = f"/workbench/office/appeals/{APPEAL_ID}/urge"
        bare = await client.post(url, data={**form, "note": ""})
        assert bare.status_code == 422 and fake.actions == []
        assert re.search(r'<details class="urge" open>', bare.text)
        assert f'id="urge-error-{APPEAL_ID}">Urging needs a comment' in bare.text
        fake.refuse = (403, "coord leads this appeal: an operator, not the office itself, may urge")
        refused = await client.post(url, data={**form, "note": "Answer the company today."})
        assert refused.status_code == 403 and re.search(r'<details class="urge" open>', refused.text)
        assert f'id="urge-error-{APPEAL_ID}">coord leads this appeal' in refused.text
        assert ">Answer the company today.</textarea>" in refused.text
        fake.refuse = None
        urged = await client.post(url, data={**form, "note": "Answer the company today."})
        assert urged.status_code == 303
        after = await client.get(urged.headers["location"])
        assert 'id="office-done">Done: Urge' in after.text
        unknown = await client.post(f"/workbench/office/appeals/{APPEAL_ID}/close", data=form)
        assert unknown.status_code == 404
    assert [body for body, _, _ in fake.actions] == [
        {"action": "urge", "clerk": "陈伟", "note": "Answer the company today."},
        {"action": "urge", "clerk": "陈伟", "note": "Answer the company today."},
    ]


# The office as the city's dispatcher: moving an appeal, bringing in a co-handler.


def dispatch_form(page: httpx.Response, form_id: str) -> str:
    found = re.search(rf'<form [^>]*id="{form_id}".*?</form>', page.text, re.S)
    assert found, f"the page has the form {form_id}"
    return found.group(0)


def options(form: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"', form)


async def test_the_office_moves_an_appeal_or_brings_in_a_cohandler_in_its_clerks_name():
    fake = FakeRouter([queue_row(extension=None, states=["overdue"], cohandlers=["tax"])])
    async with workbench(fake, OFFICE, name="陈伟") as client:
        page = await client.get("/workbench/office", params={"state": "all", "district": "nanshan"})
        row = re.search(rf'<tr [^>]*id="row-{APPEAL_ID}".*?</tr>', page.text, re.S).group(0)
        assert re.search(r'<details class="dispatch move">\s*<summary>转办至其他部门</summary>', row)
        assert re.search(r'<details class="dispatch cohandler">\s*<summary>增加协办部门</summary>', row)
        move = dispatch_form(page, f"move-{APPEAL_ID}")
        cohandler = dispatch_form(page, f"cohandler-{APPEAL_ID}")
        assert f'action="/workbench/office/appeals/{APPEAL_ID}/move"' in move
        assert f'action="/workbench/office/appeals/{APPEAL_ID}/add-cohandler"' in cohandler
        # Nothing chosen until the clerk picks; the lead left out, and a co-handler only where it may lead.
        assert options(move)[0] == "" and " selected" not in move and 'name="target_department" required' in move
        assert LEAD not in options(move) and {"tax", OTHER, OFFICE} <= set(options(move))
        assert LEAD not in options(cohandler) and "tax" not in options(cohandler) and OTHER in options(cohandler)
        assert '<label for="move-to-' + APPEAL_ID + '">转办至</label>' in move
        assert '<label for="move-note-' + APPEAL_ID + '">转办说明（选填）</label>' in move
        assert '<label for="cohandler-note-' + APPEAL_ID + '">协办说明（选填）</label>' in cohandler
        assert 'name="back" value="state=all&amp;district=nanshan"' in move and 'name="csrf"' in cohandler

        back = "state=all&district=nanshan"
        moved = await client.post(
            f"/workbench/office/appeals/{APPEAL_ID}/move",
            data={
                "csrf": csrf_of(page),
                "idempotency": idempotency_of(page, f"move-{APPEAL_ID}"),
                "back": back,
                "decision": "transfer",
                "target_department": OTHER,
                "note": " 外贸订单用工，由商务局牵头。 ",
            },
        )
        assert moved.status_code == 303
        location = urlsplit(moved.headers["location"])
        assert location.path == "/workbench/office"
        assert parse_qs(location.query) == {
            "state": ["all"],
            "district": ["nanshan"],
            "done": ["transfer"],
            "appeal": [APPEAL_ID],
        }
        after = await client.get(moved.headers["location"])
        assert re.search(r'id="office-done">已处理: 转办 · <a href="/workbench/appeals/' + APPEAL_ID, after.text)

        added = await client.post(
            f"/workbench/office/appeals/{APPEAL_ID}/add-cohandler",
            data={
                "csrf": csrf_of(page),
                "idempotency": idempotency_of(page, f"cohandler-{APPEAL_ID}"),
                "back": back,
                "decision": "add",
                "target_department": "customs",
                "note": "",
            },
        )
        assert added.status_code == 303
        assert parse_qs(urlsplit(added.headers["location"]).query)["done"] == ["add_cohandler"]
        after = await client.get(added.headers["location"])
        assert 'id="office-done">已处理: 增加协办部门 · ' in after.text
    assert [(body, key) for body, key, _ in fake.actions] == [
        (
            {"action": "transfer", "clerk": "陈伟", "note": "外贸订单用工，由商务局牵头。", "target_department": OTHER},
            KEYS[OFFICE],
        ),
        ({"action": "add_cohandler", "clerk": "陈伟", "target_department": "customs"}, KEYS[OFFICE]),
    ]
    assert fake.actions[0][2].startswith("web-") and fake.actions[0][2].endswith("-transfer")
    assert fake.actions[1][2].endswith("-add_cohandler") and fake.actions[0][2] != fake.actions[1][2]


async def test_a_dispatch_needs_a_known_department_and_routers_refusal_lands_beside_the_row_escaped():
    fake = FakeRouter([queue_row(extension=None, status="routed")])
    async with workbench(fake, OFFICE) as client:
        page = await client.get("/workbench/office", params={"state": "all"})
        form = {"csrf": csrf_of(page), "back": "state=all", "note": "<b>请牵头</b>"}
        move = f"/workbench/office/appeals/{APPEAL_ID}/move"
        add = f"/workbench/office/appeals/{APPEAL_ID}/add-cohandler"

        bare = await client.post(move, data={**form, "decision": "transfer", "target_department": ""})
        assert bare.status_code == 422
        assert re.search(r'<details class="dispatch move" open>', bare.text)
        assert re.search(
            rf'<p class="error" role="alert" id="move-error-{APPEAL_ID}">请选择要转至的部门。</p>', bare.text
        )
        assert f'aria-describedby="move-error-{APPEAL_ID}"' in bare.text
        assert "&lt;b&gt;请牵头&lt;/b&gt;</textarea>" in bare.text and "<b>请牵头" not in bare.text
        nowhere = await client.post(add, data={**form, "decision": "add", "target_department": '"><script>x</script>'})
        assert nowhere.status_code == 422 and "<script>x" not in nowhere.text
        assert re.search(rf'id="cohandler-error-{APPEAL_ID}">请选择要增加的协办部门。<', nowhere.text)
        wrong = await client.post(add, data={**form, "decision": "transfer", "target_department": OTHER})
        assert wrong.status_code == 422, "a button of another form"
        assert fake.actions == []

        fake.refuse = (409, "<script>alert(1)</script> commerce already co-handles this appeal")
        refused = await client.post(add, data={**form, "decision": "add", "target_department": OTHER})
        assert refused.status_code == 409
        assert re.search(r'<details class="dispatch cohandler" open>', refused.text)
        assert not re.search(r'<details class="dispatch move" open>', refused.text), "only the form posted opens"
        cohandler = dispatch_form(refused, f"cohandler-{APPEAL_ID}")
        assert f'id="cohandler-error-{APPEAL_ID}">&lt;script&gt;alert(1)&lt;/script&gt; commerce already' in cohandler
        assert "<script>alert(1)" not in refused.text
        assert f'<option value="{OTHER}" selected>' in cohandler and "&lt;b&gt;请牵头&lt;/b&gt;</textarea>" in cohandler

        fake.refuse = (409, "cannot transfer an appeal that is resolved")
        fake.rows = []
        gone = await client.post(move, data={**form, "decision": "transfer", "target_department": OTHER})
        assert gone.status_code == 409
        assert re.search(
            r'<p class="notice" role="alert"><strong>无法执行:</strong> .*cannot transfer an appeal', gone.text
        )
    assert [body for body, _, _ in fake.actions] == [
        {"action": "add_cohandler", "clerk": "陈伟", "note": "<b>请牵头</b>", "target_department": OTHER},
        {"action": "transfer", "clerk": "陈伟", "note": "<b>请牵头</b>", "target_department": OTHER},
    ]


async def test_the_offices_dispatch_forms_read_in_english_and_need_the_office_key():
    fake = FakeRouter([queue_row(extension=None)])
    async with workbench(fake, OFFICE, lang="en") as client:
        page = await client.get("/workbench/office", params={"state": "all"})
        bare = await client.post(
            f"/workbench/office/appeals/{APPEAL_ID}/add-cohandler",
            data={"csrf": csrf_of(page), "back": "state=all", "decision": "add", "target_department": ""},
        )
    for said in (
        "Move it to another department",
        "Move it to",
        "Note for the new lead (optional)",
        "Add a co-handler",
        "Department to bring in",
        "Note for the co-handler (optional)",
        "Choose a department",
        ">Transfer</button>",
    ):
        assert said in page.text, said
    assert "Choose the department to bring in as a co-handler." in bare.text
    async with workbench(fake, LEAD) as client:
        worklist = await client.get("/workbench")
        posted = await client.post(
            f"/workbench/office/appeals/{APPEAL_ID}/move",
            data={"csrf": csrf_of(worklist), "decision": "transfer", "target_department": OTHER},
        )
        assert posted.status_code == 403
    async with workbench(fake, OFFICE) as client:
        forged = await client.post(
            f"/workbench/office/appeals/{APPEAL_ID}/move", data={"decision": "transfer", "target_department": OTHER}
        )
        assert forged.status_code == 403
    assert fake.actions == []


# Supervision: the lead's appeal page and worklist.


async def test_inside_its_window_the_lead_may_decline_or_transfer_and_is_told_until_when():
    fake = FakeRouter(one=appeal_view(status="routed", assigned_at=at(-1), send_back_closes_at=at(5)))
    async with workbench(fake, LEAD, name="王芳") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
    local = extensions.local_input(at(5)).replace("T", " ")
    assert f'id="send-back-window">退单期限：{local}前可自行退回或转办' in page.text
    assert 'id="act-decline"' in page.text and 'id="act-transfer"' in page.text
    assert 'id="act-request_transfer"' not in page.text


async def test_past_its_window_the_lead_asks_the_office_to_transfer_it_and_then_waits():
    fake = FakeRouter(one=appeal_view(assigned_at=at(-7), send_back_closes_at=at(-1)))
    async with workbench(fake, LEAD, name="王芳") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        assert 'id="act-decline"' not in page.text and 'id="act-transfer"' not in page.text
        local = extensions.local_input(at(-1)).replace("T", " ")
        assert f'id="send-back-window">退单期限已于{local}截止' in page.text
        assert 'id="act-request_transfer"' in page.text
        form = {"csrf": csrf_of(page), "idempotency": idempotency_of(page, "act-request_transfer")}
        url = f"/workbench/appeals/{APPEAL_ID}/transfer-request"
        empty = await client.post(url, data={**form, "target_department": "", "reason": " "})
        assert empty.status_code == 422 and fake.actions == []
        assert 'id="suggested-error">请选择建议转至的部门<' in empty.text
        assert 'id="transfer-reason-error">请填写转办理由<' in empty.text
        fake.refuse = (409, "commerce already leads this appeal")
        refused = await client.post(url, data={**form, "target_department": OTHER, "reason": "<i>商务</i>"})
        assert refused.status_code == 409
        request_form = re.search(r'<form [^>]*id="act-request_transfer".*?</form>', refused.text, re.S).group(0)
        assert 'id="transfer-error">commerce already leads this appeal' in request_form
        assert (
            '<option value="commerce" selected>' in request_form
            and "&lt;i&gt;商务&lt;/i&gt;</textarea>" in request_form
        )
        fake.refuse = None
        done = await client.post(url, data={**form, "target_department": OTHER, "reason": " 属商务部门职责 "})
        assert done.headers["location"] == f"/workbench/appeals/{APPEAL_ID}?done=request_transfer#transfer-request"
        after = await client.get(done.headers["location"])
    assert fake.actions[-1][0] == {
        "action": "request_transfer",
        "target_department": OTHER,
        "reason": "属商务部门职责",
        "clerk": "王芳",
    }
    assert "已完成: 申请协调办公室转办" in after.text
    assert 'id="transfer-waiting">转办申请已提交，等待协调办公室处理：建议转至深圳市商务局。' in after.text
    assert 'id="act-request_transfer"' not in after.text, "one request at a time"


async def test_the_lead_reads_the_offices_answers_to_its_transfer_request_and_its_decline():
    refused = appeal_view(
        assigned_at=at(-7), send_back_closes_at=at(-1), timeline=[asked_transfer(), refused_transfer()]
    )
    overruled = appeal_view(
        status="routed", assigned_at=at(-30), send_back=send_back("overruled"), send_back_closes_at=at(-0.5)
    )
    received = appeal_view(
        lead=OTHER, status="routed", assigned_at=at(-1), send_back=send_back(), send_back_closes_at=at(5)
    )
    async with workbench(FakeRouter(one=refused), LEAD) as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        assert re.search(
            r'id="transfer-refused"><strong>协调办公室不同意转办</strong> · 深圳市企业服务协调办公室', page.text
        )
        assert '<span class="comment">请先与企业核实用工情况。</span>' in page.text
        assert 'id="act-request_transfer"' in page.text, "it may ask again"
        assert "<strong>不同意转办</strong> · 深圳市企业服务协调办公室（12345热线） · 陈伟" in page.text
        assert "<strong>申请转办</strong> · 南山区人力资源局 · 王芳" in page.text
    async with workbench(FakeRouter(one=overruled), LEAD) as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        assert 'id="send-back-overruled">协调办公室认定本部门退单不成立' in page.text
        assert 'id="send-back-window">协调办公室已认定本部门退单不成立' in page.text
        assert '<span class="comment">属人社职责，请继续办理。</span>' in page.text
        assert 'id="act-decline"' not in page.text and 'id="act-request_transfer"' in page.text
    async with workbench(FakeRouter(one=received), OTHER, lang="en") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        assert 'id="send-back-pending">Nanshan' in page.text and "the office is reviewing the send-back" in page.text


async def test_the_clerk_sees_the_offices_urgings_on_its_worklist_and_the_appeals_page():
    # Router lists the urgings on the appeal (a count, not the timeline's); the timeline shows each as it came.
    timeline = [
        urged_entry(OTHER, hours=-4, note="别的部门"),
        urged_entry(hours=-3),
        urged_entry(hours=-1, note="最后一次催办"),
    ]
    urged = appeal_view(
        assigned_at=at(-3.5),
        urgings=[urging(hours=-4, note="别的部门"), urging(hours=-3), urging(hours=-1, note="最后一次催办")],
        timeline=timeline,
        deadlines=[deadline("scope", "breached", -5), deadline("resolution", "running", 40)],
    )
    fake = FakeRouter(one=urged)
    asking = {
        **appeal_view(),
        "appeal_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N999",
        "transfer_request": {"target_department": OTHER},
    }
    fake.worklist = [{**urged, "next_due": at(40)}, asking]
    async with workbench(fake, LEAD, name="王芳") as client:
        worklist = await client.get("/workbench")
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        client.cookies.set("lang", "en")
        english = await client.get("/workbench")
        english_page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
    badges = re.findall(r'<span class="badge urged"[^>]*>([^<]*)</span>', worklist.text)
    assert badges == ["协调办公室已催办 · 已催办2次 · 一级（超时）"], "on the urged appeal's row only"
    assert 'data-count="2" data-level="1"' in worklist.text
    asking_row = re.search(r'<tr [^>]*data-appeal="01JB8X4R5ZJ6Q8V2Y7K9M3N999".*?</tr>', worklist.text, re.S)
    assert asking_row and '<span class="badge transfer_requested">转办申请待处理</span>' in asking_row.group(0)
    marker = re.search(r'<p class="notice urged" role="status" id="urged-marker">.*?</p>', page.text, re.S).group(0)
    assert "已催办2次" in marker and "一级（超时）" in marker and "最后一次催办" in marker
    urgings = re.search(r'<ol class="urgings">.*?</ol>', page.text, re.S).group(0)
    assert urgings.count('<li class="urging">') == 2 and "别的部门" not in urgings and "陈伟" in urgings
    assert "<strong>协调办公室催办</strong> · 深圳市企业服务协调办公室（12345热线） · 陈伟" in page.text
    assert "Urged by the office · urged 2× · Level 1 (breached)" in english.text
    assert "The office&#39;s urgings" in english_page.text
