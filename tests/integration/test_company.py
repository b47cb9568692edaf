"""The company's side of intake: status by token, information and feedback, on the real broker and database."""

import asyncio
import base64
import hashlib
import hmac
import random
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers import appeal_body, open311_form, read_topic
from tests.integration.test_appeal_flow import act, submit, wait_status


async def intake_status(p, appeal_id, token, status, timeout=15.0):
    """Poll intake's read model (as the company sees it) until the appeal has `status`."""
    deadline = time.monotonic() + timeout
    view = None
    while time.monotonic() < deadline:
        view = (await p.intake.get(f"/v1/appeals/{appeal_id}", headers={"X-Status-Token": token})).json()
        if view.get("status") == status:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"intake never showed {appeal_id} as {status}; last seen {view}")


async def new_appeal(p):
    """Submit, wait until routed and accepted; (appeal id, status token, lead)."""
    accepted = (await submit(p, appeal_body())).json()
    appeal_id, token = accepted["appeal_id"], accepted["status_token"]
    lead = (await wait_status(p, appeal_id, "routed"))["lead"]
    assert (await act(p, appeal_id, lead, action="accept")).status_code == 200
    await intake_status(p, appeal_id, token, "accepted")
    return appeal_id, token, lead


async def test_a_status_token_opens_its_own_appeal_and_answers_for_it_only(platform):
    first, token, _ = await new_appeal(platform)
    other = (await submit(platform, appeal_body())).json()["appeal_id"]
    assert (await platform.intake.get(f"/v1/appeals/{first}", params={"token": token})).status_code == 200
    assert (await platform.intake.get(f"/v1/appeals/{other}", headers={"X-Status-Token": token})).status_code == 401
    answer = {"resolved": True, "satisfaction": 5}
    refused = await platform.intake.post(
        f"/v1/appeals/{other}/feedback", json=answer, headers={"X-Status-Token": token}
    )
    assert refused.status_code == 401, "a token cannot answer for another appeal"
    by_operator = await platform.intake.post(
        f"/v1/appeals/{first}/info", json={"information": "x"}, headers=platform.key("operator")
    )
    assert by_operator.status_code == 403, "operators read appeals but do not answer for the company"
    other_channel = await platform.intake.post(
        f"/v1/appeals/{first}/info", json={"information": "x"}, headers=platform.key("channel:web")
    )
    assert other_channel.status_code == 403


async def test_information_goes_to_the_department_once_and_the_appeal_goes_on(platform):
    appeal_id, token, lead = await new_appeal(platform)
    company = {"X-Status-Token": token}
    early = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/info", json={"information": "Contract 42"}, headers=company
    )
    assert early.status_code == 409 and "no information was requested" in early.json()["detail"]
    assert (
        await act(platform, appeal_id, lead, action="request_info", note="Send the loan contract")
    ).status_code == 200
    await intake_status(platform, appeal_id, token, "info_requested")
    blank = await platform.intake.post(f"/v1/appeals/{appeal_id}/info", json={"information": "  "}, headers=company)
    assert blank.status_code == 422 and blank.json()["errors"][0]["field"] == "information"
    sent = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/info",
        json={"information": "Contract 2026-0042", "attachments": ["https://f/a.pdf"]},
        headers=company,
    )
    assert sent.status_code == 202, sent.text
    again = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/info", json={"information": "Contract again"}, headers=company
    )
    assert again.status_code == 409 and "already sent" in again.json()["detail"]
    router_view = await wait_status(platform, appeal_id, "accepted")
    assert router_view["status"] == "accepted", "the department has the information and goes on"
    events = await read_topic(platform.bootstrap, "appeals.company.v1", lambda e: e.get("subject") == appeal_id)
    assert len(events) == 1 and events[0]["id"] == sent.json()["event_id"]
    assert events[0]["data"]["information"] == "Contract 2026-0042"
    view = await intake_status(platform, appeal_id, token, "accepted")
    assert [e["type"] for e in view["timeline"]][-2:] == ["appeal.info_requested.v1", "appeal.info_provided.v1"]


async def test_feedback_reopens_or_closes_and_is_taken_once_per_resolution(platform):
    appeal_id, token, lead = await new_appeal(platform)
    company = {"X-Status-Token": token}
    early = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/feedback", json={"resolved": True, "satisfaction": 5}, headers=company
    )
    assert early.status_code == 409 and "once the appeal is resolved" in early.json()["detail"]
    out_of_range = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/feedback", json={"resolved": True, "satisfaction": 6}, headers=company
    )
    assert out_of_range.status_code == 422 and out_of_range.json()["errors"][0]["field"] == "satisfaction"

    assert (await act(platform, appeal_id, lead, action="resolve", resolution="Loan deferred")).status_code == 200
    await intake_status(platform, appeal_id, token, "resolved")
    unhappy = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/feedback",
        json={"resolved": False, "satisfaction": 2, "comment": "Bank still asks"},
        headers=company,
    )
    assert unhappy.status_code == 202, unhappy.text
    twice = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/feedback", json={"resolved": True, "satisfaction": 5}, headers=company
    )
    assert twice.status_code == 409, "one feedback per resolution"
    reopened = await wait_status(platform, appeal_id, "reopened")
    assert reopened["lead"] == lead, "not solved goes back to the lead department"
    await intake_status(platform, appeal_id, token, "reopened")

    # A second resolution takes a second feedback; this one closes the appeal.
    assert (await act(platform, appeal_id, lead, action="accept")).status_code == 200
    assert (await act(platform, appeal_id, lead, action="resolve", resolution="Bank confirmed")).status_code == 200
    await intake_status(platform, appeal_id, token, "resolved")
    happy = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/feedback", json={"resolved": True, "satisfaction": 5}, headers=company
    )
    assert happy.status_code == 202, happy.text
    await wait_status(platform, appeal_id, "closed")
    after_close = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/feedback", json={"resolved": False, "satisfaction": 1}, headers=company
    )
    assert after_close.status_code == 409

    lifecycle = await read_topic(
        platform.bootstrap,
        "appeals.lifecycle.v1",
        lambda e: e.get("subject") == appeal_id and e["data"].get("satisfaction"),
        count=2,
    )
    assert sorted((e["type"], e["data"]["satisfaction"]) for e in lifecycle) == [
        ("appeal.confirmed.v1", 5),
        ("appeal.reopened.v1", 2),
    ], "satisfaction reaches the rates"


async def test_concurrent_feedback_is_taken_once(platform):
    appeal_id, token, lead = await new_appeal(platform)
    assert (await act(platform, appeal_id, lead, action="resolve", resolution="Done")).status_code == 200
    await intake_status(platform, appeal_id, token, "resolved")
    answers = await asyncio.gather(
        *(
            platform.intake.post(
                f"/v1/appeals/{appeal_id}/feedback",
                json={"resolved": True, "satisfaction": s},
                headers={"X-Status-Token": token},
            )
            for s in (3, 4, 5)
        )
    )
    assert sorted(r.status_code for r in answers) == [202, 409, 409]
    await wait_status(platform, appeal_id, "closed")
    events = await read_topic(platform.bootstrap, "appeals.company.v1", lambda e: e.get("subject") == appeal_id)
    assert len(events) == 1


class _DownBroker:
    """A broker that never acknowledges, as when Kafka is unreachable."""

    async def publish(self, *args, **kwargs):
        raise ConnectionError("broker unreachable")


async def test_an_unacknowledged_answer_is_finished_once_and_never_swapped(platform):
    from libs.events import CompanyFeedback
    from services.intake import read_model, service

    appeal_id, token, lead = await new_appeal(platform)
    assert (await act(platform, appeal_id, lead, action="resolve", resolution="Done")).status_code == 200
    await intake_status(platform, appeal_id, token, "resolved")
    runtime = platform.intake_runtime
    record = await read_model.find_appeal(runtime.db, appeal_id)
    first = CompanyFeedback(appeal_id=appeal_id, resolved=False, satisfaction=2, comment="Not yet")
    with pytest.raises(service.BrokerUnavailable):
        await service.answer(runtime.db, _DownBroker(), runtime.clock, record, "feedback", first, publish_timeout=1)
    record = await read_model.find_appeal(runtime.db, appeal_id)
    with_other_words = CompanyFeedback(appeal_id=appeal_id, resolved=True, satisfaction=5)
    # Right after, the first answer may still be in flight; later, different words are refused.
    for pause, refusal in ((0, "being sent right now"), (2.1, "already given")):
        await asyncio.sleep(pause)
        with pytest.raises(service.AnswerRefused, match=refusal):
            await service.answer(
                runtime.db, runtime.broker, runtime.clock, record, "feedback", with_other_words, publish_timeout=1
            )
    reopened = await wait_status(platform, appeal_id, "reopened")
    assert reopened["status"] == "reopened", "the earlier answer was finished as it was"
    events = await read_topic(platform.bootstrap, "appeals.company.v1", lambda e: e.get("subject") == appeal_id)
    assert len(events) == 1 and events[0]["data"]["satisfaction"] == 2


def _some_phone() -> str:
    return f"139{random.randrange(10**8):08d}"


def _token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def _lost_link(p, appeal_id: str, phone: str, sent_before: int) -> str:
    """Ask for the appeal's link again on its phone (as web's lost-link page does); the token of the SMS sent."""
    own_address = {"X-Client-Address": f"198.51.100.{random.randrange(1, 255)}"}  # its own budget of requests
    asked = await p.intake.post(
        f"/v1/appeals/{appeal_id}/link", json={"phone": phone}, headers={**p.key("channel:web"), **own_address}
    )
    assert asked.status_code == 202, asked.text
    messages = await read_topic(
        p.bootstrap,
        "company.messages.v1",
        lambda e: e["data"].get("appeal_id") == appeal_id,
        count=sent_before + 1,
    )
    assert len(messages) == sent_before + 1, "one SMS per request"
    return _token_of(messages[-1]["data"]["follow_url"])


async def _opens(p, appeal_id: str, token: str) -> int:
    return (await p.intake.get(f"/v1/appeals/{appeal_id}", headers={"X-Status-Token": token})).status_code


async def test_a_lost_link_request_voids_every_token_sent_before_and_the_sms_carries_the_one_that_works(platform):
    phone = _some_phone()
    body = appeal_body(contact={"name": "Li Wei", "phone": phone})
    accepted = (await submit(platform, body)).json()
    appeal_id, first = accepted["appeal_id"], accepted["status_token"]
    contacts = await read_topic(platform.bootstrap, "appeals.contacts.v1", lambda e: e.get("subject") == appeal_id)
    in_the_link = _token_of(contacts[0]["data"]["follow_url"])
    assert in_the_link == first, "the link notify sends at submission carries the token the channel got"
    assert await _opens(platform, appeal_id, first) == 200

    second = await _lost_link(platform, appeal_id, phone, sent_before=0)
    assert second != first
    assert await _opens(platform, appeal_id, second) == 200, "the new SMS's link opens the appeal"
    assert await _opens(platform, appeal_id, first) == 401, "the token given at submission is void, as a wrong one"
    assert (await platform.intake.get(f"/v1/appeals/{appeal_id}", params={"token": first})).status_code == 401
    for kind, answer in (("info", {"information": "x"}), ("feedback", {"resolved": True, "satisfaction": 5})):
        replayed = await platform.intake.post(
            f"/v1/appeals/{appeal_id}/{kind}", json=answer, headers={"X-Status-Token": first}
        )
        assert replayed.status_code == 401, f"an old token cannot answer ({kind})"
    not_the_phone = await platform.intake.post(
        f"/v1/appeals/{appeal_id}/link", json={"phone": _some_phone()}, headers=platform.key("channel:web")
    )
    assert not_the_phone.status_code == 202
    assert await _opens(platform, appeal_id, second) == 200, "another phone's request changes nothing"

    third = await _lost_link(platform, appeal_id, phone, sent_before=1)
    assert [await _opens(platform, appeal_id, t) for t in (first, second, third)] == [401, 401, 200]
    again = (await submit(platform, body)).json()
    assert again["appeal_id"] == appeal_id and again["status_token"] == third, "a retry gets the current token"
    by_key = await platform.intake.get(f"/v1/appeals/{appeal_id}", headers=platform.key("channel:wechat"))
    assert by_key.status_code == 200, "the channel's key still opens it"


async def test_an_appeal_stored_before_token_versions_keeps_its_links_until_the_first_lost_link_request(platform):
    from services.intake import service

    phone = _some_phone()
    appeal_id = (await submit(platform, appeal_body(contact={"name": "Li Wei", "phone": phone}))).json()["appeal_id"]
    appeals = platform.intake_runtime.db.appeals
    await appeals.update_one({"_id": appeal_id}, {"$unset": {"token_version": ""}})  # as intake wrote it before
    # The token of the time: the HMAC of the appeal id alone.
    secret = platform.intake_runtime.settings.status_token_secret
    digest = hmac.new(secret.encode(), appeal_id.encode(), hashlib.sha256).digest()
    old = base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")
    assert await _opens(platform, appeal_id, old) == 200, "a link sent before versions keeps working"

    new = await _lost_link(platform, appeal_id, phone, sent_before=0)
    assert new == service.status_token(secret, appeal_id, version=1)
    assert (await _opens(platform, appeal_id, old), await _opens(platform, appeal_id, new)) == (401, 200)


async def test_open311_gives_the_current_token_and_a_token_opens_no_appeal_it_was_not_made_for(platform):
    phone = _some_phone()
    form = open311_form(random.randrange(10**6), phone=phone, api_key=platform.keys["channel:hotline_12345"])
    created = await platform.intake.post("/open311/v2/requests.json", data=form)
    assert created.status_code == 201, created.text
    appeal_id, first = created.json()[0]["service_request_id"], created.json()[0]["status_token"]
    assert await _opens(platform, appeal_id, first) == 200
    current = await _lost_link(platform, appeal_id, phone, sent_before=0)
    again = await platform.intake.post("/open311/v2/requests.json", data=form)
    assert again.json()[0]["service_request_id"] == appeal_id
    assert again.json()[0]["status_token"] == current != first, "the same post, the token of now"
    assert await _opens(platform, appeal_id, first) == 401
    assert await _opens(platform, "01JNOSUCHAPPEAL00000000000", current) == 401, "no appeal: the same 401"


async def test_the_web_page_of_an_appeal_refuses_a_link_sent_before_and_opens_with_the_new_one(platform, demo_keys):
    from services.web.app import create_app as create_web
    from services.web.i18n import t
    from services.web.settings import WebSettings

    keys, key_file = demo_keys
    web_settings = WebSettings(
        environment="test",
        api_keys_file=key_file,
        intake_url="http://intake",
        channel_key=keys["channel:web"],
        session_secret="company-test-web-session-secret-0123456789",
    )
    web_app = create_web(web_settings)
    web_app.state.runtime.upstream.http = platform.intake  # web calls the intake of the platform (its lifespan unrun)
    phone = _some_phone()
    body = appeal_body(contact={"name": "Li Wei", "phone": phone})
    accepted = (await submit(platform, body, channel="web")).json()
    appeal_id, first = accepted["appeal_id"], accepted["status_token"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(web_app), base_url="http://web") as browser:
        opened = await browser.get(f"/appeals/{appeal_id}", params={"token": first})
        assert opened.status_code == 303, "the token moves into a cookie"
        page = await browser.get(f"/appeals/{appeal_id}")
        assert page.status_code == 200 and body["title"] in page.text

        second = await _lost_link(platform, appeal_id, phone, sent_before=0)
        stale = await browser.get(f"/appeals/{appeal_id}")
        assert stale.status_code == 403 and body["title"] not in stale.text, "the cookie of the old link opens nothing"
        assert t("zh", "wrong_link") in stale.text
        for old_link in ({"token": first}, {}):
            await browser.get(f"/appeals/{appeal_id}", params=old_link)
            assert (await browser.get(f"/appeals/{appeal_id}")).status_code == 403

        assert (await browser.get(f"/appeals/{appeal_id}", params={"token": second})).status_code == 303
        again = await browser.get(f"/appeals/{appeal_id}")
        assert again.status_code == 200 and body["title"] in again.text, "the new SMS's link opens the page"
