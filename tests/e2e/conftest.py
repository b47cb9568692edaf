"""What the browser tests share: one stack for those of the default configuration (test_web*.py), and Debian's
Chromium (a browser download fails here)."""

import shutil

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers import fresh_stack


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "web-stack")
    yield s
    s.stop()


# Per module: Playwright's synchronous API keeps an event loop running while it is open, and the tests after
# the browser tests call asyncio.run().
@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by `make system-deps`"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()
