"""The portal and the workbench in a real browser (Debian's Chromium driven by Playwright) on the running stack.

Screenshots of each page, in Chinese and English, at desktop and phone widths, are kept in
build/screenshots/.
"""

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Page, expect

from libs.phones import e164
from tests.e2e.browser import DESKTOP, PHONE, router_appeal, shot, sign_in, submit, until
from tests.helpers import appeal_body, read_topic, valid_uscc

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def stack(web_stack):
    return web_stack


def web(stack) -> str:
    return stack.url("web")


def operator(stack) -> dict[str, str]:
    return {"X-Api-Key": stack.keys["operator"]}


def sms_link(stack, appeal_id: str) -> str | None:
    """The follow link of the appeal's acknowledgement SMS, as the provider received it."""
    path = stack.data_dir / "outbox" / "sms.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        body = json.loads(line)["body"]
        if body.get("template") == "acknowledged" and appeal_id in body["text"]:
            found = re.search(r"http://\S+/appeals/" + appeal_id + r"\?token=[\w-]+", body["text"])
            return found.group(0) if found else None
    return None


def sms_texts(stack, phone: str, template: str) -> list[str]:
    """What the SMS provider received for a phone (any form; messages go to E.164) from one template, oldest first."""
    path = stack.data_dir / "outbox" / "sms.jsonl"
    bodies = [json.loads(line)["body"] for line in path.read_text().splitlines()] if path.exists() else []
    return [b["text"] for b in bodies if b["to"] == e164(phone) and b.get("template") == template]


def prove_phone(stack, page: Page, phone: str) -> None:
    """Ask for a code on the form and type the one the SMS brings."""
    before = len(sms_texts(stack, phone, "code"))
    page.get_by_role("button", name="获取验证码").click()
    expect(page.locator("#notice")).to_have_text("验证码已发送，10分钟内有效。")
    text = until(lambda: sms_texts(stack, phone, "code")[before:], "the code's SMS")[0]
    page.get_by_label("短信验证码").fill(re.search(r"[0-9]{6}", text).group(0))


def reload_until(page: Page, selector: str, what: str) -> None:
    def shown() -> int:
        page.reload()
        return page.locator(selector).count()

    until(shown, what)


def fill_appeal(page: Page, uscc: str, title: str) -> None:
    page.goto("/appeals/new")
    page.get_by_label("统一社会信用代码").fill(uscc)
    page.get_by_label("企业名称").fill("深圳市蓝海网络科技有限公司")
    page.get_by_label("职工人数").fill("25")
    page.get_by_label("行业").fill("互联网服务")
    page.get_by_label("所在区").select_option("nanshan")
    page.get_by_label("联系人姓名").fill("李伟")
    page.get_by_label("手机号码").fill("13800138000")
    page.locator("input[name=category][value=labour]").check()
    page.get_by_label("标题").fill(title)
    page.get_by_label("具体情况").fill("节后员工无法返岗，订单交付困难，希望协助招工。")
    page.get_by_label("我已阅读并同意上述个人信息使用说明").check()


def vat_question(**overrides) -> dict:
    """A small company of Futian asking about the VAT cut, as the web channel posts it (an override replaces a part
    whole)."""
    body = {
        "category": "tax",
        "description": "We ask whether the VAT cut applies to us.",
        "enterprise": {"name": "Lanhai", "employees": 12, "industry": "it", "district": "futian"},
    }
    return appeal_body(**{**body, **overrides})


def test_a_company_and_a_clerk_take_an_appeal_from_submission_to_confirmation(stack, browser):
    company = browser.new_context(base_url=web(stack), viewport=PHONE).new_page()
    company.goto("/appeals/new")
    shot(company, "submit-zh-phone")

    # Without the SMS code nothing goes to intake.
    fill_appeal(company, valid_uscc(), "节后员工无法返岗")
    company.get_by_role("button", name="提交").click()
    expect(company.locator("#code-error")).to_have_text("请填写短信中的6位验证码")

    # A wrong credit code comes back beside its field, with everything typed kept; the phone stays proven.
    company.get_by_label("统一社会信用代码").fill("91440300MA5FXT4K8X")
    prove_phone(stack, company, "13800138000")
    company.get_by_role("button", name="提交").click()
    error = company.locator("#enterprise-uscc-error")
    expect(error).to_contain_text("check")
    expect(company.get_by_label("标题")).to_have_value("节后员工无法返岗")
    expect(company.locator("#phone-proven")).to_be_visible()
    shot(company, "submit-error-zh-phone")

    company.get_by_label("统一社会信用代码").fill(valid_uscc())
    company.get_by_label("我已阅读并同意上述个人信息使用说明").check()
    company.get_by_role("button", name="提交").click()
    expect(company.get_by_role("heading", name="诉求已提交")).to_be_visible()
    link = company.locator("#follow-link").inner_text()
    appeal_id = re.search(r"/appeals/([0-9A-Z]{26})\?token=", link).group(1)
    assert company.url.endswith(f"/appeals/{appeal_id}?new=1"), "the token stays out of the address bar"
    lead = until(lambda: router_appeal(stack, appeal_id).get("lead"), "routing")

    # The same form sent twice (a double click, a reload of the answer) makes one appeal: web makes its
    # channel_ref from the browser's session and the body, and the form carries none.
    company.goto("/appeals/new")
    assert company.locator("[name='channel_ref']").count() == 0
    form = {"csrf": company.locator("[name='csrf']").first.input_value()}
    form.update(
        {
            "enterprise.uscc": valid_uscc(),
            "enterprise.name": "深圳市蓝海网络科技有限公司",
            "enterprise.employees": "25",
            "enterprise.industry": "互联网服务",
            "enterprise.district": "nanshan",
            "contact.name": "李伟",
            "contact.phone": "13800138000",  # proven in this browser a moment ago
            "category": "tax",
            "title": "增值税留抵退税咨询",
            "description": "想了解留抵退税政策是否适用。",
            "consent": "yes",
        }
    )
    twice = [company.request.post("/appeals/new", form=form, max_redirects=0) for _ in range(2)]
    assert [r.status for r in twice] == [303, 303]
    assert twice[0].headers["location"] == twice[1].headers["location"] != f"/appeals/{appeal_id}?new=1"

    # The acknowledgement SMS carries the same link, and it opens the appeal in the company's phone.
    sms = until(lambda: sms_link(stack, appeal_id), "the acknowledgement SMS")
    assert sms == link
    token = link.split("token=")[1]
    phone = browser.new_context(base_url=web(stack), viewport=PHONE).new_page()
    phone.goto(sms)
    assert phone.url.endswith(f"/appeals/{appeal_id}")
    expect(phone.locator("#status")).to_have_text("已分派")
    shot(phone, "follow-zh-phone")

    # The clerk signs in, finds it in the worklist and asks for information.
    clerk = sign_in(browser, stack, lead, "王芳")
    row = clerk.locator(f"tr[data-appeal='{appeal_id}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("剩余")
    shot(clerk, "worklist-zh-desktop")
    row.get_by_role("link").click()
    expect(clerk.locator("#status")).to_have_text("已分派")
    shot(clerk, "appeal-zh-desktop")
    form = clerk.locator("#act-request_info")
    form.get_by_label("需要补充什么").fill("请提供需要招聘的岗位和人数。")
    form.get_by_role("button").click()
    expect(clerk.locator("#status")).to_have_text("待补充材料")

    # The company answers on its page.
    reload_until(phone, "#information", "the request reaching the company's page")
    expect(phone.locator("blockquote")).to_have_text("请提供需要招聘的岗位和人数。")
    shot(phone, "info-requested-zh-phone")
    phone.get_by_label("补充内容").fill("普工20人，质检员3人。")
    phone.get_by_role("button", name="发送").click()
    expect(phone.get_by_text("已收到，谢谢。")).to_be_visible()

    # Resolving before accepting is refused in the lifecycle's words; the clerk accepts with a plan, then resolves.
    until(lambda: router_appeal(stack, appeal_id)["status"] != "info_requested", "the answer reaching router")
    clerk.reload()
    form = clerk.locator("#act-resolve")
    form.get_by_label("办理结果").fill("已解决。")
    form.get_by_role("button").click()
    expect(clerk.locator("#refused")).to_contain_text("cannot resolve an appeal that is routed")
    shot(clerk, "refused-zh-desktop")
    form = clerk.locator("#act-accept")
    form.get_by_label("办理计划").fill("联系人社局安排招聘专场。")
    form.get_by_role("button").click()
    expect(clerk.locator("#status")).to_have_text("已受理")
    form = clerk.locator("#act-resolve")
    form.get_by_label("办理结果").fill("已对接人社局招聘专场，推荐23名求职者。")
    form.get_by_label("引用政策编号（逗号分隔）").fill("")
    form.get_by_role("button").click()
    expect(clerk.locator("#status")).to_have_text("已办结")
    expect(clerk.locator(".timeline")).to_contain_text("王芳")

    # The company confirms with a score.
    reload_until(phone, "input[name=resolved]", "the resolution reaching the company's page")
    shot(phone, "resolved-zh-phone")
    phone.get_by_label("问题已解决").check()
    phone.locator("input[name=satisfaction][value='5']").check()
    phone.get_by_role("button", name="发送").click()
    expect(phone.get_by_text("已收到，谢谢。")).to_be_visible()
    until(lambda: router_appeal(stack, appeal_id)["status"] in ("confirmed", "closed"), "the confirmation")
    assert router_appeal(stack, appeal_id)["timeline"][-1]["actor"] == "company"

    # The token went to notify only: on no department's topic, in no log line; no log shows the clerk's key either.
    # Playwright's sync API holds this thread's event loop: the topic is read on another thread.
    with ThreadPoolExecutor(1) as pool:
        topic = read_topic(stack.kafka_access(), f"dept.{lead}.v1", lambda e: e.get("subject") == appeal_id)
        assignment = pool.submit(asyncio.run, topic).result()
    assert assignment and token not in json.dumps(assignment)
    # Nor the contact's phone, in the form it was typed or the E.164 form it travels in.
    for log in stack.data_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert token not in text and stack.keys[f"department:{lead}"] not in text, log.name
        assert "13800138000" not in text and "+8613800138000" not in text, log.name

    # The stats count it: one appeal, resolved, one satisfied feedback for the lead.
    def counted():
        rates = httpx.get(stack.url("stats") + "/v1/stats/departments", headers=operator(stack), timeout=30).json()
        row = next(d for d in rates["departments"] if d["department"] == lead)
        return row if row["feedback"] == 1 else None

    row = until(counted, "stats counting the feedback")
    assert row["satisfaction_rate"] == 1.0 and row["resolved"] == 1
    summary = httpx.get(stack.url("stats") + "/v1/stats/summary", headers=operator(stack), timeout=30).json()
    assert summary["total"] >= 1 and summary["companies"]["solved"] >= 1

    # The same pages in English and at both widths, the workbench's too.
    for lang in ("en", "zh"):
        for width, size in (("desktop", DESKTOP), ("phone", PHONE)):
            context = browser.new_context(base_url=web(stack), viewport=size)
            page = context.new_page()
            page.goto(f"/lang/{lang}?next=/appeals/new")
            shot(page, f"submit-{lang}-{width}")
            page.goto(link)
            shot(page, f"follow-{lang}-{width}")
            page.goto("/appeals/lost")
            shot(page, f"lost-{lang}-{width}")
            page.goto("/workbench")
            shot(page, f"signin-{lang}-{width}")
            page.locator("#name").fill("王芳")
            page.locator("#department").select_option(lead)
            page.locator("#key").fill(stack.keys[f"department:{lead}"])
            page.locator("form.narrow button").click()
            shot(page, f"worklist-{lang}-{width}")
            page.goto(f"/workbench/appeals/{appeal_id}")
            shot(page, f"appeal-{lang}-{width}")
            context.close()
    english = browser.new_context(base_url=web(stack), viewport=DESKTOP).new_page()
    english.goto("/lang/en?next=/appeals/new")
    expect(english.get_by_role("heading", name="Submit an appeal")).to_be_visible()


def test_a_clerk_of_another_department_cannot_open_or_act(stack, browser):
    body = appeal_body(
        category="labour",
        title="Workers cannot return",
        description="Staff cannot return after the holiday; we need help hiring.",
        enterprise={"name": "Lanhai", "employees": 12, "industry": "internet", "district": "nanshan"},
    )
    appeal_id = submit(stack, body)["appeal_id"]
    lead = until(lambda: router_appeal(stack, appeal_id).get("lead"), "routing")
    other = "commerce" if lead != "commerce" else "customs"

    clerk = sign_in(browser, stack, other, "赵强")
    session = next(c for c in clerk.context.cookies() if c["name"] == "clerk")
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/workbench"
    assert stack.keys[f"department:{other}"] not in session["value"], "the key is sealed, never readable"
    csrf = clerk.locator("input[name=csrf]").first.get_attribute("value")
    answer = clerk.goto(f"/workbench/appeals/{appeal_id}")
    assert answer.status == 403
    expect(clerk.get_by_role("alert")).to_contain_text(appeal_id)
    shot(clerk, "forbidden-zh-desktop")
    # Posting an action anyway, with a valid CSRF token of this browser, is refused by router.
    posted = clerk.request.post(
        f"/workbench/appeals/{appeal_id}/actions", form={"csrf": csrf, "action": "accept", "note": "mine now"}
    )
    assert posted.status == 403
    assert router_appeal(stack, appeal_id)["status"] == "routed"

    # Signing out ends the session.
    clerk.goto("/workbench")
    clerk.get_by_role("button", name="退出").click()
    expect(clerk.get_by_role("button", name="登录")).to_be_visible()
    assert not [c for c in clerk.context.cookies() if c["name"] == "clerk"]

    # A wrong key signs nobody in.
    page = browser.new_context(base_url=web(stack), viewport=DESKTOP).new_page()
    page.goto("/workbench")
    page.get_by_label("您的姓名").fill("赵强")
    page.get_by_label("部门", exact=True).select_option(lead)
    page.get_by_label("部门密钥").fill(stack.keys[f"department:{other}"])
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_have_text("该密钥不能登录此部门。")

    # Operator, admin and channel keys open no workbench, although router would show them any worklist.
    for scope in ("operator", "admin", "channel:web"):
        page.get_by_label("您的姓名").fill("赵强")
        page.get_by_label("部门", exact=True).select_option(lead)
        page.get_by_label("部门密钥").fill(stack.keys[scope])
        page.get_by_role("button", name="登录").click()
        expect(page.get_by_role("alert")).to_have_text("工作台只能用部门密钥登录；运营、管理员和渠道密钥不能登录。")
        assert not [c for c in page.context.cookies() if c["name"] == "clerk"], scope
    shot(page, "signin-refused-operator-zh-desktop")


def test_a_token_opens_only_its_own_appeal_and_forms_need_their_csrf_token(stack, browser):
    first, second = [submit(stack, vat_question(title=f"VAT question {n}")) for n in (1, 2)]
    page = browser.new_context(base_url=web(stack), viewport=PHONE).new_page()
    page.goto(f"/appeals/{first['appeal_id']}?token={first['status_token']}")
    expect(page.get_by_role("heading", name="VAT question 1")).to_be_visible()
    wrong = page.goto(f"/appeals/{second['appeal_id']}?token={first['status_token']}")
    assert wrong.status == 403
    expect(page.get_by_role("alert")).to_have_text("链接无效或已过期。")
    assert page.goto(f"/appeals/{second['appeal_id']}").status == 403, "no cookie of the first opens the second"

    # Without the CSRF token nothing is sent: no appeal, no sign-in, no answer.
    plain = httpx.Client(base_url=web(stack), timeout=30)
    refused = plain.post("/appeals/new", data={"title": "no token", "consent": "yes"})
    assert refused.status_code == 403
    signin = plain.post("/workbench/sign-in", data={"name": "x", "department": "commerce", "key": "k"})
    assert signin.status_code == 403 and "clerk" not in signin.cookies
    plain.cookies.set(f"appeal_{first['appeal_id']}", first["status_token"])
    feedback = plain.post(f"/appeals/{first['appeal_id']}/feedback", data={"resolved": "yes", "satisfaction": "5"})
    assert feedback.status_code == 403
    assert router_appeal(stack, first["appeal_id"])["status"] != "confirmed"


def test_codes_are_limited_and_a_lost_link_goes_to_the_appeals_phone(stack, browser):
    page = browser.new_context(base_url=web(stack), viewport=PHONE).new_page()
    page.goto("/appeals/new")
    page.get_by_label("手机号码").fill("13900007777")
    page.get_by_role("button", name="获取验证码").click()
    expect(page.locator("#notice")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/appeals/code")) as second:
        page.get_by_role("button", name="获取验证码").click()
    assert second.value.status == 429 and 0 < int(second.value.headers["retry-after"]) <= 61
    expect(page.locator("#code-error")).to_contain_text("秒后再试")
    shot(page, "code-limited-zh-phone")

    body = vat_question(title="VAT question, link lost", contact={"phone": "13900006666"})
    appeal_id = submit(stack, body)["appeal_id"]
    for phone in ("13900005555", "13900006666"):
        page.goto("/appeals/lost")
        page.get_by_label("诉求编号").fill(appeal_id)
        page.get_by_label("手机号码").fill(phone)
        page.get_by_role("button", name="发送").click()
        expect(page.get_by_role("status")).to_have_text("如果手机号与诉求一致，查询链接已通过短信发送。")
    shot(page, "lost-zh-phone")
    link = until(lambda: sms_texts(stack, "13900006666", "link"), "the link's SMS")[0]
    assert sms_texts(stack, "13900005555", "link") == [], "nothing goes to a phone that is not the appeal's"
    page.goto(re.search(r"http://\S+?token=[\w-]+", link).group(0))
    expect(page.get_by_role("heading", name="VAT question, link lost")).to_be_visible()


def test_a_company_sees_and_corrects_its_contact_on_its_page(stack, browser):
    body = vat_question(
        title="增值税留抵退税咨询",
        description="想了解留抵退税政策是否适用。",
        enterprise={"name": "蓝海科技", "employees": 12, "industry": "it", "district": "futian"},
        contact={"name": "李伟", "phone": "13900008888", "email": "liwei@example.com"},
    )
    accepted = submit(stack, body)
    appeal_id, token = accepted["appeal_id"], accepted["status_token"]

    # The company opens its link and sees the contact kept, in the form intake keeps it.
    page = browser.new_context(base_url=web(stack), viewport=PHONE).new_page()
    page.goto(f"/appeals/{appeal_id}?token={token}")
    section = page.locator("#contact")
    expect(section.get_by_role("heading", name="您的联系人")).to_be_visible()
    expect(page.locator("#kept-name")).to_have_text("李伟")
    expect(page.locator("#kept-phone")).to_have_text(e164("13900008888"))
    expect(page.locator("#kept-email")).to_have_text("liwei@example.com")
    expect(section.locator("details.privacy")).to_contain_text("诉求办结180天后")

    # A malformed phone comes back from intake beside its field, as typed; the contact kept is unchanged.
    page.get_by_label("手机号码").fill("12345")
    page.get_by_role("button", name="保存更正").click()
    error = page.locator("#contact-phone-error")
    expect(error).to_contain_text("填写内容不符合要求（is not a valid phone number")
    expect(page.get_by_label("手机号码")).to_have_value("12345")
    expect(page.get_by_label("手机号码")).to_have_attribute("aria-describedby", "contact-phone-error")
    expect(page.locator("#kept-phone")).to_have_text(e164("13900008888"))
    shot(page, "contact-error-zh-phone")

    # The correction by keyboard alone: from the name, Tab to the phone, type, Tab past the e-mail to the button.
    page.get_by_label("联系人姓名").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("手机号码")).to_be_focused()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("139 0000 9999")
    page.keyboard.press("Tab")
    expect(page.get_by_label("电子邮箱（选填）")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="保存更正")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#contact-corrected")).to_have_text("联系人已更正，承办部门和后续通知将使用新的联系方式。")
    expect(page.locator("#kept-phone")).to_have_text(e164("13900009999"))
    expect(page.locator("#kept-email")).to_have_text("liwei@example.com")
    assert page.url.endswith(f"/appeals/{appeal_id}?corrected=1#contact")
    shot(page, "contact-corrected-zh-phone")

    # Intake keeps the correction and the department handling the appeal reads it.
    kept = httpx.get(
        stack.url("intake") + f"/v1/appeals/{appeal_id}/contact", headers={"X-Status-Token": token}, timeout=30
    ).json()
    assert kept["contact"]["phone"] == e164("13900009999") and kept["erased_at"] is None
    lead = until(lambda: router_appeal(stack, appeal_id).get("lead"), "routing")
    department = {"X-Api-Key": stack.keys[f"department:{lead}"]}

    def seen_by_department():
        answer = httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers=department, timeout=30).json()
        return (answer.get("contact") or {}).get("phone") == e164("13900009999")

    until(seen_by_department, "the correction reaching the department")

    # The same section in English, an error too, at both widths.
    page.goto(f"/lang/en?next=/appeals/{appeal_id}")
    expect(section.get_by_role("heading", name="Your contact")).to_be_visible()
    expect(page.locator("#kept-phone")).to_have_text(e164("13900009999"))
    shot(page, "contact-en-phone")
    page.get_by_label("Mobile phone").fill("not a phone")
    page.get_by_role("button", name="Save the correction").click()
    expect(page.locator("#contact-phone-error")).to_contain_text("is not a phone number")
    shot(page, "contact-error-en-phone")
    page.set_viewport_size(DESKTOP)
    page.goto(f"/appeals/{appeal_id}")
    shot(page, "contact-en-desktop")
    page.goto(f"/lang/zh?next=/appeals/{appeal_id}")
    shot(page, "contact-zh-desktop")
