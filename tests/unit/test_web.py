"""Web's own rules: sealed sessions and their two clocks, CSRF tokens, time left in words, a service that is down,
the contact on the company's page, the privacy notice, and what the company's timeline leaves out."""

import re
import time

import httpx
import pytest
from markupsafe import escape

from devstack import servers
from services.web.app import create_app
from services.web.i18n import t, time_left
from services.web.session import Clerk, Sealer
from services.web.settings import WebSettings
from tests.factories import APPEAL_ID, FakeIntake, csrf_of, portal

CLERK = Clerk(name="王芳", department="nanshan-hrss", key="secret-department-key", signed_in=time.time())


def test_a_session_opens_only_sealed_by_us_unaltered_and_within_its_limits():
    sealer = Sealer("one secret")
    cookie = sealer.seal(CLERK)
    assert "secret-department-key" not in cookie and "nanshan" not in cookie
    assert sealer.open(cookie, idle_seconds=1800, max_seconds=8 * 3600) == CLERK
    assert Sealer("another secret").open(cookie, 1800, 8 * 3600) is None
    assert sealer.open(cookie[:-4] + "AAAA", 1800, 8 * 3600) is None
    idle = sealer.seal(CLERK, at=time.time() - 31 * 60)
    assert sealer.open(idle, idle_seconds=1800, max_seconds=8 * 3600) is None, "30 idle minutes end it"
    old = Clerk(**{**CLERK.__dict__, "signed_in": time.time() - 8 * 3600 - 1})
    assert sealer.open(sealer.seal(old), idle_seconds=1800, max_seconds=8 * 3600) is None, "8 hours end it"


def test_a_csrf_token_belongs_to_its_browser_cookie():
    sealer = Sealer("one secret")
    token = sealer.csrf_token("cookie-a")
    assert sealer.csrf_ok("cookie-a", token)
    assert not sealer.csrf_ok("cookie-b", token)
    assert not sealer.csrf_ok(None, token) and not sealer.csrf_ok("cookie-a", None)


@pytest.mark.parametrize(
    ("lang", "seconds", "said"),
    [
        ("en", 2 * 86400 + 3 * 3600 + 59, "2 days 3 hours left"),
        ("en", 5 * 3600 + 12 * 60, "5 hours 12 minutes left"),
        ("en", -40 * 60, "overdue by 40 minutes"),
        ("en", 20, "less than a minute left"),
        ("zh", 5 * 3600 + 59 * 60, "剩余5小时59分钟"),
        ("zh", -(86400 + 7200), "已超时1天2小时"),
    ],
)
def test_time_left_is_said_in_words(lang, seconds, said):
    assert time_left(lang, seconds) == said


async def test_a_service_that_is_down_gives_a_plain_page_to_try_again():
    closed = f"http://127.0.0.1:{servers.free_port()}"
    app = create_app(WebSettings(intake_url=closed, router_url=closed))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://web") as client:
        appeal_id = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
        client.cookies.set(f"appeal_{appeal_id}", "token")
        page = await client.get(f"/appeals/{appeal_id}")
        assert page.status_code == 503 and page.headers["retry-after"] == "60"
        assert "请一分钟后再试" in page.text and "Traceback" not in page.text
        client.cookies.set("lang", "en")
        english = await client.get(f"/appeals/{appeal_id}")
        assert "Please try again in a minute" in english.text
        form = await client.get("/appeals/new")
        assert form.status_code == 200 and form.headers["x-frame-options"] == "DENY"
        assert "csrf" in client.cookies and "portal" in client.cookies
        assert 'name="channel_ref"' not in form.text, "web makes the channel_ref; the form carries none"


# The contact on the company's page, over a fake intake that answers as intake's contact calls do.

LI_WEI = {"name": "李伟", "phone": "+8613800138000", "email": "liwei@example.com", "wechat_openid": "oX3f0t1example"}


async def test_the_company_sees_its_contact_and_corrects_it_keeping_what_the_form_does_not_show():
    intake = FakeIntake(dict(LI_WEI))
    async with portal(intake) as client:
        page = await client.get(f"/appeals/{APPEAL_ID}")
        assert page.status_code == 200
        for shown in ('id="kept-name">李伟<', 'id="kept-phone">+8613800138000<', 'id="kept-email">liwei@example.com<'):
            assert shown in page.text
        assert "oX3f0t1example" not in page.text, "the WeChat open id is not the company's to read off a page"
        for label in ('<label for="contact-name">', '<label for="contact-phone">', '<label for="contact-email">'):
            assert label in page.text
        assert 'value="+8613800138000"' in page.text, "the form starts from the contact kept"

        form = {"csrf": csrf_of(page), "contact.name": " 李伟 ", "contact.phone": "139 0013 9000", "contact.email": ""}
        sent = await client.post(f"/appeals/{APPEAL_ID}/contact", data=form)
        assert sent.status_code == 303 and sent.headers["location"] == f"/appeals/{APPEAL_ID}?corrected=1#contact"
        assert intake.puts == [{"name": "李伟", "phone": "139 0013 9000", "wechat_openid": "oX3f0t1example"}]

        after = await client.get(sent.headers["location"])
        assert 'id="contact-corrected"' in after.text and "联系人已更正" in after.text
        assert 'id="kept-phone">+8613900139000<' in after.text and 'id="kept-email">未填写<' in after.text


async def test_intakes_refusal_lands_beside_the_field_as_typed_in_either_language():
    for lang, said in (
        ("zh", "填写内容不符合要求（is not a valid phone number"),
        ("en", "is not a valid phone number"),
    ):
        intake = FakeIntake(dict(LI_WEI))
        async with portal(intake, lang) as client:
            page = await client.get(f"/appeals/{APPEAL_ID}")
            form = {"csrf": csrf_of(page), "contact.name": "李伟", "contact.phone": "12345", "contact.email": ""}
            refused = await client.post(f"/appeals/{APPEAL_ID}/contact", data=form)
        assert refused.status_code == 422
        error = re.search(r'<p class="error" id="contact-phone-error">([^<]*)</p>', refused.text)
        assert error and error.group(1).startswith(said), lang
        assert 'aria-describedby="contact-phone-error"' in refused.text and 'value="12345"' in refused.text
        assert 'id="kept-phone">+8613800138000<' in refused.text, "the contact kept is unchanged"
        assert intake.contact == LI_WEI


async def test_an_erased_contact_says_when_and_offers_no_form():
    intake = FakeIntake(None, erased_at="2026-03-04T09:05:00+00:00")
    async with portal(intake) as client:
        page = await client.get(f"/appeals/{APPEAL_ID}")
        assert "联系人信息已于 2026-03-04 17:05 删除" in page.text
        assert f'action="/appeals/{APPEAL_ID}/contact' not in page.text and 'id="contact-phone"' not in page.text
        # A form of the page from before the erasure is answered with the erasure.
        form = {
            "csrf": csrf_of(await client.get("/appeals/new")),
            "contact.name": "李伟",
            "contact.phone": "13900139000",
            "contact.email": "",
        }
        late = await client.post(f"/appeals/{APPEAL_ID}/contact", data=form)
        assert late.status_code == 409 and "联系人信息已于 2026-03-04 17:05 删除" in late.text
    async with portal(FakeIntake(None, erased_at="2026-03-04T09:05:00+00:00"), "en") as client:
        page = await client.get(f"/appeals/{APPEAL_ID}")
        assert "The contact was erased on 2026-03-04 17:05" in page.text


async def test_a_correction_needs_the_forms_csrf_token_and_the_appeals_token():
    intake = FakeIntake(dict(LI_WEI))
    async with portal(intake) as client:
        await client.get(f"/appeals/{APPEAL_ID}")
        form = {"contact.name": "李伟", "contact.phone": "13900139000"}
        assert (await client.post(f"/appeals/{APPEAL_ID}/contact", data=form)).status_code == 403
        page = await client.get(f"/appeals/{APPEAL_ID}")
        client.cookies.set(f"appeal_{APPEAL_ID}", "an-old-token")
        stale = await client.post(f"/appeals/{APPEAL_ID}/contact", data={**form, "csrf": csrf_of(page)})
        assert stale.status_code == 403 and "链接无效或已过期" in stale.text
    assert intake.puts == []


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_the_privacy_notice_says_what_docs_privacy_says(lang):
    text = t(lang, "privacy_text")
    points = {
        "zh": [
            "仅用于办理本诉求和向您告知办理进展",
            "承办部门",
            "查阅都会留下记录",
            "协调办公室",
            "更正",
            "180天",
            "要求",
        ],
        "en": [
            "only to handle this appeal",
            "departments handling it",
            "is logged",
            "coordination office",
            "correct",
            "180 days after the appeal closes",
            "if you ask",
        ],
    }[lang]
    assert [p for p in points if p not in text] == []
    assert "never" not in text and "不写入日志" not in text, "operators' reads are logged"
    async with portal(FakeIntake(dict(LI_WEI)), lang) as client:
        for path in ("/appeals/new", f"/appeals/{APPEAL_ID}"):
            assert str(escape(text)) in (await client.get(path)).text, path


async def test_the_company_does_not_read_the_offices_supervision_of_the_departments():
    def entry(kind: str, status: str, minute: int, **extra: str) -> dict:
        return {"type": f"appeal.{kind}.v1", "status": status, "time": f"2026-03-04T09:{minute:02d}:00+00:00", **extra}

    timeline = [
        entry("routed", "routed", 0, department="nanshan-hrss"),
        entry("urged", "routed", 1, department="nanshan-hrss", clerk="陈伟", note="内部：今天答复"),
        entry("transfer_requested", "routed", 2, department="nanshan-hrss", reason="内部：属商务局"),
        entry("transfer_refused", "routed", 3, department="nanshan-hrss", note="内部：请先核实"),
        entry("decline_overruled", "routed", 4, department="nanshan-hrss", clerk="陈伟", note="内部：退单不成立"),
        entry("decline_confirmed", "routed", 5, department="commerce", note="内部：退单成立"),
    ]
    async with portal(FakeIntake(dict(LI_WEI), timeline=timeline)) as client:
        page = await client.get(f"/appeals/{APPEAL_ID}")
    assert page.status_code == 200 and "内部" not in page.text and "陈伟" not in page.text
    shown = re.findall(r'data-type="([^"]+)"', page.text)
    assert shown == ["appeal.routed.v1", "appeal.decline_overruled.v1"]
    overruled = re.search(r'data-type="appeal.decline_overruled.v1">.*?</li>', page.text, re.S).group(0)
    assert "<strong>已分派</strong> · 南山区人力资源局" in overruled, "the appeal back with a department, no more"


async def test_the_company_reads_what_the_department_asked_not_a_co_handlers_part_or_an_urging_after_it():
    def entry(kind: str, minute: int, **extra: str) -> dict:
        time = f"2026-03-04T09:{minute:02d}:00+00:00"
        return {"type": f"appeal.{kind}.v1", "status": "info_requested", "time": time, **extra}

    timeline = [
        entry("info_requested", 0, department="nanshan-hrss", note="请补充劳动合同复印件。"),
        entry("contributed", 1, department="nanshan-hrss", clerk="刘洋", note="内部：商务局意见"),
        entry("urged", 2, department="nanshan-hrss", clerk="陈伟", note="内部：今天答复"),
    ]
    async with portal(FakeIntake(dict(LI_WEI), timeline=timeline, status="info_requested")) as client:
        page = await client.get(f"/appeals/{APPEAL_ID}")
    assert page.status_code == 200 and "<blockquote>请补充劳动合同复印件。</blockquote>" in page.text
    assert "内部" not in page.text and "刘洋" not in page.text
    assert re.findall(r'data-type="([^"]+)"', page.text) == ["appeal.info_requested.v1"]
