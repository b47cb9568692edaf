"""Limits that hold, on the real broker and database, over real HTTP servers.

One-time codes under concurrent checks; the client address is a trusted proxy's word only (intake
and web served by uvicorn exactly as `libs.app.serve` configures it); the portal's channel_ref is web's,
bound to the browser, and a replayed one opens no other appeal; the workbench takes department keys only.
"""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from devstack import servers
from libs.app import serve
from libs.ids import new_id
from libs.settings import ServiceSettings
from services.intake import codes
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from services.web.app import create_app as create_web
from services.web.session import Clerk, Sealer
from services.web.settings import WebSettings
from tests.helpers import MovableClock, appeal_body, valid_uscc

CODES_PER_ADDRESS = 3  # per hour, so that a test reaches the limit in a few requests
SESSION_SECRET = "limits-test-session-secret-0123456789"
TRUSTED = "127.0.0.1"  # the tests' own address, standing for the HTTPS proxy in front of a service


def served_options(app: FastAPI, settings: ServiceSettings) -> dict[str, Any]:
    """The uvicorn options `libs.app.serve` runs a service with."""
    captured: dict[str, Any] = {}
    run = uvicorn.run
    uvicorn.run = lambda _app, **options: captured.update(options)  # type: ignore[assignment]
    try:
        serve(app, settings)
    finally:
        uvicorn.run = run
    return captured


class Served:
    """An app served by uvicorn as `serve` configures it, on a free port; its lifespan is run by the test."""

    def __init__(self, app: FastAPI, settings: ServiceSettings) -> None:
        options = {**served_options(app, settings), "port": servers.free_port(), "lifespan": "off"}
        options.pop("loop")  # the test's own event loop runs it
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.url = f"http://127.0.0.1:{options['port']}"
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Served":
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), "the server did not start"
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task


@dataclass
class Limits:
    keys: dict[str, str]
    intake: Any  # intake's runtime
    intake_direct: str  # intake trusting no proxy
    intake_behind_proxy: str  # intake trusting 127.0.0.1 as its proxy
    web_direct: str
    web_behind_proxy: str
    sealer: Sealer

    def key(self, scope: str) -> dict[str, str]:
        return {"X-Api-Key": self.keys[scope]}


@pytest.fixture(scope="module")
async def limits(real_servers, demo_keys) -> AsyncIterator[Limits]:
    keys, key_file = demo_keys
    run = new_id().lower()
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": real_servers.bootstrap,
        "mongodb_uri": real_servers.mongodb_uri,
        "api_keys_file": key_file,
        "environment": "test",
    }
    intake_settings = IntakeSettings(
        **common,
        mongodb_database=f"intake_limits_{run}",
        consumer_group=f"intake-limits-{run}",
        status_token_secret="limits-test-status-token-secret-0123456789",
        codes_per_address_per_hour=CODES_PER_ADDRESS,
        submissions_per_address_per_hour=100,
    )
    router_settings = RouterSettings(
        **common, mongodb_database=f"router_limits_{run}", consumer_group=f"router-limits-{run}"
    )
    intake_app = create_intake(intake_settings)
    router_app = create_router(router_settings, clock=MovableClock())
    async with (
        LifespanManager(intake_app, startup_timeout=60),
        LifespanManager(router_app, startup_timeout=60),
        Served(intake_app, intake_settings) as intake_direct,
        Served(intake_app, intake_settings.model_copy(update={"forwarded_allow_ips": TRUSTED})) as intake_proxied,
        Served(router_app, router_settings) as router,
    ):
        web_settings = WebSettings(
            **common,
            intake_url=intake_direct.url,
            router_url=router.url,
            channel_key=keys["channel:web"],
            session_secret=SESSION_SECRET,
        )
        web_app = create_web(web_settings)
        async with (
            LifespanManager(web_app),
            Served(web_app, web_settings) as web_direct,
            Served(web_app, web_settings.model_copy(update={"forwarded_allow_ips": TRUSTED})) as web_proxied,
        ):
            yield Limits(
                keys,
                intake_app.state.runtime,
                intake_direct.url,
                intake_proxied.url,
                web_direct.url,
                web_proxied.url,
                Sealer(SESSION_SECRET),
            )


@pytest.fixture
async def fresh_limits(limits: Limits) -> Limits:
    """Every test starts with no request counted: they share one address, 127.0.0.1."""
    await limits.intake.db.limits.delete_many({})
    return limits


def new_phone() -> str:
    return f"139{time.time_ns() % 100_000_000:08d}"


# One-time codes, on the real database.


@pytest.fixture(scope="module")
async def racers(real_servers) -> AsyncIterator[list[Any]]:
    """Fifty clients of one database, each with its connection open: fifty checks are at the server at once.

    One client's pool opens its connections as it goes, which lines concurrent checks up one after the other.
    """
    name = f"codes_{new_id().lower()}"
    clients = [AsyncMongoClient(real_servers.mongodb_uri) for _ in range(50)]
    databases = [client[name] for client in clients]
    await asyncio.gather(*(db.command("ping") for db in databases))
    yield databases
    for client in clients:
        await client.close()


async def test_ten_concurrent_checks_of_the_right_code_verify_once(racers):
    for _ in range(3):
        now, phone = datetime.now(UTC), new_phone()
        _, code, _ = await codes.issue(racers[0], "secret", phone, now)
        results = await asyncio.gather(*(codes.check(db, "secret", phone, code, now) for db in racers[:10]))
        assert sorted(results) == [False] * 9 + [True]
        assert not await codes.check(racers[0], "secret", phone, code, now), "used up"


async def test_fifty_concurrent_wrong_checks_void_the_code(racers):
    now, phone = datetime.now(UTC), new_phone()
    key, code, _ = await codes.issue(racers[0], "secret", phone, now)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    results = await asyncio.gather(*(codes.check(db, "secret", phone, wrong, now) for db in racers))
    assert not any(results)
    assert (await racers[0].codes.find_one({"_id": key}))["tries"] == codes.MAX_TRIES, "counted up to five, no more"
    assert not await codes.check(racers[0], "secret", phone, code, now), "after five wrong tries the right code fails"


async def test_fifty_concurrent_guesses_are_five_tries_not_fifty(racers):
    verified = 0
    for _ in range(5):
        now, phone = datetime.now(UTC), new_phone()
        _, code, _ = await codes.issue(racers[0], "secret", phone, now)
        guesses = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(49, -1, -1)]  # the right one last
        checks = [codes.check(db, "secret", phone, g, now) for db, g in zip(racers, guesses, strict=True)]
        results = await asyncio.gather(*checks)
        assert sum(results) <= 1
        verified += sum(results)
    # Only the first five checks to reach the server are compared at all; the right guess came fiftieth.
    assert verified <= 1, f"the fiftieth guess verified {verified} times in 5 rounds"


async def test_an_expired_code_neither_verifies_nor_counts(racers):
    then, phone = datetime.now(UTC), new_phone()
    key, code, _ = await codes.issue(racers[0], "secret", phone, then)
    later = then + codes.CODE_TTL + timedelta(seconds=1)
    assert not await codes.check(racers[0], "secret", phone, code, later)
    assert (await racers[0].codes.find_one({"_id": key}))["tries"] == 0


# Client addresses: X-Forwarded-For counts only from a trusted proxy.


async def ask_code(url: str, limits: Limits, phone: str, **headers: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.post(
            "/v1/verifications", json={"phone": phone}, headers={**limits.key("channel:web"), **headers}
        )
        return r.status_code


async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(fresh_limits):
    answers = [
        await ask_code(fresh_limits.intake_direct, fresh_limits, new_phone(), **{"X-Forwarded-For": f"203.0.113.{n}"})
        for n in range(CODES_PER_ADDRESS + 1)
    ]
    assert answers == [202] * CODES_PER_ADDRESS + [429], "every request counted against the real peer"


async def test_a_forwarded_address_from_a_trusted_proxy_is_used(fresh_limits):
    url = fresh_limits.intake_behind_proxy
    spread = [
        await ask_code(url, fresh_limits, new_phone(), **{"X-Forwarded-For": f"198.51.100.7, 203.0.113.{n}"})
        for n in range(CODES_PER_ADDRESS + 1)
    ]
    assert spread == [202] * (CODES_PER_ADDRESS + 1), "each visitor the proxy names has a budget of its own"
    # The proxy appends the address it saw; what the visitor wrote before it (198.51.100.7) is never used.
    one = [
        await ask_code(url, fresh_limits, new_phone(), **{"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.50"})
        for n in range(CODES_PER_ADDRESS + 1)
    ]
    assert one == [202] * CODES_PER_ADDRESS + [429]


async def test_an_address_checks_only_as_many_codes_as_its_codes_have_tries(fresh_limits):
    budget = CODES_PER_ADDRESS * codes.MAX_TRIES
    async with httpx.AsyncClient(base_url=fresh_limits.intake_direct, timeout=30) as client:

        async def check(phone: str) -> int:
            body = {"phone": phone, "code": "000000"}
            r = await client.post("/v1/verifications/check", json=body, headers=fresh_limits.key("channel:web"))
            return r.status_code

        answers = [await check(new_phone()) for _ in range(budget + 1)]
        assert answers == [200] * budget + [429], "guesses on many phones' codes from one address are limited too"
        other = {**fresh_limits.key("channel:web"), "X-Client-Address": "2001:db8:7:7::1"}
        r = await client.post("/v1/verifications/check", json={"phone": new_phone(), "code": "000000"}, headers=other)
        assert r.status_code == 200, "another visitor of the public form still checks"
        bad = {**fresh_limits.key("channel:web"), "X-Client-Address": "somewhere"}
        r = await client.post("/v1/verifications/check", json={"phone": new_phone(), "code": "000000"}, headers=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "x-client-address"


@asynccontextmanager
async def portal(url: str, proven: str | None = None) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser on the portal's form: its client (cookies kept) and the form's CSRF token; with `proven`, that
    phone is proven in it (the sealed cookie a right code leaves)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        form = await client.get("/appeals/new")
        assert form.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        if proven:
            client.cookies.set("verified", Sealer(SESSION_SECRET).seal_value({"phone": proven}), path="/appeals")
        yield client, csrf.group(1)


async def portal_codes(url: str, forwarded: list[str]) -> list[int]:
    async with portal(url) as (client, csrf):
        answers = []
        for address in forwarded:
            form = {"csrf": csrf, "contact.phone": new_phone()}
            r = await client.post("/appeals/code", data=form, headers={"X-Forwarded-For": address})
            answers.append(r.status_code)
        return answers


async def test_web_tells_intake_the_visitor_s_address_only_as_its_trusted_proxy_gave_it(fresh_limits):
    spoofed = [f"203.0.113.{n}" for n in range(CODES_PER_ADDRESS + 1)]
    direct = await portal_codes(fresh_limits.web_direct, spoofed)
    assert direct == [200] * CODES_PER_ADDRESS + [429], "a visitor's X-Forwarded-For picks no address"
    await fresh_limits.intake.db.limits.delete_many({})
    proxied = await portal_codes(fresh_limits.web_behind_proxy, spoofed)
    assert proxied == [200] * (CODES_PER_ADDRESS + 1), "behind its proxy, each visitor counts alone"
    same = await portal_codes(fresh_limits.web_behind_proxy, ["203.0.113.99"] * (CODES_PER_ADDRESS + 1))
    assert same == [200] * CODES_PER_ADDRESS + [429]


async def test_cookies_are_secure_only_when_a_trusted_proxy_says_https(limits):
    for url, secure in ((limits.web_direct, False), (limits.web_behind_proxy, True)):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            r = await client.get("/appeals/new", headers={"X-Forwarded-Proto": "https"})
            cookies = r.headers.get_list("set-cookie")
            assert cookies and all(("; secure" in c.lower()) is secure for c in cookies), (url, cookies)


# The portal's channel_ref.


async def test_a_channel_ref_used_with_another_body_gets_409_and_no_token(limits):
    async with httpx.AsyncClient(base_url=limits.intake_direct, timeout=30) as intake:
        first = appeal_body()
        accepted = await intake.post("/v1/appeals", json=first, headers=limits.key("channel:web"))
        assert accepted.status_code == 202, accepted.text
        replay = appeal_body(channel_ref=first["channel_ref"], title="Mine now")
        refused = await intake.post("/v1/appeals", json=replay, headers=limits.key("channel:web"))
        assert refused.status_code == 409, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["channel_ref"]
        assert "status_token" not in refused.text and accepted.json()["appeal_id"] not in refused.text
        retry = {**first, "contact": {**first["contact"], "phone": "+86 138 0013 8000"}}  # the same phone
        again = await intake.post("/v1/appeals", json=retry, headers=limits.key("channel:web"))
        assert again.status_code == 202 and again.json() == accepted.json(), "a retry of the same body is idempotent"


def portal_form(csrf: str, phone: str, **fields: str) -> dict[str, str]:
    return {
        "csrf": csrf,
        "enterprise.uscc": valid_uscc(),
        "enterprise.name": "深圳市蓝海网络科技有限公司",
        "enterprise.employees": "25",
        "enterprise.industry": "互联网服务",
        "enterprise.district": "nanshan",
        "contact.name": "李伟",
        "contact.phone": phone,
        "category": "tax",
        "title": "增值税留抵退税咨询",
        "description": "想了解留抵退税政策是否适用。",
        "consent": "yes",
        **fields,
    }


def appeal_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/appeals/([0-9A-Z]{26})\?new=1", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


async def test_a_replayed_portal_ref_opens_no_other_appeal_and_plants_none(fresh_limits):
    phone = new_phone()
    async with (
        portal(fresh_limits.web_direct, proven=phone) as (victim, victim_csrf),
        portal(fresh_limits.web_direct, proven=phone) as (attacker, attacker_csrf),
    ):
        form = portal_form(victim_csrf, phone)
        victims = appeal_of(await victim.post("/appeals/new", data=form))
        token = victim.cookies.get(f"appeal_{victims}")
        stored = await fresh_limits.intake.db.appeals.find_one({"_id": victims})
        assert stored["channel_ref"].startswith("web-")

        # The same body with the victim's ref, and another body with it: each a new appeal of the attacker's own.
        same = {**form, "csrf": attacker_csrf, "channel_ref": stored["channel_ref"]}
        other = {**same, "title": "转让给我"}
        for replay in (same, other):
            mine = appeal_of(await attacker.post("/appeals/new", data=replay))
            assert mine != victims
            assert token not in {c.value for c in attacker.cookies.jar}, "the victim's token never reaches another"

        # A ref named in a form is never used, so nobody can take one before the browser that would use it.
        planted = f"web-{new_id()}"
        appeal_of(await attacker.post("/appeals/new", data={**other, "title": "抢先", "channel_ref": planted}))
        assert await fresh_limits.intake.db.appeals.find_one({"channel_ref": planted}) is None


async def test_the_same_portal_form_sent_twice_is_one_appeal_and_another_form_a_new_one(fresh_limits):
    phone = new_phone()
    async with portal(fresh_limits.web_direct, proven=phone) as (client, csrf):
        form = portal_form(csrf, phone)
        twice = [appeal_of(await client.post("/appeals/new", data=form)) for _ in range(2)]
        assert twice[0] == twice[1], "a double click or a reload of the answer makes one appeal"
        another = appeal_of(await client.post("/appeals/new", data={**form, "title": "第二件事"}))
        assert another != twice[0]


# The workbench.


async def sign_in(limits: Limits, key: str, department: str = "nanshan-finance") -> httpx.Response:
    async with httpx.AsyncClient(base_url=limits.web_direct, timeout=30) as client:
        page = await client.get("/workbench")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        form = {"csrf": csrf.group(1), "name": "王芳", "department": department, "key": key}
        return await client.post("/workbench/sign-in", data=form)


async def test_the_workbench_signs_in_with_a_department_s_key_only(limits):
    for scope in ("operator", "admin", "channel:web"):
        refused = await sign_in(limits, limits.keys[scope])
        assert refused.status_code == 403, scope
        assert "工作台只能用部门密钥登录" in refused.text and "clerk" not in refused.cookies, scope
    other = await sign_in(limits, limits.keys["department:commerce"])
    assert other.status_code == 403 and "该密钥不能登录此部门" in other.text
    signed_in = await sign_in(limits, limits.keys["department:nanshan-finance"])
    assert signed_in.status_code == 303 and "clerk" in signed_in.cookies


async def test_a_session_an_operator_key_opened_earlier_is_no_session(limits):
    clerk = Clerk(name="王芳", department="nanshan-finance", key=limits.keys["operator"], signed_in=time.time())
    async with httpx.AsyncClient(base_url=limits.web_direct, timeout=30) as client:
        client.cookies.set("clerk", limits.sealer.seal(clerk), path="/workbench")
        page = await client.get("/workbench")
        assert page.status_code == 200 and 'name="key"' in page.text, "the sign-in form, not the worklist"
