"""The committed API documents are current, valid, and say what integrators need (see devstack/apidocs.py)."""

import json

import pytest
from openapi_spec_validator import validate

from devstack.apidocs import DEFAULT_OUT, ENVELOPES, SERVICES, TOPIC_ENVELOPES, stale_documents
from libs.events import DATA_MODELS, TOPIC_TYPES
from libs.topics import PLATFORM_TOPICS

SUBSCRIBED = {
    "intake": {"appeals.lifecycle.v1", "sla.events.v1"},
    "router": {"appeals.submitted.v1", "appeals.actions.v1", "appeals.company.v1"},
    "sla": {"appeals.lifecycle.v1"},
    "notify": {"appeals.submitted.v1", "appeals.lifecycle.v1", "sla.events.v1"},
    "stats": {"appeals.submitted.v1", "appeals.lifecycle.v1", "sla.events.v1", "appeals.company.v1",
              "notify.deliveries.v1"},
}
CLOUDEVENT_FIELDS = {"specversion", "id", "type", "source", "subject", "time", "datacontenttype", "data"}


def load(name: str) -> dict:
    return json.loads((DEFAULT_OUT / name).read_text(encoding="utf-8"))


def resolve(doc: dict, node: dict) -> dict:
    """Follow local `$ref`s until a real object."""
    while "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(doc: dict, action: str) -> dict[str, list[dict]]:
    """Channel address -> the envelope schemas of its messages, for the operations with `action`."""
    found: dict[str, list[dict]] = {}
    for op in doc["operations"].values():
        if op["action"] != action:
            continue
        channel = resolve(doc, op["channel"])
        for message_ref in op["messages"]:
            payload = resolve(doc, resolve(doc, message_ref)["payload"])
            members = [resolve(doc, m) for m in payload.get("anyOf", [payload])]
            found.setdefault(channel["address"], []).extend(members)
    return found


def event_types(envelope: dict) -> set[str]:
    type_ = envelope["properties"]["type"]
    return {type_["const"]} if "const" in type_ else set(type_["enum"])


def test_committed_documents_are_what_the_apps_generate():
    stale = stale_documents()
    assert not stale, f"run `make apidocs` and commit: {[p.name for p in stale]}"


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_document_is_valid(service):
    validate(load(f"{service}.openapi.json"))


def test_intake_openapi_has_the_channel_company_and_open311_paths():
    paths = load("intake.openapi.json")["paths"]
    assert {"post"} <= paths["/v1/appeals"].keys()
    assert {"post"} <= paths["/v1/appeals/{appeal_id}/feedback"].keys()
    open311 = {p for p in paths if p.startswith("/open311/v2/")}
    for name in ("discovery", "services", "services/{code}", "requests", "requests/{request_id}"):
        assert f"/open311/v2/{name}.{{fmt}}" in open311, name
    assert {"get", "post"} <= paths["/open311/v2/requests.{fmt}"].keys()


@pytest.mark.parametrize("service", SERVICES)
def test_asyncapi_document_receives_each_subscribed_topic_as_cloudevents(service):
    doc = load(f"{service}.asyncapi.json")
    assert doc["asyncapi"] == "3.0.0"
    received = operations(doc, "receive")
    assert set(received) == SUBSCRIBED[service]
    for topic, envelopes in received.items():
        for envelope in envelopes:
            assert envelope["properties"].keys() >= CLOUDEVENT_FIELDS, (topic, envelope["title"])
            assert "properties" in resolve(doc, envelope["properties"]["data"]), (topic, envelope["title"])
            assert event_types(envelope), (topic, envelope["title"])


def test_department_topics_carry_assignments_from_router_and_sla_alerts_from_sla():
    router = operations(load("router.asyncapi.json"), "send")
    assert {t for e in router["dept.nanshan-finance.v1"] for t in event_types(e)} == {
        "assignment.created.v1", "assignment.withdrawn.v1", "department.action_rejected.v1"}
    sla = operations(load("sla.asyncapi.json"), "send")
    assert {t for e in sla["dept.nanshan-finance.v1"] for t in event_types(e)} == {"sla.warning.v1",
                                                                                   "sla.breached.v1"}
    assert "appeals.lifecycle.v1" in router and "sla.events.v1" in sla


def test_every_event_type_and_platform_topic_is_documented():
    documented = {t for types in ENVELOPES.values() for t in types}
    assert set(DATA_MODELS) <= documented
    assert set(PLATFORM_TOPICS) == set(TOPIC_ENVELOPES)


def test_each_topic_is_documented_with_the_types_its_consumers_accept():
    for topic, names in TOPIC_ENVELOPES.items():
        assert {t for name in names for t in ENVELOPES[name]} == TOPIC_TYPES[topic], topic
