"""Web's own rules: sealed sessions and their two clocks, CSRF tokens, time left in words, a service that is down."""

import time

import httpx
import pytest

from devstack import servers
from services.web.app import create_app
from services.web.i18n import time_left
from services.web.session import Clerk, Sealer
from services.web.settings import WebSettings

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
