"""Co-handlers' contributions (协办意见) on the workbench, over a fake router: a co-handler's clerk reads its own
contribution clock and sends its part (a note and https links typed one per line, checked before anything is sent,
router's refusal beside the form); the lead's clerk reads every part (who, when, the text, the links as safe links)
and each co-handler's clock; a co-handler's worklist row says when its part is due. And the pure reading behind
them."""

import re
from typing import Any

import httpx
import pytest

from services.web import contributions
from services.web.extensions import local_input
from tests.factories import (
    APPEAL_ID,
    KEYS,
    LEAD,
    OFFICE,
    FakeRouter,
    appeal_view,
    at,
    csrf_of,
    deadline,
    section,
    workbench,
)

COHANDLER, SECOND = "commerce", "tax"


def local(hours: float) -> str:
    return local_input(at(hours)).replace("T", " ")


def part(department: str = COHANDLER, **extra: Any) -> dict[str, Any]:
    return {
        "department": department,
        "clerk": "刘洋",
        "note": "外贸订单用工可申请稳岗补贴，\n商务局可协调招聘会。",
        "attachments": ["https://files.example.org/稳岗补贴.pdf?a=1&b=2"],
        "at": at(-2),
        **extra,
    }


def appeal(**extra: Any) -> dict[str, Any]:
    """Accepted by the lead, with two co-handlers whose parts are due in 20 hours."""
    shown = {
        "cohandlers": [COHANDLER, SECOND],
        "sequence": 5,
        "assigned_at": at(-29),
        "send_back_closes_at": at(-23),
        "deadlines": [
            deadline("resolution", "running", 40),
            deadline("contribution", "running", 20, department=COHANDLER),
            deadline("contribution", "running", 20, department=SECOND),
        ],
    }
    return appeal_view(**{**shown, **extra})


def contribute_form(page: httpx.Response) -> str:
    return section(page, r'<form [^>]*id="act-contribute".*?</form>')


def form_of(page: httpx.Response, **fields: str) -> dict[str, str]:
    token = re.search(r'name="idempotency" value="([^"]+-contribute)"', contribute_form(page))
    assert token, "the form has its idempotency token"
    return {"csrf": csrf_of(page), "idempotency": token.group(1), **fields}


URL = f"/workbench/appeals/{APPEAL_ID}/contribution"


# The pure reading.


@pytest.mark.parametrize(
    "link",
    [
        "http://files.example.org/a.pdf",
        "javascript:alert(1)",
        "ftp://files.example.org/a.pdf",
        "https://",
        "https://user:secret@files.example.org/a.pdf",
        "https://files.example.org/a b.pdf",
        "files.example.org/a.pdf",
        "https://" + "a" * 2050,
    ],
)
def test_a_link_that_is_not_an_https_page_is_refused(link):
    assert not contributions.safe_link(link)
    assert contributions.links_of(f"https://ok.example.org/1\n{link}") == (["https://ok.example.org/1"], [(2, link)])


def test_links_are_typed_one_per_line_blank_lines_left_out_and_bad_ones_named_by_their_line():
    typed = " https://files.example.org/a.pdf \r\n\n\thttps://docs.example.org/b?x=1&y=2\nhttp://x.example.org\n"
    links, bad = contributions.links_of(typed)
    assert links == ["https://files.example.org/a.pdf", "https://docs.example.org/b?x=1&y=2"]
    assert bad == [(4, "http://x.example.org")]
    assert contributions.links_of("") == ([], [])
    assert contributions.safe_link("HTTPS://files.example.org/a.pdf") and not contributions.safe_link(None)


def test_each_reader_sees_its_own_share_of_the_contributions():
    one = appeal(
        deadlines=[
            deadline("contribution", "met", 20, department=COHANDLER),
            deadline("contribution", "breached", -3, department=SECOND, urge_level=2),
        ],
        contributions=[part()],
    )
    mine = contributions.view(one, COHANDLER)
    assert mine is not None and mine["role"] == "cohandler" and mine["may_contribute"]
    assert mine["own"]["state"] == "met" and mine["clocks"] == [] and mine["parts"] == [part()]
    lead = contributions.view(one, LEAD)
    assert lead is not None and lead["role"] == "lead" and not lead["may_contribute"]
    assert [(c["department"], c["deadline"]["state"]) for c in lead["clocks"]] == [
        (COHANDLER, "met"),
        (SECOND, "breached"),
    ]
    office = contributions.view(one, OFFICE)
    assert office is not None and office["role"] == "other" and not office["may_contribute"]
    # Before sla reported a new co-handler's clock, it has none yet; a closed appeal takes no part.
    fresh = contributions.view(appeal(deadlines=[]), COHANDLER)
    assert fresh is not None and fresh["own"] is None
    closed = contributions.view(appeal(status="closed"), COHANDLER)
    assert closed is not None and not closed["may_contribute"]
    # A lead alone has nothing to show; a reopening's new clock is the one that counts.
    assert contributions.view(appeal(cohandlers=[]), LEAD) is None
    runs = [
        deadline("contribution", "met", -30, department=COHANDLER, started_at=at(-40)),
        deadline("contribution", "running", 10, department=COHANDLER, started_at=at(-1)),
    ]
    assert contributions.clock_of(appeal(deadlines=runs), COHANDLER)["state"] == "running"


def test_a_co_handlers_row_says_when_its_part_is_due_until_it_is_sent():
    assert contributions.due_for(appeal(), COHANDLER) == {"due_at": at(20), "late": False, "state": "running"}
    late = appeal(deadlines=[deadline("contribution", "breached", -3, department=COHANDLER)])
    assert contributions.due_for(late, COHANDLER) == {"due_at": at(-3), "late": True, "state": "breached"}
    assert (
        contributions.due_for(appeal(deadlines=[deadline("contribution", "met", 3, department=COHANDLER)]), COHANDLER)
        is None
    )
    assert contributions.due_for(appeal(), LEAD) is None, "the lead's row keeps its own clocks"
    assert contributions.due_for(appeal(cohandlers=[]), COHANDLER) is None


# The co-handler's clerk.


async def test_a_co_handler_reads_its_deadline_and_sends_its_part_with_links():
    fake = FakeRouter(one=appeal())
    async with workbench(fake, COHANDLER, name="刘洋") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        assert page.status_code == 200
        own = section(page, r'<p id="contribution-clock".*?</p>')
        assert 'data-state="running"' in own and "本部门协办意见时限" in own and local(20) in own
        assert "计时中" in own and "剩余" in own
        assert 'id="no-contributions">尚无协办意见。' in page.text
        assert 'id="contribution-clocks"' not in page.text, "the lead reads the co-handlers' clocks"
        assert 'id="act-decline"' not in page.text and 'id="act-resolve"' not in page.text, "the lead's forms"
        assert "协办意见 · 深圳市商务局 · 计时中" in page.text, "the clock is named in the deadlines"
        form = form_of(
            page,
            note=" 外贸订单用工可申请稳岗补贴。 ",
            links="https://files.example.org/a.pdf\n\n https://docs.example.org/b?x=1&y=2 \n",
        )
        done = await client.post(URL, data=form)
        assert done.status_code == 303
        assert done.headers["location"] == f"/workbench/appeals/{APPEAL_ID}?done=contribute#contribution"
        after = await client.get(done.headers["location"])
    [(body, key, idempotency)] = fake.actions
    assert body == {
        "action": "contribute",
        "note": "外贸订单用工可申请稳岗补贴。",
        "attachments": ["https://files.example.org/a.pdf", "https://docs.example.org/b?x=1&y=2"],
        "clerk": "刘洋",
    }
    assert key == KEYS[COHANDLER] and idempotency == f"web-{form['idempotency']}"
    assert "已完成: 提交协办意见" in after.text
    sent = section(after, r'<ol class="contributions" id="contributions">.*?</ol>')
    assert "深圳市商务局" in sent and "刘洋" in sent and "外贸订单用工可申请稳岗补贴。" in sent
    assert '<a href="https://docs.example.org/b?x=1&amp;y=2" rel="noopener noreferrer" target="_blank">' in sent
    assert 'id="act-contribute"' in after.text, "a later part may follow"


async def test_the_form_checks_the_note_and_the_links_before_sending_and_keeps_what_was_typed():
    fake = FakeRouter(one=appeal())
    async with workbench(fake, COHANDLER, name="刘洋") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        links = "https://ok.example.org/a.pdf\nhttp://plain.example.org/b.pdf\n\njavascript:alert('x')"
        bad = await client.post(URL, data=form_of(page, note="", links=links))
        assert bad.status_code == 422
        form = contribute_form(bad)
        assert 'id="contribution-note-error">请填写本部门的协办意见<' in form
        said = section(bad, r'<p class="error" id="contribution-links-error">.*?</p>')
        assert "第2行不是有效的https链接：http://plain.example.org/b.pdf" in said
        assert "第4行不是有效的https链接：javascript:alert(&#39;x&#39;)" in said
        assert "javascript:alert(&#39;x&#39;)</textarea>" in form, "as typed, escaped"
        assert 'href="javascript' not in bad.text
        many = "\n".join(f"https://files.example.org/{n}.pdf" for n in range(21))
        too_many = await client.post(URL, data=form_of(page, note="<b>意见</b>", links=many))
        assert too_many.status_code == 422
        assert 'id="contribution-links-error">链接最多20个<' in too_many.text
        assert "&lt;b&gt;意见&lt;/b&gt;</textarea>" in too_many.text and "<b>意见</b>" not in too_many.text
        long = await client.post(URL, data=form_of(page, note="长" * 4001, links=""))
        assert long.status_code == 422 and 'id="contribution-note-error">协办意见最多4000个字<' in long.text
        stale = await client.post(URL, data={**form_of(page, note="意见", links=""), "csrf": "forged"})
        assert stale.status_code == 403
        assert 'id="contribution-error">表单已过期，请刷新页面后重新提交。' in contribute_form(stale)
        client.cookies.set("lang", "en")
        english = await client.post(URL, data=form_of(page, note=" ", links="http://x.example.org"))
        assert "Write your department&#39;s part" in english.text
        assert "Line 1 is not an https link: http://x.example.org" in english.text
    assert fake.actions == [], "nothing refused by web reaches router"


async def test_routers_refusal_shows_beside_the_form_with_what_was_typed():
    fake = FakeRouter(one=appeal())
    fake.refuse = (403, "only a co-handler contributes; commerce does not co-handle this appeal")
    async with workbench(fake, COHANDLER, lang="en", name="刘洋") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        refused = await client.post(
            URL, data=form_of(page, note="Export orders: <i>see</i>", links="https://files.example.org/a.pdf")
        )
    assert refused.status_code == 403
    form = contribute_form(refused)
    assert 'id="contribution-error">only a co-handler contributes; commerce does not co-handle' in form
    assert "Export orders: &lt;i&gt;see&lt;/i&gt;</textarea>" in form
    assert "https://files.example.org/a.pdf</textarea>" in form
    assert len(fake.actions) == 1


# The lead's clerk.


async def test_the_lead_reads_every_part_and_each_co_handlers_deadline_in_both_languages():
    hostile = part(
        SECOND,
        clerk="<script>alert(1)</script>",
        note="<img src=x onerror=alert(1)> 税务意见",
        attachments=["javascript:alert(1)", 'https://files.example.org/"><script>x</script>'],
        at=at(-1),
    )
    one = appeal(
        deadlines=[
            deadline("resolution", "running", 40, department=LEAD),
            deadline("contribution", "met", 20, department=COHANDLER),
            deadline("contribution", "breached", -3, department=SECOND, urge_level=2),
        ],
        contributions=[part(), hostile],
        timeline=[
            {"type": "appeal.accepted.v1", "status": "accepted", "time": at(-20), "department": LEAD},
            {
                "type": "appeal.contributed.v1",
                "status": "accepted",
                "time": at(-2),
                "department": LEAD,
                "actor": COHANDLER,
                "clerk": "刘洋",
                "note": "外贸订单用工可申请稳岗补贴。",
                "attachments": ["https://files.example.org/稳岗补贴.pdf?a=1&b=2"],
            },
        ],
    )
    fake = FakeRouter(one=one)
    async with workbench(fake, LEAD, name="王芳") as client:
        page = await client.get(f"/workbench/appeals/{APPEAL_ID}")
        client.cookies.set("lang", "en")
        english = await client.get(f"/workbench/appeals/{APPEAL_ID}")
    assert 'id="act-contribute"' not in page.text, "the lead does not contribute"
    clocks = section(page, r'<ul class="contribution-clocks" id="contribution-clocks">.*?</ul>')
    met = section(page, r'<li data-department="commerce" data-state="met".*?</li>')
    assert "深圳市商务局" in met and "按时完成" in met and local(20) in met
    late = section(page, r'<li data-department="tax" data-state="breached" class="overdue">.*?</li>')
    assert "已超时" in late and local(-3) in late and 'data-level="2">二级（催办）' in late
    assert clocks.count("<li ") == 2
    parts = section(page, r'<ol class="contributions" id="contributions">.*?</ol>')
    assert parts.count('<li class="contribution"') == 2
    assert f'<time datetime="{at(-2)}">{local(-2)}</time>' in parts and "刘洋" in parts
    assert "外贸订单用工可申请稳岗补贴，\n商务局可协调招聘会。" in parts
    link = "https://files.example.org/稳岗补贴.pdf?a=1&amp;b=2"
    assert f'<a href="{link}" rel="noopener noreferrer" target="_blank">{link}</a>' in parts
    # What would run in the clerk's browser is text; a link that is no https page is not a link.
    assert "<script>" not in page.text and "<img" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in parts and "&lt;img src=x onerror=alert(1)&gt; 税务意见" in parts
    assert '<span class="unsafe-link">javascript:alert(1)</span>' in parts and 'href="javascript' not in page.text
    # An https link with quotes in its path stays inside its attribute.
    assert 'href="https://files.example.org/&#34;&gt;&lt;script&gt;x&lt;/script&gt;" rel="noopener noreferrer"' in parts
    entry = section(page, r'<li data-type="appeal.contributed.v1">.*?</li>')
    assert "<strong>协办部门提交意见</strong> · 深圳市商务局 · 刘洋" in entry
    assert f'<a href="{link}" rel="noopener noreferrer" target="_blank">' in entry
    assert "Each co-handler&#39;s contribution deadline" in english.text and "Contributions" in english.text
    assert "Contribution · Shenzhen Municipal Commerce Bureau · met" in english.text
    assert "<strong>A co-handler contributed</strong>" in english.text


# The worklist.


async def test_a_co_handlers_worklist_row_says_when_its_part_is_due():
    fake = FakeRouter(one=appeal())
    late_id = "01JB8X4R5ZJ6Q8V2Y7K9M3N999"
    late = {
        **appeal(deadlines=[deadline("contribution", "breached", -3, department=COHANDLER)]),
        "appeal_id": late_id,
        "next_due": None,
    }
    fake.worklist = [{**appeal(), "next_due": at(20)}, late]
    async with workbench(fake, COHANDLER, name="刘洋") as client:
        rows = await client.get("/workbench")
        client.cookies.set("lang", "en")
        english = await client.get("/workbench")
    row = section(rows, rf'<tr [^>]*data-appeal="{APPEAL_ID}".*?</tr>')
    assert f'<span class="contribution-due" data-state="running">协办意见截止 {local(20)}</span>' in row
    late_row = section(rows, rf'<tr [^>]*data-appeal="{late_id}".*?</tr>')
    said = f"协办意见已超时（截止 {local(-3)}）"
    assert f'<span class="contribution-due late" data-state="breached">{said}</span>' in late_row
    assert f"contribution due {local(20)}" in english.text
    assert f"contribution overdue (was due {local(-3)})" in english.text
    fake.worklist = [{**appeal(), "next_due": at(20)}]
    async with workbench(fake, LEAD, name="王芳") as client:
        lead_rows = await client.get("/workbench")
    assert "contribution-due" not in lead_rows.text, "the lead's row keeps to its own clocks"
