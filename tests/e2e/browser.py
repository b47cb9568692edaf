"""What the browser tests share: Debian's Chromium, screenshots, signing a clerk in, submitting an appeal and acting
on it through the stack's APIs, waiting for the stack."""

import re

import httpx
from playwright.sync_api import Browser, Page, ViewportSize, expect

from libs.settings import PROJECT_ROOT
from tests.helpers import eventually as until  # noqa: F401  (the browser tests import it from here)

SHOTS = PROJECT_ROOT / "build" / "screenshots"
OFFICE_NAME_ZH = "深圳市企业服务协调办公室（12345热线）"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


def shot(page: Page, name: str) -> None:
    """A full-page screenshot in build/screenshots/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def router_appeal(stack, appeal_id: str) -> dict:
    """The appeal as router holds it, read with the operator's key."""
    headers = {"X-Api-Key": stack.keys["operator"]}
    return httpx.get(stack.url("router") + f"/v1/appeals/{appeal_id}", headers=headers, timeout=30).json()


def submit(stack, body: dict) -> dict:
    """`body` posted to intake as the web channel posts an appeal: intake's 202 answer (appeal id, status token)."""
    answer = httpx.post(
        stack.url("intake") + "/v1/appeals", json=body, headers={"X-Api-Key": stack.keys["channel:web"]}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def act(stack, department: str, appeal_id: str, body: dict) -> dict:
    """A department's action on router, as its clerk (王芳 unless named) would take it: the appeal it leaves."""
    answer = httpx.post(
        stack.url("router") + f"/v1/appeals/{appeal_id}/actions",
        json={"clerk": "王芳", **body},
        headers={"X-Api-Key": stack.keys[f"department:{department}"]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def sign_in(browser: Browser, stack, department: str, name: str, viewport: ViewportSize = DESKTOP) -> Page:
    """A clerk of `department` signed in to the workbench (in Chinese, the default)."""
    page = browser.new_context(base_url=stack.url("web"), viewport=viewport).new_page()
    page.goto("/workbench")
    page.get_by_label("您的姓名").fill(name)
    page.get_by_label("部门", exact=True).select_option(department)
    page.get_by_label("部门密钥").fill(stack.keys[f"department:{department}"])
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name=re.compile("待办诉求"))).to_be_visible()
    return page
