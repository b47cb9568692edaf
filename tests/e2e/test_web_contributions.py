"""A co-handler's contribution (协办意见) in a real browser (Debian's Chromium driven by Playwright) on the running
stack: the lead's clerk adds a co-handler on the workbench, the co-handler's clerk finds its part due on its worklist
and sends it with a link (a plain-http link refused first, beside the form), and the lead's clerk reads it with the
co-handler's clock met.

Screenshots of the lead's page in Chinese and English (contribution-zh-desktop, contribution-en-desktop) and of the
co-handler's (contribution-cohandler-zh-desktop) are kept in build/screenshots/.
"""

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from services.web.extensions import local_input
from tests.e2e.browser import router_appeal, shot, sign_in, submit, until
from tests.factories import lanhai_appeal

pytestmark = pytest.mark.timeout(600)

COHANDLER = "commerce"
LINK = "https://files.example.org/commerce/稳岗补贴申请指引.pdf?v=2&lang=zh"


@pytest.fixture(scope="module")
def stack(web_stack):
    return web_stack


def contribution_clock(stack, appeal_id: str) -> dict | None:
    """The co-handler's contribution clock, once router has heard it from sla."""
    found = [
        d
        for d in router_appeal(stack, appeal_id).get("deadlines", [])
        if d["clock"] == "contribution" and d["department"] == COHANDLER
    ]
    return found[-1] if found else None


def test_the_lead_adds_a_co_handler_whose_clerk_contributes_with_a_link_and_the_lead_reads_it(stack, browser):
    appeal_id = submit(
        stack,
        lanhai_appeal(
            title="外贸订单用工短缺", description="外贸订单增加，节后员工无法返岗，希望协助招工并了解稳岗补贴。"
        ),
    )["appeal_id"]
    lead = until(lambda: router_appeal(stack, appeal_id).get("lead"), "routing")
    assert lead != COHANDLER

    # The lead's clerk adds commerce as a co-handler.
    clerk = sign_in(browser, stack, lead, "王芳")
    clerk.goto(f"/workbench/appeals/{appeal_id}")
    adding = clerk.locator("#act-add_cohandler")
    adding.locator("select").select_option(COHANDLER)
    adding.get_by_role("button", name="增加协办部门").click()
    expect(clerk.locator(".notice.success")).to_contain_text("已完成: 增加协办部门")
    clock = until(lambda: contribution_clock(stack, appeal_id), "sla starting the co-handler's contribution clock")
    assert clock["state"] == "running" and clock["due_at"]
    due = local_input(clock["due_at"]).replace("T", " ")
    clerk.reload()
    expect(clerk.locator("#contribution-clocks li[data-department='commerce']")).to_have_attribute(
        "data-state", "running"
    )
    expect(clerk.locator("#no-contributions")).to_have_text("尚无协办意见。")

    # The co-handler's clerk finds its part due on its worklist, and its own deadline on the appeal's page.
    co = sign_in(browser, stack, COHANDLER, "刘洋")
    row = co.locator(f"tr[data-appeal='{appeal_id}']")
    expect(row.locator(".contribution-due")).to_have_text(f"协办意见截止 {due}")
    row.locator("a").first.click()
    expect(co.locator("#contribution-clock")).to_contain_text(f"本部门协办意见时限: 计时中 · {due}")
    expect(co.locator("#act-decline")).to_have_count(0)
    form = co.locator("#act-contribute")
    note = "外贸订单用工可申请稳岗补贴；商务局可协调下周的外贸企业专场招聘会。"
    form.get_by_label("本部门协办意见").fill(note)
    form.get_by_label(re.compile("附件链接")).fill(f"{LINK}\nhttp://files.example.org/plain.pdf")
    form.get_by_role("button", name="提交协办意见").click()
    # A plain-http link is refused beside the form before anything is sent, with what was typed kept.
    expect(co.locator("#contribution-links-error")).to_have_text(
        "第2行不是有效的https链接：http://files.example.org/plain.pdf"
    )
    expect(co.locator("#contribution-note")).to_have_value(note)
    assert router_appeal(stack, appeal_id).get("contributions", []) == []
    co.locator("#contribution-links").fill(LINK)
    co.locator("#act-contribute").get_by_role("button", name="提交协办意见").click()
    expect(co.locator(".notice.success")).to_contain_text("已完成: 提交协办意见")
    expect(co.locator("#contributions li.contribution")).to_have_count(1)
    expect(co.locator("#contributions li.contribution .note")).to_have_text(note)

    stored = router_appeal(stack, appeal_id)
    [part] = stored["contributions"]
    assert (part["department"], part["clerk"], part["note"], part["attachments"]) == (COHANDLER, "刘洋", note, [LINK])
    entry = stored["timeline"][-1]
    assert (entry["type"], entry["actor"], entry["attachments"]) == ("appeal.contributed.v1", COHANDLER, [LINK])

    # The part meets the co-handler's clock (once sla has said so); its row no longer asks for it.
    until(lambda: (contribution_clock(stack, appeal_id) or {}).get("state") == "met", "sla meeting the clock")
    co.goto(f"/workbench/appeals/{appeal_id}")
    expect(co.locator("#contribution-clock")).to_contain_text(f"本部门协办意见时限: 按时完成 · {due}")
    shot(co, "contribution-cohandler-zh-desktop")
    co.goto("/workbench?status=routed")
    expect(co.locator(f"tr[data-appeal='{appeal_id}']")).to_have_count(1)
    expect(co.locator(f"tr[data-appeal='{appeal_id}'] .contribution-due")).to_have_count(0)

    # The lead's clerk reads the part, its link safe to open, and the co-handler's clock met.
    clerk.goto(f"/workbench/appeals/{appeal_id}")
    expect(clerk.locator("#contribution-clocks li[data-department='commerce']")).to_have_attribute("data-state", "met")
    expect(clerk.locator("#contribution-clocks li[data-department='commerce']")).to_contain_text(
        "深圳市商务局 · 按时完成"
    )
    shown = clerk.locator("#contributions li.contribution")
    expect(shown).to_have_count(1)
    expect(shown.locator(".who")).to_contain_text("深圳市商务局 · 刘洋 · 提交于")
    expect(shown.locator(".note")).to_have_text(note)
    link = shown.get_by_role("link", name=LINK)
    expect(link).to_have_attribute("href", LINK)
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    entry_shown = clerk.locator("li[data-type='appeal.contributed.v1']")
    expect(entry_shown).to_contain_text("协办部门提交意见 · 深圳市商务局 · 刘洋")
    expect(clerk.locator("#act-contribute")).to_have_count(0)
    clerk.locator("#contribution").scroll_into_view_if_needed()
    shot(clerk, "contribution-zh-desktop")

    clerk.goto("/lang/en?next=" + quote(f"/workbench/appeals/{appeal_id}"))
    expect(clerk.get_by_role("heading", name="Contributions")).to_be_visible()
    expect(clerk.locator("#contribution-clocks li[data-department='commerce']")).to_contain_text(
        "Shenzhen Municipal Commerce Bureau · met"
    )
    expect(clerk.locator("li[data-type='appeal.contributed.v1']")).to_contain_text("A co-handler contributed")
    expect(clerk.locator("#contributions").get_by_role("link", name=LINK)).to_have_attribute(
        "rel", "noopener noreferrer"
    )
    shot(clerk, "contribution-en-desktop")
