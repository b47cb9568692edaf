"""What the browser tests share: Debian's Chromium, screenshots, signing a clerk in, waiting for the stack."""

import re

import httpx
from playwright.sync_api import Browser, Page, ViewportSize, expect

from libs.settings import PROJECT_ROOT
from tests.helpers import eventually as until  # noqa: F401  (the browser tests import it from here)

SHOTS = PROJECT_ROOT / "build" / "screenshots"
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
