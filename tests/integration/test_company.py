"""The company's side of intake: status by token, information and feedback, on the real broker and database."""

import asyncio
import time

import pytest

from tests.helpers import appeal_body, read_topic
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
    from services.intake import service

    appeal_id, token, lead = await new_appeal(platform)
    assert (await act(platform, appeal_id, lead, action="resolve", resolution="Done")).status_code == 200
    await intake_status(platform, appeal_id, token, "resolved")
    runtime = platform.intake_runtime
    record = await service.find_appeal(runtime.db, appeal_id)
    first = CompanyFeedback(appeal_id=appeal_id, resolved=False, satisfaction=2, comment="Not yet")
    with pytest.raises(service.BrokerUnavailable):
        await service.answer(runtime.db, _DownBroker(), runtime.clock, record, "feedback", first, publish_timeout=1)
    record = await service.find_appeal(runtime.db, appeal_id)
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
