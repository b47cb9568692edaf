"""Return visits (回访) and redos (重办) on the workbench, over fakes of router and stats: the coordinating office's
visit tasks (by tab, the resolution beside the contact, the attempts so far) and the form that records an attempt in
the clerk's name (its own checks beside the fields, router's refusal above them, what it did said after the
redirect), the queue's `redo` tab; a department's redos on top of its worklist, its line of the month's scorecard and
the visit on the appeal's page; the company's page saying the office calls back. And the pure reading behind them."""

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.web import visits
from services.web.i18n.portal import PORTAL
from services.web.i18n.visits import CAUSES, OUTCOMES, VISIT_STATES, VISIT_TABS, VISITS
from services.web.i18n.workbench import WORKBENCH
from services.web.office_visits import VisitQuery
from services.web.visits import AttemptForm, attempt_body
from tests.factories import (
    APPEAL_ID,
    KEYS,
    LEAD,
    NOW,
    OFFICE,
    FakeIntake,
    appeal_view,
    at,
    csrf_of,
    portal,
    section,
    workbench,
)
from tests.helpers import fake_page

OTHER_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N999"
TAX = "tax"


def visit(state: str = "surveyed", **extra: Any) -> dict[str, Any]:
    return {
        "round": 1,
        "state": state,
        "due_at": at(-30),
        "call_from": at(-6),
        "unreached_at": at(90),
        "attempts": [],
        "outcome": None,
        "score": None,
        "cause": None,
        "ended_at": None,
        **extra,
    }


def task(appeal_id: str = APPEAL_ID, **extra: Any) -> dict[str, Any]:
    """A row of router's GET /v1/return-visits."""
    return {
        "appeal_id": appeal_id,
        "title": "节后员工无法返岗",
        "category": "labour",
        "lead": LEAD,
        "status": "resolved",
        "enterprise_name": "深圳市蓝海网络科技有限公司",
        "contact": {"name": "李伟", "phone": "+8613800138000"},
        "resolution": "已协调三家用工单位联合招聘，岗位下周到位。",
        "resolved_at": at(-40),
        "redo_count": 0,
        "visit": visit(),
        "to_call": True,
        **extra,
    }


def appeal(**extra: Any) -> dict[str, Any]:
    """An appeal as router shows it to a department, before any clock or step."""
    return appeal_view(**{"deadlines": [], "timeline": [], **extra})


def redo(appeal_id: str = APPEAL_ID, count: int = 1, due_hours: float | None = 70, **extra: Any) -> dict[str, Any]:
    shown = {
        "appeal_id": appeal_id,
        "status": "reopened",
        "redo_count": count,
        "redo_due_at": at(due_hours) if due_hours is not None else None,
        "visit": visit("visited", outcome="unsatisfied", score=2, cause="department", ended_at=at(-1)),
    }
    return appeal(**{**shown, **extra})


def card_row(department: str, score: float | None, rank: int | None, listed: str | None = None, **extra: Any):
    return {
        "department": department,
        "name": department,
        "volume": 12,
        "response_rate": 0.9,
        "resolution_rate": 0.8,
        "satisfaction_rate": 0.75,
        "breaches": 2,
        "redos": 1,
        "overruled_send_backs": 0,
        "urgings_level_3": 0,
        "satisfied": 3,
        "basically_satisfied": 0,
        "unsatisfied": 1,
        "outside": 1,
        "unreached": 2,
        "score": score,
        "ranked": rank is not None,
        "rank": rank,
        "list": listed,
        **extra,
    }


def scorecard(month: str) -> dict[str, Any]:
    """Stats' Scorecard of `month`: three departments, two ranked."""
    return {
        "month": month,
        "from": "2026-11-01T00:00:00+08:00",
        "to": "2026-12-01T00:00:00+08:00",
        "timezone": "Asia/Shanghai",
        "preview": False,
        "minimum_volume": 10,
        "formula": {"from": "2020-01", "weights": {}, "deductions": {}},
        "departments": [
            card_row(TAX, 97.25, 1, "red"),
            card_row(LEAD, 71.5, 2, "black"),
            card_row("commerce", 55.0, None, volume=3),
        ],
        "red_list": [TAX],
        "black_list": [LEAD],
    }


class Fakes:
    """Router's and stats' answers to web. `refuse` answers the next attempt with (status, detail); `after` is the
    appeal router answers an attempt with; `stats` is the scorecard's answer: a status, or None for a card."""

    def __init__(self, tasks: list[dict] | None = None) -> None:
        self.tasks = tasks if tasks is not None else [task()]
        self.worklists: dict[str | None, list[dict]] = {None: [], "reopened": []}
        self.appeal = appeal()
        self.after = redo()
        self.visit_params: list[dict[str, str]] = []
        self.attempts: list[tuple[dict, str | None, str | None]] = []
        self.queue_params: list[dict[str, str]] = []
        self.queue: list[dict] = []
        self.refuse: tuple[int, str] | None = None
        self.stats: int | None = None
        self.card: dict[str, Any] | None = None
        self.stats_calls: list[tuple[str | None, dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("x-api-key")
        path = request.url.path
        params = dict(request.url.params)
        if request.url.host == "stats":
            self.stats_calls.append((key, params))
            if path != "/v1/stats/scorecard":
                return httpx.Response(404, json={"detail": "not found"})
            if self.stats is None:
                return httpx.Response(200, json=self.card or scorecard(params["month"]))
            return httpx.Response(self.stats, json={"detail": "a department key may not call this"})
        if path.startswith("/v1/departments/"):
            return httpx.Response(200, json=self.worklists.get(params.get("status"), []))
        if path == "/v1/return-visits":
            if key != KEYS[OFFICE]:
                return httpx.Response(403, json={"detail": "return visits are the coordinating office's"})
            self.visit_params.append(params)
            return fake_page(request, self.tasks)
        if path.startswith("/v1/return-visits/") and path.endswith("/attempts"):
            self.attempts.append((json.loads(request.content), key, request.headers.get("idempotency-key")))
            if self.refuse:
                status, detail = self.refuse
                return httpx.Response(status, json={"detail": detail})
            return httpx.Response(200, json=self.after)
        if path == "/v1/appeals":
            self.queue_params.append(params)
            return httpx.Response(200, json=self.queue)
        if path == f"/v1/appeals/{APPEAL_ID}":
            return httpx.Response(200, json=self.appeal)
        return httpx.Response(404, json={"detail": "not found"})


def row_of(page: httpx.Response, appeal_id: str = APPEAL_ID) -> str:
    return section(page, rf'<tr id="visit-row-{appeal_id}".*?</tr>')


def form_fields(page: httpx.Response, appeal_id: str = APPEAL_ID, **typed: str) -> dict[str, str]:
    """What the task's form sends as the page gives it (its hidden fields, the visitor's name filled in), with what
    the clerk types."""
    form = section(page, rf'<form [^>]*id="visit-{appeal_id}".*?</form>')
    given = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    visitor = re.search(r'<input id="visitor-[^"]+" name="visitor"[^>]* value="([^"]*)"', form)
    assert visitor, "the form names the visitor"
    given["visitor"] = visitor.group(1)
    return {**{k: v.replace("&amp;", "&") for k, v in given.items()}, **typed}


URL = f"/workbench/office/visits/{APPEAL_ID}/attempts"


# The pure reading.


@pytest.mark.parametrize(
    ("typed", "kind", "body", "errors"),
    [
        # Reached: the outcome from the score, the cause only when unsatisfied.
        (
            {"reached": "yes", "score": "2", "cause": "department", "note": "仍未招到人"},
            "visit",
            {
                "visitor": "陈伟",
                "reached": True,
                "outcome": "unsatisfied",
                "score": 2,
                "cause": "department",
                "note": "仍未招到人",
            },
            {},
        ),
        (
            {"reached": "yes", "score": "5", "cause": "outside"},
            "visit",
            {"visitor": "陈伟", "reached": True, "outcome": "satisfied", "score": 5},
            {},
        ),
        (
            {"reached": "yes", "outcome": "basically_satisfied"},
            "visit",
            {"visitor": "陈伟", "reached": True, "outcome": "basically_satisfied"},
            {},
        ),
        ({"reached": "yes"}, "visit", None, {"score": "score_or_outcome_missing"}),
        (
            {"reached": "yes", "score": "4", "outcome": "satisfied"},
            "visit",
            None,
            {"outcome": "score_outcome_disagree"},
        ),
        ({"reached": "yes", "score": "3"}, "visit", None, {"cause": "cause_required"}),
        ({"reached": "yes", "outcome": "unsatisfied"}, "visit", None, {"cause": "cause_required"}),
        ({"reached": "yes", "score": "9"}, "visit", None, {"score": "score_bad"}),
        ({"reached": "yes", "score": "1", "cause": "mine"}, "visit", None, {"cause": "cause_bad"}),
        # Not reached: who called and the note, whatever else was typed.
        (
            {"reached": "no", "score": "2", "cause": "department", "note": "无人接听"},
            "visit",
            {"visitor": "陈伟", "reached": False, "note": "无人接听"},
            {},
        ),
        ({"score": "5"}, "visit", None, {"reached": "reached_missing"}),
        ({"reached": "no", "visitor": "  "}, "visit", None, {"visitor": "visitor_missing"}),
        ({"reached": "no", "note": "长" * 2001}, "visit", None, {"note": "visit_note_too_long"}),
        # The office's review of a company's "not resolved": the cause alone.
        (
            {"reached": "yes", "cause": "outside", "score": "2"},
            "review",
            {"visitor": "陈伟", "reached": True, "cause": "outside"},
            {},
        ),
        ({"reached": "no"}, "review", None, {"cause": "cause_required_review"}),
    ],
)
def test_an_attempts_body_follows_routers_rules_before_anything_is_sent(typed, kind, body, errors):
    sent, wrong = attempt_body(AttemptForm.of({"visitor": " 陈伟 ", **typed}), kind)
    assert wrong == errors
    if body is not None:
        assert sent == body


@pytest.mark.parametrize(
    ("after", "kind", "said"),
    [
        (appeal(status="resolved", visit=visit(attempts=[{"reached": False}])), "visit", "not_reached"),
        (appeal(status="closed", visit=visit("unreached")), "visit", "unreached"),
        (appeal(status="closed", visit=visit("visited", outcome="satisfied")), "visit", "closed"),
        (appeal(status="closed", visit=visit("visited", outcome="unsatisfied", cause="outside")), "visit", "outside"),
        (appeal(status="closed", visit=visit("visited", cause="outside")), "review", "outside"),
        (redo(), "visit", "redo"),
        (redo(), "review", "redo_confirmed"),
    ],
)
def test_what_an_attempt_did_is_read_back_from_routers_answer(after, kind, said):
    assert visits.recorded(after, kind) == said
    assert said in visits.RECORDED


def test_redos_come_first_soonest_due_each_once_and_only_real_redos():
    soon, late, undated = redo("A" * 26, due_hours=5), redo("B" * 26, due_hours=50), redo("C" * 26, due_hours=None)
    plain_reopened = appeal(appeal_id="D" * 26, status="reopened")  # the company's "not resolved" before redos
    accepted = appeal(appeal_id="E" * 26)
    listed = visits.redos_first([late, undated, plain_reopened], [accepted, soon, late])
    assert [a["appeal_id"][0] for a in listed] == ["A", "B", "C", "E"]
    assert not visits.is_redo(plain_reopened) and not visits.is_redo({**soon, "status": "accepted"})


def test_a_department_reads_only_its_own_line_and_the_lists_of_the_scorecard():
    mine = visits.standing(scorecard("2026-11"), LEAD)
    assert mine is not None
    assert mine["row"]["score"] == 71.5 and mine["row"]["rank"] == 2 and mine["ranked_count"] == 2
    assert mine["list"] == "black" and mine["red_list"] == [TAX] and mine["black_list"] == [LEAD]
    assert "97.25" not in json.dumps(mine), "another department's score is not passed to the page"
    assert visits.standing(scorecard("2026-11"), "nobody") is None and visits.standing(None, LEAD) is None
    # A department's key reads its own line alone from stats, which says how many departments were ranked.
    trimmed = {**scorecard("2026-11"), "departments": [card_row(LEAD, 71.5, 2, "black")], "ranked_count": 5}
    assert visits.standing(trimmed, LEAD)["ranked_count"] == 5


def test_a_task_counts_its_failed_calls_and_says_whether_to_call_now():
    tried = visit(attempts=[{"reached": False}, {"reached": False}], call_from=at(-1))
    shown = visits.task(task(visit=tried, to_call=False), NOW, attempts_allowed=3)
    assert (shown["form"], shown["failed"], shown["attempts_left"], shown["calling"]) == ("visit", 2, 1, True)
    later = visits.task(task(visit=visit("scheduled", call_from=at(20)), to_call=False), NOW, 3)
    assert later["calling"] is False and later["form"] == "visit"
    assert visits.task(task(visit=visit("review")), NOW, 3)["form"] == "review"
    assert visits.task(task(visit=visit("answered"), contact=None), NOW, 3)["form"] is None


def test_the_visits_texts_share_no_key_with_the_other_tables_and_name_every_tab_state_outcome_and_cause():
    assert not (set(VISITS) & set(PORTAL)) and not (set(VISITS) & set(WORKBENCH))
    assert set(visits.TABS) == set(VISIT_TABS) and set(visits.OUTCOMES) < set(OUTCOMES)
    assert set(visits.CAUSES) == set(CAUSES) and {*visits.OPEN_STATES, visits.REVIEW_STATE} < set(VISIT_STATES)
    assert all(f"visit_done_{said}" in VISITS for said in visits.RECORDED)


def test_the_visits_query_keeps_only_known_tabs_and_leaves_defaults_out_of_its_links():
    assert VisitQuery.of({"state": "nope", "page": "-2"}) == VisitQuery()
    assert VisitQuery.of({"state": "review", "page": "3", "after": "QUJD"}) == VisitQuery("review", 3, "QUJD")
    assert VisitQuery.of({"state": "review", "page": "3"}) == VisitQuery("review"), "a later page needs its cursor"
    assert VisitQuery.of({"page": "99999999", "after": "QUJD"}).page == 100_000
    assert VisitQuery().url() == "/workbench/office/visits"
    url = VisitQuery("open", after="QUJD").url({"done": "redo"}, page=2)
    assert url == "/workbench/office/visits?state=open&page=2&after=QUJD&done=redo"
    assert VisitQuery("open", 5, "QUJD", "WFla").url(page=1) == "/workbench/office/visits?state=open"


# The office's page of visit tasks.


async def test_only_the_office_opens_the_visits_and_its_nav_links_them():
    fakes = Fakes()
    async with workbench(fakes, LEAD) as client:
        worklist = await client.get("/workbench")
        assert 'href="/workbench/office/visits"' not in worklist.text
        refused = await client.get("/workbench/office/visits")
        assert refused.status_code == 403 and "督办页面只对协调办公室开放" in refused.text
        posted = await client.post(URL, data={"csrf": csrf_of(worklist), "kind": "visit", "reached": "no"})
        assert posted.status_code == 403
    assert fakes.visit_params == [] and fakes.attempts == []
    async with workbench(fakes, OFFICE) as client:
        worklist = await client.get("/workbench")
        assert '<a href="/workbench/office/visits" id="nav-visits">回访</a>' in worklist.text


async def test_the_tasks_to_call_show_the_resolution_beside_the_contact_and_a_form_in_the_clerks_name():
    tried = {"at": at(-2), "visitor": "王芳", "reached": False, "note": "无人接听"}
    fakes = Fakes([task(visit=visit(attempts=[tried]), redo_count=1, title="<b>员工</b>返岗")])
    async with workbench(fakes, OFFICE, name="陈伟") as client:
        page = await client.get("/workbench/office/visits")
    assert page.status_code == 200
    assert fakes.visit_params == [{"state": "to_call", "limit": "25"}]
    assert re.search(r'id="visit-tab-to_call" aria-current="page">待电话回访<', page.text)
    assert "&lt;b&gt;员工&lt;/b&gt;返岗" in page.text and "<b>员工" not in page.text
    row = row_of(page)
    contact = section(page, r'<td class="resolution-contact">.*?</td>')
    for shown in (
        "已协调三家用工单位联合招聘",
        '<strong class="contact-name">李伟</strong>',
        'href="tel:+8613800138000"',
    ):
        assert shown in contact, shown
    for shown in (
        "问卷已发送，待评价",
        "应电话回访",
        "第1轮回访",
        "已重办1次",
        "王芳",
        "未联系上",
        "无人接听",
        "还可尝试2次",
    ):
        assert shown in row, shown
    form = section(page, rf'<form [^>]*id="visit-{APPEAL_ID}".*?</form>')
    assert f'action="{URL}"' in form and 'name="kind" value="visit"' in form
    assert 'id="visitor-' + APPEAL_ID + '" name="visitor" maxlength="100" required value="陈伟"' in form
    for said in (
        "是否联系上企业",
        "联系上",
        "满意度评分",
        "基本满意",
        "原因在部门（重办）",
        "部门以外（如政策不允许）",
    ):
        assert said in form, said
    intro = section(page, r'<p class="hint" id="visits-intro">.*?</p>')
    assert "办结后1个工作日" in intro and "3次未联系上" in intro and "问卷发出5个工作日后" in intro

    async with workbench(Fakes(), OFFICE, lang="en") as client:
        english = await client.get("/workbench/office/visits", params={"state": "open"})
    for said in ("Return visits", "All open visits", "Did you reach the company?", "outside the department", "Record"):
        assert said in english.text, said


async def test_reached_unsatisfied_at_the_department_posts_the_attempt_and_says_a_redo_was_ordered():
    fakes = Fakes()
    async with workbench(fakes, OFFICE, name="陈伟") as client:
        page = await client.get("/workbench/office/visits", params={"state": "open", "page": "1"})
        typed = form_fields(page, reached="yes", score="2", cause="department", note=" 岗位仍未到位 ")
        assert typed["back"] == "state=open"
        done = await client.post(URL, data=typed)
        assert done.status_code == 303
        location = urlsplit(done.headers["location"])
        assert location.path == "/workbench/office/visits"
        assert parse_qs(location.query) == {"state": ["open"], "done": ["redo"], "appeal": [APPEAL_ID]}
        after = await client.get(done.headers["location"])
        notice = section(after, r'<p class="notice success" role="status" id="visit-done">.*?</p>')
        assert "诉求已退回承办部门重办" in notice and f'href="/workbench/appeals/{APPEAL_ID}"' in notice
    [(body, key, idempotency)] = fakes.attempts
    assert body == {
        "visitor": "陈伟",
        "reached": True,
        "outcome": "unsatisfied",
        "score": 2,
        "cause": "department",
        "note": "岗位仍未到位",
    }
    assert key == KEYS[OFFICE] and idempotency == f"web-{typed['idempotency']}"


async def test_the_forms_own_checks_and_routers_refusal_land_beside_the_form_with_what_was_typed():
    fakes = Fakes()
    async with workbench(fakes, OFFICE) as client:
        page = await client.get("/workbench/office/visits")
        bare = await client.post(URL, data=form_fields(page, visitor="李娜", score="3", note="企业说还没解决"))
        assert bare.status_code == 422 and fakes.attempts == []
        assert re.search(rf'<p class="error" id="reached-error-{APPEAL_ID}">请选择是否联系上企业</p>', bare.text)
        assert f'aria-describedby="reached-error-{APPEAL_ID}"' in bare.text
        form = section(bare, rf'<form [^>]*id="visit-{APPEAL_ID}".*?</form>')
        assert 'value="李娜"' in form and 'value="3" checked' in form and ">企业说还没解决</textarea>" in form

        no_cause = await client.post(URL, data=form_fields(page, reached="yes", score="3"))
        assert no_cause.status_code == 422
        assert re.search(
            rf'id="cause-error-{APPEAL_ID}">企业不满意时，请认定原因在部门（重办）还是部门以外<', no_cause.text
        )

        fakes.refuse = (409, "no return visit is open on this appeal; its visit is answered")
        late = await client.post(URL, data=form_fields(page, reached="yes", score="5"))
        assert late.status_code == 409
        assert re.search(
            rf'<p class="error" role="alert" id="visit-error-{APPEAL_ID}">no return visit is open on this appeal',
            late.text,
        )
        assert fakes.attempts[0][0] == {"visitor": "陈伟", "reached": True, "outcome": "satisfied", "score": 5}

        # A refusal for a task this page no longer shows is said above the table.
        fakes.tasks = []
        gone = await client.post(URL, data=form_fields(page, reached="no"))
        assert gone.status_code == 409 and re.search(r'<p class="notice" role="alert"><strong>无法执行', gone.text)

        fakes.refuse = None
        stale = await client.post(URL, data={**form_fields(page, reached="no"), "csrf": "forged"})
        assert stale.status_code == 403 and len(fakes.attempts) == 2


async def test_a_company_said_not_resolved_is_reviewed_by_its_cause_alone():
    fakes = Fakes([task(status="reopened", redo_count=1, visit=visit("review", ended_at=at(-1)), to_call=False)])
    fakes.after = appeal(status="closed", visit=visit("visited", cause="outside", ended_at=at(0)))
    async with workbench(fakes, OFFICE) as client:
        page = await client.get("/workbench/office/visits", params={"state": "review"})
        form = section(page, rf'<form [^>]*id="visit-{APPEAL_ID}".*?</form>')
        assert 'name="kind" value="review"' in form and 'name="score"' not in form and "认定原因" in form
        assert "企业称未解决，待认定原因" in row_of(page) and "李伟" in row_of(page)
        done = await client.post(URL, data=form_fields(page, reached="yes", cause="outside", note="政策不允许"))
        assert parse_qs(urlsplit(done.headers["location"]).query)["done"] == ["outside"]
        after = await client.get(done.headers["location"])
        assert "原因在部门以外，诉求已关闭，单独统计" in after.text
    assert fakes.attempts[0][0] == {"visitor": "陈伟", "reached": True, "cause": "outside", "note": "政策不允许"}


async def test_an_ended_visit_shows_its_result_and_no_contact_nor_form():
    ended = visit("visited", outcome="basically_satisfied", score=4, ended_at=at(-1))
    fakes = Fakes([task(status="closed", contact=None, visit=ended, to_call=False)])
    async with workbench(fakes, OFFICE) as client:
        page = await client.get("/workbench/office/visits", params={"state": "visited"})
    row = row_of(page)
    assert "回访已结束，联系人不再显示" in row and "基本满意 · 4分" in row and "<form" not in row


async def test_the_city_queue_has_a_redo_tab_and_marks_redone_appeals():
    fakes = Fakes()
    fakes.queue = [
        {
            "appeal_id": APPEAL_ID,
            "title": "节后员工无法返岗",
            "category": "labour",
            "district": "nanshan",
            "enterprise_name": "蓝海科技",
            "lead": LEAD,
            "cohandlers": [],
            "status": "reopened",
            "submitted_at": at(-100),
            "states": ["redo"],
            "deadlines": [],
            "urgings": 0,
            "redo_count": 2,
        }
    ]
    async with workbench(fakes, OFFICE) as client:
        page = await client.get("/workbench/office", params={"state": "redo"})
    assert fakes.queue_params[-1]["state"] == "redo"
    assert re.search(r'id="tab-redo" aria-current="page">重办督办<', page.text)
    assert '<span class="badge redo" data-count="2">已重办2次</span>' in page.text


# The department's workbench.


async def test_redos_are_on_top_of_the_worklist_with_their_count_and_due_time_under_the_departments_assessment():
    fakes = Fakes()
    other = appeal(appeal_id=OTHER_ID, title="融资难", next_due=at(2))
    waiting = redo(count=2, due_hours=20, title="招工重办")
    fakes.worklists = {None: [other], "reopened": [waiting]}  # no running clock yet: not in the soonest-due list
    async with workbench(fakes, LEAD, name="王芳") as client:
        page = await client.get("/workbench")
    rows = re.findall(r'<tr class="[^"]*" data-appeal="([0-9A-Z]+)"', page.text)
    assert rows == [APPEAL_ID, OTHER_ID]
    top = section(page, rf'<tr class="[^"]*redo" data-appeal="{APPEAL_ID}" data-redo="2">.*?</tr>')
    assert "<strong>重办</strong> · 第2次重办" in top and "重办时限" in top
    [(key, params)] = fakes.stats_calls
    assert key == KEYS[LEAD], "stats is read with the clerk's own key"
    assert params == {"month": datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")}, "this month, in the city"
    panel = section(page, r'<section class="assessment".*?</section>')
    for shown in ('id="assessment-score">71.5<', "排名 2/2", "本部门上黑榜", "满意率 75.0%", "超时 2", "重办 1"):
        assert shown in panel, shown
    assert "红榜:</strong> 国家税务总局深圳市税务局" in panel and "黑榜:</strong> 南山区人力资源局" in panel
    assert "97.25" not in page.text and "55.0" not in page.text, "other departments' scores are not shown"
    assert 'id="redos-open"' in panel and "重办中 1 件" in panel

    # Filtered to another status, the table keeps to it; the panel still counts the redos.
    async with workbench(fakes, LEAD) as client:
        resolved = await client.get("/workbench", params={"status": "resolved"})
    assert APPEAL_ID not in re.findall(r'data-appeal="([0-9A-Z]+)"', resolved.text) and "重办中 1 件" in resolved.text


async def test_the_worklist_shows_without_the_assessment_when_stats_refuses_or_is_down():
    fakes = Fakes()
    fakes.stats = 403
    async with workbench(fakes, LEAD) as client:
        refused = await client.get("/workbench")
    assert refused.status_code == 200 and 'id="assessment-unavailable">本月考核暂无法查看。<' in refused.text
    fakes.stats = 503
    async with workbench(fakes, LEAD, lang="en") as client:
        down = await client.get("/workbench")
    assert down.status_code == 200 and "This month&#39;s assessment cannot be shown just now." in down.text


async def test_a_department_under_the_minimum_volume_is_listed_not_ranked():
    fakes = Fakes()
    fakes.card = scorecard("2026-11")
    fakes.card["departments"][1] = card_row(LEAD, 60.0, None, volume=4)
    async with workbench(fakes, LEAD) as client:
        page = await client.get("/workbench")
    panel = section(page, r'<section class="assessment".*?</section>')
    assert "本月承办不足10件，列示不排名" in panel and 'id="on-list"' not in panel and ">60.0<" in panel


async def test_the_appeal_page_shows_the_redo_and_its_visit():
    fakes = Fakes()
    called = {
        "at": at(-2),
        "visitor": "陈伟",
        "reached": True,
        "outcome": "unsatisfied",
        "score": 2,
        "cause": "department",
        "note": "岗位仍未到位",
    }
    fakes.appeal = redo(
        count=2,
        due_hours=30,
        visit=visit("visited", outcome="unsatisfied", score=2, cause="department", ended_at=at(-2), attempts=[called]),
    )
    async with workbench(fakes, LEAD) as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
    marker = section(page, r'<p class="notice redo" role="status" id="redo-marker">.*?</p>')
    assert "本诉求已退回本部门重办（第2次）" in marker and "重办次数已达2次，协调办公室督办" in marker
    visit_part = section(page, r'<section aria-labelledby="visit-title" id="visit">.*?</section>')
    for shown in (
        "已回访 · 第1轮回访",
        "不满意 · 2分 · 原因在部门（重办）",
        'id="redo-count">2',
        "岗位仍未到位",
        "陈伟",
    ):
        assert shown in visit_part, shown


async def test_a_redos_reopening_in_the_timeline_says_its_due_time_not_an_extension():
    fakes = Fakes()
    entry = {
        "type": "appeal.reopened.v1",
        "status": "reopened",
        "time": at(-1),
        "department": LEAD,
        "actor": OFFICE,
        "clerk": "陈伟",
        "due_at": at(70),
    }
    visited = {
        "type": "appeal.visited.v1",
        "status": "resolved",
        "time": at(-1),
        "department": LEAD,
        "actor": OFFICE,
        "clerk": "陈伟",
        "note": "岗位仍未到位",
    }
    fakes.appeal = redo(timeline=[visited, entry])
    async with workbench(fakes, LEAD) as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
    timeline = section(page, r'<ol class="timeline">.*?</ol>')
    assert "协调办公室回访" in timeline and "重办时限" in timeline and "延期至" not in timeline


# The company's page.


@pytest.mark.parametrize(
    ("lang", "feedback", "elsewhere"),
    [
        (
            "zh",
            ["本诉求的满意度回访", "办结后1个工作日", "企业服务协调办公室将在工作时间致电联系人回访"],
            ["回访电话也打给这位联系人", "未评价的将致电联系人回访"],
        ),
        (
            "en",
            ["return visit (回访)", "1 working day after the resolution", "please expect the call"],
            ["return visit call after the resolution", "calls the contact back (回访)"],
        ),
    ],
)
async def test_the_company_is_told_by_its_feedback_form_and_data_notice_that_the_office_calls_back(
    lang, feedback, elsewhere
):
    contact = {"name": "李伟", "phone": "+8613800138000", "email": None, "wechat_openid": None}
    intake = FakeIntake(contact, timeline=[], status="resolved", resolution="已协调招工。")
    async with portal(intake, lang) as client:
        page = await client.get(f"/appeals/{APPEAL_ID}")
        new = await client.get("/appeals/new")
    assert page.status_code == 200
    form = section(page, r'<section class="task" aria-labelledby="feedback-title">.*?</section>')
    for words in feedback:
        assert words in form, words
    for words in elsewhere:
        assert words in page.text, words
    assert elsewhere[-1] in new.text, "the notice the company agrees to when it submits says so too"
