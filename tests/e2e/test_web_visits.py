"""A return visit (回访) in a real browser (Debian's Chromium driven by Playwright) on the running stack: the lead
resolves an appeal, the coordinating office finds its visit among the open ones on its page, calls and records the
company unsatisfied (score 2) for the department's reasons, which orders a redo (重办); the lead's clerk then finds
the appeal at the top of its worklist, marked as a redo with its count and new due time.

Screenshots of the office's visits page (Chinese, English, a phone) and of the clerk's worklist and appeal page are
kept in build/screenshots/.
"""

from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import DESKTOP, PHONE, act, router_appeal, shot, sign_in, submit, until
from tests.factories import lanhai_appeal

pytestmark = pytest.mark.timeout(600)

RESOLUTION = "已协调三家用工单位联合招聘，首批岗位下周到位。"


@pytest.fixture(scope="module")
def stack(web_stack):
    return web_stack


def resolved_appeal(stack) -> tuple[str, str]:
    """An appeal submitted on the web channel, accepted and resolved by its lead: its id and its lead."""
    appeal_id = submit(stack, lanhai_appeal())["appeal_id"]
    lead = until(lambda: router_appeal(stack, appeal_id).get("lead"), "routing")
    assert lead != "coord", "the office's own appeal would be an operator's to visit"
    act(stack, lead, appeal_id, {"action": "accept", "note": "本周内联系用工单位。"})
    act(stack, lead, appeal_id, {"action": "resolve", "resolution": RESOLUTION})
    # Every enterprise appeal is visited (config/assessment.yaml): the visit is planned at the resolution.
    until(lambda: (router_appeal(stack, appeal_id).get("visit") or {}).get("state") == "scheduled", "the visit plan")
    return appeal_id, lead


def test_the_office_records_an_unsatisfied_visit_and_the_lead_finds_the_redo_on_top_of_its_worklist(stack, browser):
    appeal_id, lead = resolved_appeal(stack)

    # The office signs in with its key and finds the task among the open visits (its call time is a working day
    # away on the shared stack, so it is not yet among those to call now).
    office = sign_in(browser, stack, "coord", "陈伟")
    office.locator("#nav-visits").click()
    expect(office.get_by_role("heading", name="回访")).to_be_visible()
    expect(office.locator("#visit-tab-to_call")).to_have_attribute("aria-current", "page")
    office.locator("#visit-tab-open").click()
    expect(office.locator("#visit-tab-open")).to_have_attribute("aria-current", "page")
    row = office.locator(f"#visit-row-{appeal_id}")
    expect(row.locator(".visit-state")).to_have_text("待发送问卷")
    expect(row.locator(".resolution")).to_have_text(RESOLUTION)
    expect(row.locator(".contact-name")).to_have_text("李伟")
    expect(row.locator(".contact-phone")).to_contain_text("13800138000")
    expect(row).to_contain_text("第1轮回访")
    form = row.locator(f"#visit-{appeal_id}")
    expect(form.get_by_label("回访人")).to_have_value("陈伟")
    shot(office, "visits-zh-desktop")

    # Unsatisfied without a cause: the page says what is missing beside the field, and keeps what was typed.
    form.get_by_label("联系上", exact=True).check()
    form.locator("input[name=score][value='2']").check()
    form.get_by_label("备注（记入办理经过）").fill("企业称岗位仍未到位，招工问题没有解决。")
    form.get_by_role("button", name="记录回访").click()
    form = office.locator(f"#visit-{appeal_id}")
    expect(form.locator(f"#cause-error-{appeal_id}")).to_have_text("企业不满意时，请认定原因在部门（重办）还是部门以外")
    expect(form.locator("input[name=score][value='2']")).to_be_checked()
    expect(form.get_by_label("备注（记入办理经过）")).to_have_value("企业称岗位仍未到位，招工问题没有解决。")
    assert router_appeal(stack, appeal_id)["status"] == "resolved", "nothing was sent"

    # The same page in English, and on a phone.
    office.goto("/lang/en?next=" + quote("/workbench/office/visits?state=open"))
    expect(office.get_by_role("heading", name="Return visits")).to_be_visible()
    expect(office.locator(f"#visit-row-{appeal_id} .visit-state")).to_have_text("survey not sent yet")
    shot(office, "visits-en-desktop")
    office.set_viewport_size(PHONE)
    shot(office, "visits-en-phone")
    office.goto("/lang/zh?next=" + quote("/workbench/office/visits?state=open"))
    office.set_viewport_size(DESKTOP)

    # Reached, score 2, the cause at the department: a redo, said on the same tab.
    form = office.locator(f"#visit-{appeal_id}")
    form.get_by_label("联系上", exact=True).check()
    form.locator("input[name=score][value='2']").check()
    form.get_by_label("原因在部门（重办）").check()
    form.get_by_label("备注（记入办理经过）").fill("企业称岗位仍未到位，招工问题没有解决。")
    form.get_by_role("button", name="记录回访").click()
    expect(office.locator("#visit-done")).to_contain_text("企业不满意，原因在部门，诉求已退回承办部门重办")
    expect(office.locator("#visit-tab-open")).to_have_attribute("aria-current", "page")
    expect(office.locator(f"#visit-row-{appeal_id}")).to_have_count(0)
    shot(office, "visits-recorded-zh-desktop")
    redone = router_appeal(stack, appeal_id)
    assert (redone["status"], redone["redo_count"]) == ("reopened", 1)
    attempt = redone["visit"]["attempts"][-1]
    said = (attempt["visitor"], attempt["reached"], attempt["score"], attempt["cause"])
    assert said == ("陈伟", True, 2, "department")

    # The lead's clerk finds it at the top of the worklist, marked as a redo with its count and new due time.
    clerk = sign_in(browser, stack, lead, "王芳")
    first = clerk.locator("table.worklist tbody tr").first
    expect(first).to_have_attribute("data-appeal", appeal_id)
    expect(first).to_have_attribute("data-redo", "1")
    expect(first.locator(".badge.redo")).to_have_text("重办 · 第1次重办")
    expect(first.locator(".redo-due")).to_contain_text("重办时限")
    expect(clerk.locator("#redos-open")).to_contain_text("重办中")
    shot(clerk, "redo-worklist-zh-desktop")

    # The appeal's page says it is a redo, by when, and why: the visit and its attempt.
    first.get_by_role("link").first.click()
    expect(clerk.locator("#redo-marker")).to_contain_text("本诉求已退回本部门重办（第1次）")
    expect(clerk.locator("#visit-result")).to_have_text("不满意 · 2分 · 原因在部门（重办）")
    expect(clerk.locator("#visit-attempts")).to_contain_text("企业称岗位仍未到位")
    expect(clerk.locator("li[data-type='appeal.visited.v1']")).to_contain_text("协调办公室回访")
    shot(clerk, "redo-appeal-zh-desktop")
