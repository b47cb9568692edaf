"""An extension (延期) in a real browser (Debian's Chromium driven by Playwright) on the running stack: the lead's
clerk asks on the workbench, the coordinating office approves on its page of the city queue, the clerk sees it.

Screenshots of the office's page in Chinese and English, and of the appeal's page before and after, are kept in
build/screenshots/.
"""

from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from services.web.extensions import local_input
from tests.e2e.browser import DESKTOP, OFFICE_NAME_ZH, PHONE, router_appeal, shot, sign_in, submit, until
from tests.factories import lanhai_appeal

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def stack(web_stack):
    return web_stack


def resolution_due(stack, appeal_id: str) -> datetime:
    """The resolution clock's due time, once router has heard it from sla (a moment after routing)."""

    def due() -> datetime | None:
        found = [
            d
            for d in router_appeal(stack, appeal_id).get("deadlines", [])
            if d["clock"] == "resolution" and d["due_at"]
        ]
        return datetime.fromisoformat(found[0]["due_at"]) if found else None

    return until(due, "router hearing of the resolution clock")


def test_the_lead_asks_for_an_extension_and_the_office_approves_it_on_its_page(stack, browser):
    appeal_id = submit(stack, lanhai_appeal())["appeal_id"]
    lead = until(lambda: router_appeal(stack, appeal_id).get("lead"), "routing")
    due = resolution_due(stack, appeal_id)
    asked = local_input((due + timedelta(days=1)).isoformat())

    # The lead's clerk asks on the appeal's page, the new due time typed in city time.
    clerk = sign_in(browser, stack, lead, "王芳")
    expect(clerk.locator("#nav-office")).to_have_count(0)
    clerk.goto(f"/workbench/appeals/{appeal_id}")
    form = clerk.locator("#act-request_extension")
    expect(form.get_by_label("新的办结时限（北京时间）")).to_have_value(local_input(due.isoformat()))
    # Past the configured limit router refuses, in its own words beside the form, with what was typed kept.
    form.get_by_label("新的办结时限（北京时间）").fill(local_input((due + timedelta(days=40)).isoformat()))
    form.get_by_label("延期理由").fill("需协调三家用工单位联合招聘，下周方能确定岗位。")
    form.get_by_role("button", name="申请延期").click()
    expect(clerk.locator("#act-request_extension #extension-error")).to_contain_text("at most 10wd")
    expect(form.get_by_label("延期理由")).to_have_value("需协调三家用工单位联合招聘，下周方能确定岗位。")
    shot(clerk, "extension-refused-zh-desktop")
    form.get_by_label("新的办结时限（北京时间）").fill(asked)
    form.get_by_role("button", name="申请延期").click()
    expect(clerk.locator("#extension-waiting")).to_have_text("延期申请已提交，等待协调办公室审批。")
    expect(clerk.locator("li.extension[data-state=pending]")).to_contain_text(asked.replace("T", " "))
    expect(clerk.locator("li[data-type='appeal.extension_requested.v1']")).to_contain_text("申请延期 · ")
    shot(clerk, "extension-requested-zh-desktop")

    # The office signs in with its key and finds it under "extension pending".
    office = sign_in(browser, stack, "coord", "陈伟")
    office.locator("#nav-office").click()
    expect(office.get_by_role("heading", name="全市督办队列")).to_be_visible()
    office.locator("#tab-extension_pending").click()
    expect(office.locator("#tab-extension_pending")).to_have_attribute("aria-current", "page")
    row = office.locator(f"#row-{appeal_id}")
    expect(row).to_contain_text("需协调三家用工单位联合招聘")
    expect(row).to_contain_text(asked.replace("T", " "))
    expect(row).to_contain_text("王芳")
    expect(row.locator(".state")).to_have_text("待审批")
    # A rejection needs a comment before the browser even sends it; an approval does not.
    assert row.get_by_label("审批意见（不同意时必填）").evaluate("e => e.validity.valueMissing")
    shot(office, "office-zh-desktop")

    # The same page in English, and on a phone.
    office.goto("/lang/en?next=" + quote("/workbench/office?state=extension_pending"))
    expect(office.get_by_role("heading", name="The city queue")).to_be_visible()
    expect(office.locator(f"#row-{appeal_id} .state")).to_have_text("pending")
    shot(office, "office-en-desktop")
    office.set_viewport_size(PHONE)
    shot(office, "office-en-phone")
    office.goto("/lang/zh?next=" + quote("/workbench/office?state=extension_pending"))
    shot(office, "office-zh-phone")
    office.set_viewport_size(DESKTOP)

    # The office approves with a comment, in its clerk's name, and stays on the same tab.
    row = office.locator(f"#row-{appeal_id}")
    row.get_by_label("审批意见（不同意时必填）").fill("同意延期一次，请按期办结。")
    row.get_by_role("button", name="同意延期", exact=True).click()
    expect(office.locator("#office-done")).to_contain_text("同意延期")
    expect(office.locator("#tab-extension_pending")).to_have_attribute("aria-current", "page")
    expect(office.locator(f"#row-{appeal_id}")).to_have_count(0)
    shot(office, "office-decided-zh-desktop")
    entry = router_appeal(stack, appeal_id)["timeline"][-1]
    assert (entry["type"], entry["actor"], entry["clerk"]) == ("appeal.extension_approved.v1", "coord", "陈伟")

    # The clerk sees it approved, with the office's comment, and the deadline moved once sla has moved it.
    clerk.reload()
    approved = clerk.locator("li.extension[data-state=approved]")
    expect(approved.locator(".state")).to_have_text("已同意")
    expect(approved.locator(".comment")).to_have_text("同意延期一次，请按期办结。")
    expect(approved).to_contain_text("陈伟")
    expect(clerk.locator("li[data-type='appeal.extension_approved.v1']")).to_contain_text(f"{OFFICE_NAME_ZH} · 陈伟")
    expect(clerk.locator("#extension-waiting")).to_have_count(0)
    expect(clerk.locator("#extension-used")).to_have_text("本办结时限已延期，不能再次申请。")

    def extended() -> int:
        clerk.reload()
        return clerk.locator(".deadlines .extended").count()

    until(extended, "the deadline showing its extension")
    expect(clerk.locator(".deadlines")).to_contain_text(
        f"原定 {local_input(due.isoformat()).replace('T', ' ')}，已延期"
    )
    expect(clerk.locator(".deadlines")).to_contain_text(asked.replace("T", " "))
    shot(clerk, "extension-approved-zh-desktop")
