"""The coordinating office governs in a real browser (Debian's Chromium driven by Playwright) on the running stack:
it urges an overdue appeal from its page of the city queue and the lead's clerk sees the urging on the workbench;
past its send-back window the clerk asks the office to transfer the appeal and reads the office's refusal; and the
office overrules a send-back, which the declining department then sees.

Every appeal runs on a profile whose scope clock lasts seconds (`PROFILE`), so an appeal is overdue, and its lead's
send-back window closed, within the test. Screenshots in Chinese and English are kept in build/screenshots/
(office-urge-*, workbench-urged-*, and the pages between).
"""

import re
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from playwright.sync_api import Page, expect

from tests.e2e.browser import OFFICE_NAME_ZH, act, router_appeal, shot, sign_in, submit, until
from tests.factories import lanhai_appeal
from tests.helpers import fresh_stack

pytestmark = pytest.mark.timeout(600)

# The scope clock (and with it the send-back window) runs out in seconds; the rest of the work has hours.
SCOPE_SECONDS = 8
PROFILE = {
    "description": "Browser tests of supervision: the scope clock runs out within the test.",
    "scope": f"{SCOPE_SECONDS}s",
    "response": "1h",
    "response_with_cohandlers": "1h",
    "resolution": "2h",
}


def short_scope(config: Path) -> None:
    """Every appeal on the web_supervision_test profile."""
    path = config / "sla_profiles.yaml"
    profiles = yaml.safe_load(path.read_text())
    profiles["profiles"]["web_supervision_test"] = PROFILE
    profiles["selection"] = [{"profile": "web_supervision_test"}]
    path.write_text(yaml.safe_dump(profiles))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "web-supervision-stack", configure=short_scope)
    yield s
    s.stop()


def in_english(page: Page, path: str) -> None:
    page.goto("/lang/en?next=" + quote(path))


def in_chinese(page: Page, path: str) -> None:
    page.goto("/lang/zh?next=" + quote(path))


def test_the_office_urges_an_overdue_appeal_and_answers_a_transfer_request_and_a_send_back(stack, browser):
    urged_id = submit(stack, lanhai_appeal())["appeal_id"]
    lead = until(lambda: router_appeal(stack, urged_id).get("lead"), "routing")

    # A second appeal, declined by the same lead as soon as it is routed (inside its window of seconds): a
    # send-back (退单) the office reviews.
    declined_id = submit(stack, lanhai_appeal(title="招工补贴申请无人答复"))["appeal_id"]
    assert until(lambda: router_appeal(stack, declined_id).get("lead"), "routing") == lead
    declined = act(
        stack,
        lead,
        declined_id,
        {"action": "decline", "guidance": "招工补贴请找市人社局。", "target_department": "hrss"},
    )
    assert declined["send_back"]["state"] == "pending"

    def overdue() -> bool:
        return any(d["clock"] == "scope" and d["overdue"] for d in router_appeal(stack, urged_id)["deadlines"])

    until(overdue, "the scope clock running out", timeout=SCOPE_SECONDS + 30)

    # The office finds it overdue, at the ladder's first level, and urges its lead with a comment.
    office = sign_in(browser, stack, "coord", "陈伟")
    office.locator("#nav-office").click()
    expect(office.locator("#tab-overdue")).to_have_attribute("aria-current", "page")
    office.get_by_label("督办等级（已超时的诉求）").select_option("1")
    office.get_by_role("button", name="筛选").click()
    expect(office).to_have_url(re.compile(r"urge_level=1"))
    row = office.locator(f"#row-{urged_id}")
    expect(row.locator(".badge.urge-level")).to_have_text("一级（超时）")
    row.locator("details.urge summary").click()
    form = row.locator(f"#urge-{urged_id}")
    # The comment is required before the browser even sends it.
    assert form.get_by_label("催办意见（必填）").evaluate("e => e.validity.valueMissing")
    form.get_by_label("催办意见（必填）").fill("企业已等待多时，请今天下班前答复企业并受理。")
    form.get_by_role("button", name=re.compile("^催办")).click()
    expect(office.locator("#office-done")).to_contain_text("已处理: 催办")
    row = office.locator(f"#row-{urged_id}")
    expect(row.locator(".badge.urgings")).to_have_text("已催办1次")
    shot(office, "office-urge-zh-desktop")
    entry = router_appeal(stack, urged_id)["timeline"][-1]
    assert (entry["type"], entry["actor"], entry["clerk"], entry["department"]) == (
        "appeal.urged.v1",
        "coord",
        "陈伟",
        lead,
    )
    in_english(office, "/workbench/office?urge_level=1")
    expect(office.get_by_role("heading", name="The city queue")).to_be_visible()
    expect(office.locator(f"#row-{urged_id} .badge.urgings")).to_have_text("urged 1×")
    expect(office.locator(f"#row-{urged_id} .badge.urge-level")).to_have_text("Level 1 (breached)")
    shot(office, "office-urge-en-desktop")
    in_chinese(office, "/workbench/office")

    # The lead's clerk sees the urging on its worklist and on the appeal's page, with the office's comment.
    clerk = sign_in(browser, stack, lead, "王芳")
    marker = clerk.locator(f"tr[data-appeal='{urged_id}'] .badge.urged")
    expect(marker).to_have_text("协调办公室已催办 · 已催办1次 · 一级（超时）")
    expect(clerk.locator(f"tr[data-appeal='{declined_id}']")).to_have_count(0)
    shot(clerk, "workbench-urged-zh-desktop")
    in_english(clerk, "/workbench")
    expect(clerk.locator(f"tr[data-appeal='{urged_id}'] .badge.urged")).to_have_text(
        "Urged by the office · urged 1× · Level 1 (breached)"
    )
    shot(clerk, "workbench-urged-en-desktop")
    in_chinese(clerk, f"/workbench/appeals/{urged_id}")
    expect(clerk.locator("#urged-marker")).to_contain_text("企业已等待多时，请今天下班前答复企业并受理。")
    expect(clerk.locator("#urgings li.urging")).to_have_count(1)
    expect(clerk.locator("li[data-type='appeal.urged.v1']")).to_contain_text(
        f"协调办公室催办 · {OFFICE_NAME_ZH} · 陈伟"
    )

    # Its send-back window closed with the scope clock: no decline or transfer of its own, it asks the office.
    expect(clerk.locator("#send-back-window")).to_contain_text("退单期限已于")
    expect(clerk.locator("#act-decline")).to_have_count(0)
    expect(clerk.locator("#act-transfer")).to_have_count(0)
    shot(clerk, "appeal-urged-zh-desktop")
    ask = clerk.locator("#act-request_transfer")
    ask.get_by_label("建议转至").select_option("commerce")
    ask.get_by_label("转办理由").fill("企业诉求为外贸订单用工，属商务部门职责。")
    ask.get_by_role("button", name="申请协调办公室转办").click()
    expect(clerk.locator("#transfer-waiting")).to_have_text(
        "转办申请已提交，等待协调办公室处理：建议转至深圳市商务局。"
    )
    expect(clerk.locator("#act-request_transfer")).to_have_count(0)
    shot(clerk, "transfer-requested-zh-desktop")

    # The office finds the request under its tab and refuses it with a comment.
    office.locator("#tab-transfer_requested").click()
    row = office.locator(f"#row-{urged_id}")
    expect(row.locator(".transfer-request")).to_contain_text("建议转至深圳市商务局")
    expect(row.locator(".transfer-request")).to_contain_text("王芳")
    expect(row.get_by_label("转至")).to_have_value("commerce")
    shot(office, "office-transfer-requested-zh-desktop")
    row.get_by_label("意见（不同意转办时必填）").fill("用工属人社职责，请继续办理。")
    row.get_by_role("button", name="不同意转办", exact=True).click()
    expect(office.locator("#office-done")).to_contain_text("不同意转办")
    expect(office.locator(f"#row-{urged_id}")).to_have_count(0)

    clerk.reload()
    expect(clerk.locator("#transfer-refused")).to_contain_text("协调办公室不同意转办")
    expect(clerk.locator("#transfer-refused .comment")).to_have_text("用工属人社职责，请继续办理。")
    expect(clerk.locator("#act-request_transfer")).to_have_count(1)

    # The office overrules the send-back: the appeal returns to the department that declined it.
    office.locator("#tab-sent_back").click()
    row = office.locator(f"#row-{declined_id}")
    expect(row.locator(".send-back")).to_contain_text("招工补贴请找市人社局。")
    shot(office, "office-sent-back-zh-desktop")
    row.get_by_label("审核意见（选填）").fill("企业所在区的用工问题由区人社局办理。")
    row.get_by_role("button", name="退单不成立，退回原部门", exact=True).click()
    expect(office.locator("#office-done")).to_contain_text("退单不成立，退回原部门")
    assert until(lambda: router_appeal(stack, declined_id).get("lead") == lead, "the appeal's return")

    clerk.goto("/workbench")
    clerk.locator(f"tr[data-appeal='{declined_id}'] a").click()
    expect(clerk.locator("#send-back-overruled")).to_contain_text("协调办公室认定本部门退单不成立")
    expect(clerk.locator("#send-back .comment")).to_have_text("企业所在区的用工问题由区人社局办理。")
    expect(clerk.locator("#send-back-window")).to_contain_text("不能再自行退回或转办")
    expect(clerk.locator("#act-decline")).to_have_count(0)
    shot(clerk, "send-back-overruled-zh-desktop")
