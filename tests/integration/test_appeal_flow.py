"""Appeals from submission to closure, on the real broker and database."""

import asyncio
import json
import time
from datetime import datetime, timedelta

import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from libs import outbox
from libs.contract import (
    APPEALS_ACTIONS,
    APPEALS_COMPANY,
    APPEALS_SUBMITTED,
    APPEALS_SUBMITTED_V2,
    SLA_EVENTS,
    SLA_EVENTS_V2,
    dead_letter_topic,
    department_actions_topic,
    department_topic,
    parse_event,
)
from libs.events import CompanyInfoProvided, Contact, DepartmentAction, SlaClockChanged
from libs.ids import new_id
from libs.kafka.publishing import encode, make_event, publish
from libs.kafka.topics import ensure_topics
from libs.kinds import ClockKind, ClockState, EventType
from services.intake import service as intake_service
from services.intake.app import create_app as create_intake
from services.intake.models import AppealIn
from services.router import service as router_service
from tests.helpers import appeal_body, packed, read_topic


async def submit(p, body, channel="wechat"):
    return await p.intake.post("/v1/appeals", json=body, headers=p.key(f"channel:{channel}"))


async def wait_status(p, appeal_id, status, timeout=15.0):
    """Poll the router until the appeal has `status`; returns the appeal."""
    deadline = time.monotonic() + timeout
    doc = None
    while time.monotonic() < deadline:
        r = await p.router.get(f"/v1/appeals/{appeal_id}", headers=p.key("operator"))
        if r.status_code == 200:
            doc = r.json()
            if doc["status"] == status:
                return doc
        await asyncio.sleep(0.1)
    raise AssertionError(f"appeal {appeal_id} never reached {status}; last seen {doc}")


async def worklist(p, department, **params) -> list[str]:
    """The ids in a department's worklist, read with its own key."""
    r = await p.router.get(
        f"/v1/departments/{department}/appeals",
        params={"limit": 500, **params},
        headers=p.key(f"department:{department}"),
    )
    assert r.status_code == 200, r.text
    return [a["appeal_id"] for a in r.json()]


async def act(p, appeal_id, department, **body):
    return await p.router.post(f"/v1/appeals/{appeal_id}/actions", json=body, headers=p.key(f"department:{department}"))


async def test_submission_reaches_the_lead_department_topic(platform):
    body = appeal_body(description="Loan falls due; we ask for deferred repayment of principal and interest.")
    r = await submit(platform, body)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["status"] == "submitted" and accepted["status_token"]
    again = await submit(platform, body)
    assert again.status_code == 202 and again.json()["appeal_id"] == accepted["appeal_id"]

    doc = await wait_status(platform, accepted["appeal_id"], "routed")
    assert doc["lead"] == "nanshan-finance"
    events = await read_topic(
        platform.bootstrap, department_topic("nanshan-finance"), lambda e: e.get("subject") == accepted["appeal_id"]
    )
    assert len(events) == 1, "one appeal, one assignment, even though it was posted twice"
    event = events[0]
    assert event["type"] == "assignment.created.v1" and event["specversion"] == "1.0"
    data = event["data"]
    assert data["role"] == "lead" and data["rule_id"] and data["sla_profile"]
    assert "deferred-repayment" in {p["id"] for p in data["policies"]}
    assert data["appeal"]["title"] == body["title"]


async def test_cohandlers_get_their_own_assignment(platform):
    body = appeal_body(category="export", description="Our goods are stuck in customs clearance at the port.")
    appeal_id = (await submit(platform, body)).json()["appeal_id"]
    doc = await wait_status(platform, appeal_id, "routed")
    assert doc["cohandlers"], "export with customs trouble is co-handled"
    co = doc["cohandlers"][0]
    events = await read_topic(platform.bootstrap, department_topic(co), lambda e: e.get("subject") == appeal_id)
    assert events[0]["data"]["role"] == "cohandler" and events[0]["data"]["lead_department"] == doc["lead"]
    assert (await act(platform, appeal_id, co, action="accept")).status_code == 403


async def test_status_read_model_follows_the_lifecycle(platform):
    r = await submit(platform, appeal_body())
    appeal_id, token = r.json()["appeal_id"], r.json()["status_token"]
    doc = await wait_status(platform, appeal_id, "routed")
    lead = doc["lead"]
    assert (await act(platform, appeal_id, lead, action="accept", note="calling the bank")).status_code == 200
    assert (
        await act(
            platform,
            appeal_id,
            lead,
            action="resolve",
            resolution="Repayment deferred 6 months",
            policy_refs=["deferred-repayment"],
        )
    ).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = (await platform.intake.get(f"/v1/appeals/{appeal_id}", headers={"X-Status-Token": token})).json()
        if view["status"] == "resolved":
            break
        await asyncio.sleep(0.1)
    assert view["status"] == "resolved" and view["resolution"] == "Repayment deferred 6 months"
    assert [e["type"] for e in view["timeline"]] == ["appeal.routed.v1", "appeal.accepted.v1", "appeal.resolved.v1"]
    other = await submit(platform, appeal_body())
    refused = await platform.intake.get(f"/v1/appeals/{other.json()['appeal_id']}", headers={"X-Status-Token": token})
    assert refused.status_code == 401, "a status token opens only its own appeal"
    wrong_channel = await platform.intake.get(f"/v1/appeals/{appeal_id}", headers=platform.key("channel:web"))
    assert wrong_channel.status_code == 403


async def test_forbidden_transitions_and_scope(platform):
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    lead = (await wait_status(platform, appeal_id, "routed"))["lead"]
    resolve_early = await act(platform, appeal_id, lead, action="resolve", resolution="done")
    assert resolve_early.status_code == 409 and resolve_early.headers["content-type"] == "application/problem+json"
    assert (await act(platform, appeal_id, "tax", action="accept")).status_code == 403
    no_guidance = await act(platform, appeal_id, lead, action="decline")
    assert no_guidance.status_code == 422 and "guidance" in no_guidance.json()["detail"]
    no_key = await platform.router.post(f"/v1/appeals/{appeal_id}/actions", json={"action": "accept"})
    assert no_key.status_code == 401
    channel_key = await platform.router.post(
        f"/v1/appeals/{appeal_id}/actions", json={"action": "accept"}, headers=platform.key("channel:web")
    )
    assert channel_key.status_code == 403
    other = await platform.router.get("/v1/departments/tax/appeals", headers=platform.key(f"department:{lead}"))
    assert other.status_code == 403


async def test_two_declines_send_the_appeal_to_the_coordinating_office(platform):
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    first = (await wait_status(platform, appeal_id, "routed"))["lead"]
    r = await act(platform, appeal_id, first, action="decline", guidance="Ask the tax service", target_department="tax")
    assert r.status_code == 200 and r.json()["lead"] == "tax" and r.json()["status"] == "routed"
    r = await act(platform, appeal_id, "tax", action="decline", guidance="Not a tax matter")
    assert r.json()["lead"] == "coord"
    withdrawn = await read_topic(
        platform.bootstrap,
        department_topic(first),
        lambda e: e.get("subject") == appeal_id and e["type"] == "assignment.withdrawn.v1",
    )
    assert withdrawn[0]["data"]["to_department"] == "tax"
    assert (await act(platform, appeal_id, "coord", action="decline", guidance="x")).status_code == 409
    assert appeal_id in await worklist(platform, "coord", status="routed")


async def test_request_info_transfer_and_cohandler(platform):
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    lead = (await wait_status(platform, appeal_id, "routed"))["lead"]
    assert (await act(platform, appeal_id, lead, action="accept")).status_code == 200
    r = await act(platform, appeal_id, lead, action="add_cohandler", target_department="hrss")
    assert r.status_code == 200 and r.json()["cohandlers"] == ["hrss"]
    assert appeal_id in await worklist(platform, "hrss"), "a co-handler sees the appeal in its worklist"
    asked = await act(platform, appeal_id, lead, action="request_info", note="Send the loan contract")
    assert asked.status_code == 200
    assert (await act(platform, appeal_id, lead, action="resolve", resolution="x")).status_code == 409
    r = await act(platform, appeal_id, lead, action="transfer", target_department="finance")
    assert r.status_code == 409, "an appeal waiting for the company's information cannot be transferred"
    company = make_event(
        "appeals/intake",
        EventType.company_info_provided,
        appeal_id,
        CompanyInfoProvided(appeal_id=appeal_id, information="Contract attached"),
    )
    await publish(platform.router_runtime.broker, APPEALS_COMPANY, company)
    await wait_status(platform, appeal_id, "accepted")
    r = await act(platform, appeal_id, lead, action="transfer", target_department="finance")
    assert r.status_code == 200 and r.json()["lead"] == "finance" and r.json()["status"] == "routed"
    assert appeal_id in await worklist(platform, "finance", status="routed")
    assert appeal_id in await worklist(platform, "hrss")
    assert appeal_id not in await worklist(platform, lead), "the department it was transferred from no longer has it"
    lifecycle = await read_topic(
        platform.bootstrap, "appeals.lifecycle.v1", lambda e: e.get("subject") == appeal_id, count=6
    )
    assert [e["type"] for e in lifecycle] == [
        "appeal.routed.v1",
        "appeal.accepted.v1",
        "appeal.cohandler_added.v1",
        "appeal.info_requested.v1",
        "appeal.info_provided.v1",
        "appeal.transferred.v1",
    ]
    assert [e["data"]["sequence"] for e in lifecycle] == [1, 2, 3, 4, 5, 6]


async def test_actions_over_kafka_are_the_topics_department_s_applied_once_and_refusals_reported(platform):
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    lead = (await wait_status(platform, appeal_id, "routed"))["lead"]

    def action(department: str, kind: str, **fields: str):
        data = DepartmentAction(appeal_id=appeal_id, department=department, action=kind, **fields)
        return make_event(f"dept/{department}", EventType.department_action, appeal_id, data)

    broker = platform.router_runtime.broker
    accept = action(lead, "accept")
    await publish(broker, department_actions_topic(lead), accept)
    await publish(broker, department_actions_topic(lead), accept)  # redelivered: must change nothing
    await wait_status(platform, appeal_id, "accepted")
    # On the lead's own topic, an event naming another department is the lead's topic's, and refused as a spoof.
    await publish(broker, department_actions_topic(lead), action("tax", "resolve", resolution="x"))
    # On tax's topic (only tax may write it), tax's action on an appeal it does not hold.
    await publish(broker, department_actions_topic("tax"), action("tax", "resolve", resolution="x"))
    refusals = [
        await read_topic(
            platform.bootstrap,
            department_topic(code),
            lambda e: e.get("subject") == appeal_id and e["type"] == "department.action_rejected.v1",
        )
        for code in (lead, "tax")
    ]
    assert refusals[0][0]["data"]["status"] == 403 and "this one names tax" in refusals[0][0]["data"]["detail"]
    assert refusals[1][0]["data"]["status"] == 403 and "not assigned to tax" in refusals[1][0]["data"]["detail"]
    # Over HTTP: applied at once, then on the department's actions topic under the id it was applied with.
    resolved = await platform.router.post(
        f"/v1/appeals/{appeal_id}/actions",
        headers=platform.key(f"department:{lead}"),
        json={"action": "resolve", "resolution": "Deferred."},
    )
    assert resolved.status_code == 200, resolved.text
    echoed = await read_topic(
        platform.bootstrap,
        department_actions_topic(lead),
        lambda e: e.get("subject") == appeal_id and e["data"].get("resolution") == "Deferred.",
    )
    assert len(echoed) == 1 and echoed[0]["data"]["department"] == lead
    for kind in ("accepted", "resolved"):
        once = await read_topic(
            platform.bootstrap,
            "appeals.lifecycle.v1",
            lambda e, kind=kind: e.get("subject") == appeal_id and e["type"] == f"appeal.{kind}.v1",
        )
        assert len(once) == 1, kind


async def test_actions_left_on_the_shared_topic_are_still_applied_as_it_drains(platform):
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    lead = (await wait_status(platform, appeal_id, "routed"))["lead"]
    data = DepartmentAction(appeal_id=appeal_id, department=lead, action="accept")
    await publish(
        platform.router_runtime.broker,
        APPEALS_ACTIONS,
        make_event(f"dept/{lead}", EventType.department_action, appeal_id, data),
    )
    await wait_status(platform, appeal_id, "accepted")


async def test_redelivered_submission_routes_once(platform):
    r = await submit(platform, appeal_body())
    appeal_id = r.json()["appeal_id"]
    await wait_status(platform, appeal_id, "routed")
    record = await platform.intake_runtime.db.appeals.find_one({"_id": appeal_id})
    await platform.router_runtime.broker.publish(
        record["event"].encode(), topic=APPEALS_SUBMITTED_V2, key=appeal_id.encode()
    )
    routed = await read_topic(
        platform.bootstrap,
        "appeals.lifecycle.v1",
        lambda e: e.get("subject") == appeal_id and e["type"] == "appeal.routed.v1",
    )
    assert len(routed) == 1


class IntakeDied(BaseException):
    """The intake process ending between storing an appeal and publishing it."""


async def test_an_appeal_an_intake_stored_but_never_published_is_routed_once_intake_starts_again(platform, monkeypatch):
    runtime = platform.intake_runtime

    async def store(body, failure):
        async def publish_fails(*_args, **_kwargs):
            raise failure

        monkeypatch.setattr(intake_service, "publish_acknowledged", publish_fails)
        with pytest.raises((IntakeDied, intake_service.BrokerUnavailable)):
            await intake_service.submit(
                runtime.db,
                runtime.broker,
                runtime.city,
                runtime.clock,
                "wechat",
                body,
                publish_timeout=5,
                inserts=runtime.inserts,
                body_key=runtime.settings.status_token_secret,
            )
        monkeypatch.undo()
        return (await runtime.db.appeals.find_one({"channel_ref": body.channel_ref}))["_id"]

    stranded = await store(AppealIn.model_validate(appeal_body()), IntakeDied())
    refused = await store(AppealIn.model_validate(appeal_body()), intake_service.BrokerUnavailable())
    assert (await platform.router.get(f"/v1/appeals/{stranded}", headers=platform.key("operator"))).status_code == 404

    # A new intake process on the same database: its start publishes what the dead one stored.
    settings = runtime.settings.model_copy(update={"consumer_group": f"intake-restarted-{new_id().lower()}"})
    async with LifespanManager(create_intake(settings), startup_timeout=60):
        await wait_status(platform, stranded, "routed")
    submitted = await read_topic(platform.bootstrap, APPEALS_SUBMITTED_V2, lambda e: e.get("subject") == stranded)
    assert len({e["id"] for e in submitted}) == 1, "the stored event itself, not a second appeal"
    # The caller of the other one was answered 503: nothing was accepted, so nothing is sent.
    assert (await platform.router.get(f"/v1/appeals/{refused}", headers=platform.key("operator"))).status_code == 404
    assert not await read_topic(
        platform.bootstrap, APPEALS_SUBMITTED_V2, lambda e: e.get("subject") == refused, timeout=2
    )


async def test_one_batch_routes_a_new_appeal_rejects_its_twin_and_finishes_a_redelivery(platform):
    routed_before = (await submit(platform, appeal_body())).json()["appeal_id"]
    await wait_status(platform, routed_before, "routed")
    record = await platform.intake_runtime.db.appeals.find_one({"_id": routed_before})
    redelivered = parse_event(record["event"].encode())
    new = redelivered.data.model_copy(update={"appeal_id": new_id(), "title": f"Another matter {new_id()}"})
    twin = new.model_copy(update={"appeal_id": new_id(), "channel_ref": "twin"})
    batch = [make_event("appeals/intake", EventType.appeal_submitted_v2, d.appeal_id, d) for d in (new, twin)]
    runtime = platform.router_runtime
    contact = Contact(name="Li Wei", phone="+8613800138000")  # as appeals.contacts.v1 brought them
    contacts = dict.fromkeys((new.appeal_id, twin.appeal_id, routed_before), contact)
    now = runtime.clock.now()
    await router_service.admit(runtime.db, runtime.broker, runtime.book, [*batch, redelivered], now, contacts)

    await wait_status(platform, new.appeal_id, "routed")
    assert new.appeal_id in (await wait_status(platform, twin.appeal_id, "rejected"))["reason"]
    routed = await read_topic(
        platform.bootstrap,
        "appeals.lifecycle.v1",
        lambda e: e.get("subject") == routed_before and e["type"] == "appeal.routed.v1",
    )
    assert len(routed) == 1, "the redelivered submission in the batch is not routed again"
    left = await runtime.db.appeals.count_documents(
        {"_id": {"$in": [new.appeal_id, twin.appeal_id, routed_before]}, "outbox.0": {"$exists": True}}
    )
    assert left == 0, "every outbox of the batch was published and emptied"


async def test_duplicate_of_an_open_appeal_is_rejected(platform):
    body = appeal_body()
    first = (await submit(platform, body)).json()["appeal_id"]
    await wait_status(platform, first, "routed")
    second_body = {**body, "channel_ref": body["channel_ref"] + "-again", "title": body["title"].upper()}
    second = (await submit(platform, second_body, channel="web")).json()["appeal_id"]
    assert second != first
    doc = await wait_status(platform, second, "rejected")
    assert first in doc["reason"]
    litigation = (await submit(platform, appeal_body(flags=["in_litigation"]))).json()["appeal_id"]
    assert "litigation" in (await wait_status(platform, litigation, "rejected"))["reason"]


async def test_unparseable_messages_go_to_the_dead_letter_topic(platform):
    broker = platform.router_runtime.broker
    await broker.publish(b"{not json", topic=APPEALS_SUBMITTED, key=b"garbage")
    unknown = make_event(
        "appeals/test", "appeal.teleported.v1", "X", DepartmentAction(appeal_id="X", department="tax", action="accept")
    )
    await broker.publish(encode(unknown), topic=APPEALS_SUBMITTED, key=b"X")
    dead = await read_topic(platform.bootstrap, dead_letter_topic(APPEALS_SUBMITTED), lambda e: True, count=2)
    assert len(dead) >= 2
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    await wait_status(platform, appeal_id, "routed")  # the consumer carried on


async def test_a_resolution_nobody_answers_closes_as_its_return_visit_ends_unreached(platform):
    """Every appeal is visited by default (config/assessment.yaml): silent, it closes when its visit ends unreached,
    a working day and five more after the resolution, not after seven days as one not visited does."""
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    lead = (await wait_status(platform, appeal_id, "routed"))["lead"]
    await act(platform, appeal_id, lead, action="accept")
    await act(platform, appeal_id, lead, action="resolve", resolution="Loan extended")
    await asyncio.sleep(1)
    resolved = await wait_status(platform, appeal_id, "resolved")
    unreached_at = datetime.fromisoformat(resolved["visit"]["unreached_at"])
    ahead = unreached_at - platform.clock.now() + timedelta(minutes=1)
    platform.clock.advance(ahead)
    try:
        closed = await wait_status(platform, appeal_id, "closed")
    finally:
        platform.clock.advance(-ahead)
    assert (closed["status"], closed["visit"]["state"]) == ("closed", "unreached")
    assert [e["type"] for e in closed["timeline"][-2:]] == ["appeal.visit_due.v1", "appeal.closed.v1"]


async def test_routing_preview_explains_the_choice(platform):
    r = await platform.router.post(
        "/v1/routing/preview",
        headers=platform.key("operator"),
        json={
            "category": "tax",
            "district": "futian",
            "employees": 12,
            "title": "VAT rate",
            "description": "Can we as a small-scale taxpayer pay the reduced VAT?",
        },
    )
    assert r.status_code == 200
    preview = r.json()
    assert preview["lead"] == "futian-tax" and preview["policy_available"] and preview["sla_profile"] == "policy_24h"
    assert any("rule" in line for line in preview["explanation"])
    assert (await platform.router.post("/v1/routing/preview", json={})).status_code == 401


async def test_appeals_stored_before_handlers_existed_are_in_worklists_after_an_upgrade(real_servers):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    db = client[f"router_upgrade_{new_id()}"]
    old = [
        {"_id": "led", "lead": "tax", "cohandlers": ["hrss"], "status": "routed", "submitted_at": 1},
        {"_id": "rejected", "cohandlers": [], "status": "rejected", "submitted_at": 2},
    ]
    await db.appeals.insert_many(old)
    await db.appeals.create_index([("lead", 1), ("status", 1), ("submitted_at", 1)])
    await db.appeals.create_index([("cohandlers", 1), ("status", 1)])

    await router_service.ensure_indexes(db)
    await router_service.ensure_indexes(db)  # a restart: the migration ran once

    assert [d["_id"] for d in (await router_service.worklist(db, "hrss", None, limit=10))[0]] == ["led"]
    assert [d["_id"] for d in (await router_service.worklist(db, "tax", "routed", limit=10))[0]] == ["led"]
    names = {index["name"] async for index in await db.appeals.list_indexes()}
    assert not names & {"lead_1_status_1_submitted_at_1", "cohandlers_1_status_1"}, "each index costs every write"
    assert (await db.migrations.find_one({"_id": "handlers"}))["appeals"] == 2
    await client.drop_database(db.name)
    await client.close()


async def test_a_company_chooses_its_department_which_declines_to_the_rules(platform):
    unknown = await submit(platform, appeal_body(department="moon-office"))
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "department"
    assert "moon-office" in unknown.json()["errors"][0]["message"]

    appeal_id = (await submit(platform, appeal_body(department="commerce"))).json()["appeal_id"]
    chosen = await wait_status(platform, appeal_id, "routed")
    assert (chosen["lead"], chosen["cohandlers"]) == ("commerce", [])
    assert appeal_id in await worklist(platform, "commerce")

    declined = await act(platform, appeal_id, "commerce", action="decline", guidance="Loans are finance's.")
    assert declined.status_code == 200, declined.text
    rerouted = await wait_status(platform, appeal_id, "routed")
    assert (rerouted["lead"], rerouted["rule_id"]) == ("nanshan-finance", "financing")
    assert rerouted["declined_by"] == []
    assert appeal_id not in await worklist(platform, "commerce")
    assert appeal_id in await worklist(platform, "nanshan-finance")


async def test_routing_preview_says_where_a_declined_choice_goes(platform):
    facts = {"category": "financing", "district": "nanshan", "employees": 25, "department": "commerce"}
    r = await platform.router.post("/v1/routing/preview", headers=platform.key("operator"), json=facts)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["lead"] == "commerce" and preview["cohandlers"] == []
    assert any("if commerce declines" in line and "nanshan-finance" in line for line in preview["explanation"])
    bad = await platform.router.post(
        "/v1/routing/preview", headers=platform.key("operator"), json={**facts, "department": "moon-office"}
    )
    assert bad.status_code == 422 and "department" in bad.json()["detail"]


async def test_values_that_become_names_or_links_downstream_are_checked_at_the_door(platform):
    """A district becomes a counter's name and a label; an attachment a link a clerk opens."""
    for district in ("nanshan.x", "a..b", "$where", '=HYPERLINK("http://x","y")', "moon"):
        refused = await submit(platform, appeal_body(enterprise={"district": district}))
        assert refused.status_code == 422, (district, refused.text)
        assert refused.json()["errors"][0]["field"] == "enterprise.district"
        assert "not a district of Shenzhen" in refused.json()["errors"][0]["message"]
    for link in (
        "javascript:alert(1)",
        "http://files.example.org/a.pdf",
        "https://user:pw@files.example.org/a",
        "https://files.example.org/" + "a" * 1_000_000,
        "https://files.example.org/a b",
    ):
        refused = await submit(platform, appeal_body(attachments=[link]))
        assert refused.status_code in (413, 422), (link[:40], refused.status_code)
        if refused.status_code == 422:
            assert refused.json()["errors"][0]["field"].startswith("attachments"), refused.text
    many = await submit(platform, appeal_body(attachments=["https://files.example.org/a.pdf"] * 21))
    assert many.status_code == 422 and many.json()["errors"][0]["field"] == "attachments"
    flagged = await submit(platform, appeal_body(flags=["x" * 10_000]))
    assert flagged.status_code == 422 and flagged.json()["errors"][0]["field"].startswith("flags")
    r = await submit(platform, appeal_body(attachments=["https://files.example.org/a.pdf"]))
    assert r.status_code == 202, r.text


async def test_a_staff_visit_names_the_liaison_who_took_it(platform):
    unknown = await submit(platform, appeal_body(taken_by="nobody"), channel="staff_visit")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "taken_by"
    not_a_visit = await submit(platform, appeal_body(taken_by="zhou-min"), channel="web")
    # Another channel's key may not say it: its scope, not the field, is wrong.
    assert not_a_visit.status_code == 403 and "staff visit" in not_a_visit.json()["detail"]
    r = await submit(platform, appeal_body(taken_by="zhou-min"), channel="staff_visit")
    assert r.status_code == 202, r.text
    doc = await wait_status(platform, r.json()["appeal_id"], "routed")
    assert (doc["channel"], doc["taken_by"]) == ("staff_visit", "zhou-min")


async def test_worklists_sort_by_the_deadlines_sla_reports(platform):
    later_id = (await submit(platform, appeal_body(category="labour"))).json()["appeal_id"]
    sooner_id = (await submit(platform, appeal_body(category="labour"))).json()["appeal_id"]
    lead = (await wait_status(platform, later_id, "routed"))["lead"]
    await wait_status(platform, sooner_id, "routed")
    now = platform.clock.now()

    EVENT_OF = {ClockState.running: EventType.sla_started, ClockState.met: EventType.sla_met}  # noqa: N806

    def clock(appeal_id, kind, due_in, state=ClockState.running):
        data = SlaClockChanged(
            appeal_id=appeal_id,
            clock_id=f"{appeal_id}:{kind}:1",
            clock=kind,
            department=lead,
            state=state,
            target="6h",
            calendar="default",
            sla_profile="standard_72h",
            started_at=now,
            due_at=now + due_in,
        )
        return make_event("appeals/sla", EVENT_OF[state], appeal_id, data)

    # One appeal's clocks as sla writes them, the other's as an sla of the earlier version did.
    await publish(platform.router_runtime.broker, SLA_EVENTS, clock(later_id, ClockKind.scope, timedelta(hours=5)))
    reported = packed(
        clock(sooner_id, ClockKind.scope, timedelta(hours=6)), clock(sooner_id, ClockKind.response, timedelta(hours=2))
    )
    await publish(platform.router_runtime.broker, SLA_EVENTS_V2, reported)
    # Both appeals are in the worklist from their routing on; the clock reports come after, on their own topic.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        due_first = await worklist(platform, lead, sort="due")
        if {later_id, sooner_id} <= set(due_first) and due_first.index(sooner_id) < due_first.index(later_id):
            break
        await asyncio.sleep(0.2)
    assert due_first.index(sooner_id) < due_first.index(later_id), "two hours before five"
    assert (await worklist(platform, lead)).index(later_id) < (await worklist(platform, lead)).index(sooner_id)

    # The response clock met: the scope clock's six hours come after the other appeal's five.
    await publish(
        platform.router_runtime.broker,
        SLA_EVENTS,
        clock(sooner_id, ClockKind.response, timedelta(hours=2), ClockState.met),
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        due_first = await worklist(platform, lead, sort="due")
        if due_first.index(later_id) < due_first.index(sooner_id):
            break
        await asyncio.sleep(0.2)
    assert due_first.index(later_id) < due_first.index(sooner_id)
    appeal = (await platform.router.get(f"/v1/appeals/{sooner_id}", headers=platform.key("operator"))).json()
    assert {(d["clock"], d["state"]) for d in appeal["deadlines"]} == {("scope", "running"), ("response", "met")}
    assert appeal["next_due"].startswith((now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M"))


async def test_the_timeline_names_the_clerk_who_acted(platform):
    r = await submit(platform, appeal_body(category="labour"))
    appeal_id, token = r.json()["appeal_id"], r.json()["status_token"]
    lead = (await wait_status(platform, appeal_id, "routed"))["lead"]
    accepted = await act(platform, appeal_id, lead, action="accept", note="We call you today.", clerk="Wang Fang")
    assert accepted.status_code == 200, accepted.text
    steps = [(e["status"], e.get("actor"), e.get("clerk")) for e in accepted.json()["timeline"]]
    assert steps == [("routed", None, None), ("accepted", lead, "Wang Fang")]
    assert accepted.json()["timeline"][1]["note"] == "We call you today."
    nameless = await act(platform, appeal_id, lead, action="accept", clerk="")
    assert nameless.status_code == 422, "a clerk is named or left out, never blank"

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        view = (await platform.intake.get(f"/v1/appeals/{appeal_id}", headers={"X-Status-Token": token})).json()
        if any(e["status"] == "accepted" for e in view["timeline"]):
            break
        await asyncio.sleep(0.1)
    assert [e.get("clerk") for e in view["timeline"] if e["status"] == "accepted"] == ["Wang Fang"]


async def test_a_phone_gets_a_one_time_code_and_the_limits_hold(platform):
    web, phone = platform.key("channel:web"), f"139{time.time_ns() % 100_000_000:08d}"
    address = {"X-Client-Address": f"198.51.100.{time.time_ns() % 200}"}
    sent = await platform.intake.post("/v1/verifications", json={"phone": phone}, headers={**web, **address})
    assert sent.status_code == 202, sent.text
    mine = lambda e: e["data"]["phone"] == f"+86{phone}"  # noqa: E731 (notify gets the phone in E.164)
    events = await read_topic(platform.bootstrap, "company.messages.v1", mine, count=1)
    code = events[0]["data"]["code"]
    assert events[0]["type"] == "company.code_issued.v1" and phone not in events[0]["subject"]

    again = await platform.intake.post("/v1/verifications", json={"phone": phone}, headers={**web, **address})
    assert again.status_code == 429 and 0 < int(again.headers["Retry-After"]) <= 61, "one code a minute"

    async def checked(value: str) -> bool:
        r = await platform.intake.post("/v1/verifications/check", json={"phone": phone, "code": value}, headers=web)
        assert r.status_code == 200, r.text
        return r.json()["verified"]

    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert not await checked(wrong)
    assert await checked(code), "the right code, after a wrong try"
    assert not await checked(code), "a code works once"
    malformed = await platform.intake.post("/v1/verifications/check", json={"phone": phone, "code": "12"}, headers=web)
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "code"


async def test_a_lost_link_goes_again_to_the_appeals_own_phone_only(platform):
    body = appeal_body(contact={"name": "Li Wei", "phone": "137 0000 1234"})
    appeal_id = (await submit(platform, body)).json()["appeal_id"]
    web = platform.key("channel:web")
    for phone in ("13900001111", "+86 137-0000-1234"):
        r = await platform.intake.post(f"/v1/appeals/{appeal_id}/link", json={"phone": phone}, headers=web)
        assert r.status_code == 202, "the same answer whether or not the phone is the appeal's"
    events = await read_topic(
        platform.bootstrap, "company.messages.v1", lambda e: e["data"].get("appeal_id") == appeal_id, count=1
    )
    assert [e["data"]["phone"] for e in events] == ["+8613700001234"], "only to the phone the appeal gave (E.164)"
    secret = platform.intake_runtime.settings.status_token_secret
    token = intake_service.status_token(secret, appeal_id, version=1)  # the request moved the token on
    assert events[0]["data"]["follow_url"].endswith(f"/appeals/{appeal_id}?token={token}")


async def test_an_action_leaves_another_replicas_pending_events_to_it_and_takes_over_from_one_that_died(platform):
    """Routing's replica may still be emptying an outbox when a department acts through another replica.

    Under load that emptying took over half a second: the live writer here takes a second.
    """
    topic = f"outbox-race-{new_id().lower()}"
    await ensure_topics(platform.bootstrap, [topic], partitions=1)
    appeal_id = (await submit(platform, appeal_body())).json()["appeal_id"]
    await wait_status(platform, appeal_id, "routed")
    appeals = platform.router_runtime.db.appeals

    def pending(n: int) -> dict:
        event_id = f"{appeal_id}-other-{n}"
        return {"id": event_id, "topic": topic, "key": appeal_id, "payload": json.dumps({"id": event_id})}

    async def other_replica_publishes(item: dict) -> None:
        await asyncio.sleep(1.0)
        await platform.router_runtime.broker.publish(item["payload"].encode(), topic=topic, key=appeal_id.encode())
        await appeals.update_one({"_id": appeal_id}, {"$pull": {"outbox": {"id": item["id"]}}})

    alive = pending(1)
    await appeals.update_one({"_id": appeal_id}, {"$push": {"outbox": alive}})
    publishing = asyncio.create_task(other_replica_publishes(alive))
    assert (await act(platform, appeal_id, "nanshan-finance", action="accept")).status_code == 200
    await publishing

    died = pending(2)
    await appeals.update_one({"_id": appeal_id}, {"$push": {"outbox": died}})
    resolved = await act(platform, appeal_id, "nanshan-finance", action="resolve", resolution="Deferred by the bank.")
    assert resolved.status_code == 200, resolved.text

    sent = [e["id"] for e in await read_topic(platform.bootstrap, topic, lambda e: True, count=2)]
    assert sorted(sent) == [alive["id"], died["id"]], "each once: the live writer's by it, the dead one's taken over"
    accepted = await read_topic(
        platform.bootstrap,
        "appeals.lifecycle.v1",
        lambda e: e.get("subject") == appeal_id and e["type"] == "appeal.accepted.v1",
    )
    assert len(accepted) == 1
    await outbox.drain()
    assert not (await appeals.find_one({"_id": appeal_id})).get("outbox"), "nothing is left for the sweep"
