"""The committed API documents are current, valid, and say what integrators need (see devstack/apidocs.py)."""

import json

import pytest
from openapi_spec_validator import validate

from devstack.apidocs import DEFAULT_OUT, SERVICES, stale_documents
from devstack.compat import breaks, openapi_breaks
from libs.config import load_city
from libs.contract import TOPICS, consumers_of, topics_of
from libs.contract import topic as contract_topic
from libs.events import DATA_MODELS
from libs.settings import PROJECT_ROOT

RELEASED = DEFAULT_OUT / "released"
CLOUDEVENT_FIELDS = {"specversion", "id", "type", "source", "subject", "time", "datacontenttype", "data"}


def load(name: str, folder=DEFAULT_OUT) -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


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
    codes = [d.code for d in load_city(PROJECT_ROOT / "config").departments]
    assert set(received) == {t for c in consumers_of(service) for t in topics_of(c, codes)}
    for topic, envelopes in received.items():
        for envelope in envelopes:
            assert envelope["properties"].keys() >= CLOUDEVENT_FIELDS, (topic, envelope["title"])
            assert "properties" in resolve(doc, envelope["properties"]["data"]), (topic, envelope["title"])
            assert event_types(envelope), (topic, envelope["title"])


def test_department_topics_carry_assignments_from_router_and_sla_alerts_from_sla():
    router = operations(load("router.asyncapi.json"), "send")
    assert {t for e in router["dept.nanshan-finance.v1"] for t in event_types(e)} == {
        "assignment.created.v1",
        "assignment.withdrawn.v1",
        "department.action_rejected.v1",
    }
    sla = operations(load("sla.asyncapi.json"), "send")
    assert {t for e in sla["dept.nanshan-finance.v1"] for t in event_types(e)} == {
        "sla.warning.v1",
        "sla.breached.v1",
        "sla.urged.v1",
    }
    assert "appeals.lifecycle.v1" in router and {"sla.events.v1", "sla.events.v2"} <= set(sla)
    # Router writes each department's actions taken over HTTP to its actions topic, which only it and the
    # department may write, and reads them there.
    assert {t for e in router["dept.nanshan-finance.actions.v1"] for t in event_types(e)} == {"department.action.v1"}
    assert "dept.nanshan-finance.actions.v1" not in sla


def test_every_event_type_is_documented_and_each_topic_with_what_the_contract_puts_on_it():
    sent = {}
    received = {}
    for service in SERVICES:
        doc = load(f"{service}.asyncapi.json")
        for address, envelopes in operations(doc, "send").items():
            sent.setdefault(address, set()).update(t for e in envelopes for t in event_types(e))
        for address, envelopes in operations(doc, "receive").items():
            carried = set(contract_topic(address).carries)
            assert {t for e in envelopes for t in event_types(e)} == carried, (service, address)
            received.setdefault(address, set()).update(t for e in envelopes for t in event_types(e))
    assert set(DATA_MODELS) <= {t for types in (*sent.values(), *received.values()) for t in types}
    for entry in TOPICS:
        if "departments" not in entry.producers:
            assert sent[entry.name] == set(entry.carries), entry.name


def envelopes_by_type(doc: dict, action: str) -> dict[tuple[str, str], dict]:
    """(channel address, event type) -> the envelope that carries it there."""
    found = {}
    for address, envelopes in operations(doc, action).items():
        for envelope in envelopes:
            for event_type in event_types(envelope):
                found[(address, event_type)] = envelope
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_the_kafka_documents_only_add_to_what_was_released(service):
    """Department integrators build on `docs/api/released/`: channels, event types and fields stay.

    A breaking change makes a `.v2` event on a new topic (and a new release of the documents).
    """
    released, current = load(f"{service}.asyncapi.json", RELEASED), load(f"{service}.asyncapi.json")
    problems = []
    for action in ("send", "receive"):
        before, now = envelopes_by_type(released, action), envelopes_by_type(current, action)
        for key, old in before.items():
            where = f"{action} {key[1]} on {key[0]}"
            if key not in now:
                problems.append(f"{where} is gone")
            else:
                problems += breaks(released, old, current, now[key], where, receiving=action == "receive")
    assert problems == []


# What the released documents left unsaid and the services refused all along (a 400 or 422 answered these values
# before the documents said so): no client could rely on them being taken.
_FORMATS = ("discovery", "requests", "requests/{request_id}", "services", "services/{code}")
DOCUMENTED_NOW = {
    "intake": (
        *(f"{m} /open311/v2/{p}.{{fmt}} path fmt: takes only 'json' now" for p in _FORMATS for m in ("GET", "POST")),
        "POST /open311/v2/requests.{fmt} requires a body now",
        "POST /v1/appeals body.enterprise.district: takes only",
    ),
    "router": ("POST /v1/appeals/{appeal_id}/actions body.target_department: takes only",),
}
# Breaks made on purpose since the release, each with its reason; the next release of the documents clears them.
ACCEPTED = {
    # PIPL: a contact is erased when its retention ends or at an admin's request (docs/privacy.md), and an erased
    # contact cannot be sent.
    "router": tuple(
        f"{label} 200 application/json{each}{what}"
        for label, each in (
            ("GET /v1/appeals/{appeal_id}", ""),
            ("POST /v1/appeals/{appeal_id}/actions", ""),
            ("GET /v1/departments/{code}/appeals", "[]"),
        )
        for what in (": contact may be missing now", ".contact: may now be null")
    ),
}


@pytest.mark.parametrize("service", SERVICES)
def test_the_http_documents_only_add_to_what_was_released(service):
    """Integrators build on the released OpenAPI documents: no operation gone, nothing they send refused that was
    taken (a parameter or field gone, an enum narrowed, a type gone from an `anyOf`, something required now), and
    nothing they read changed under them (devstack/compat.py)."""
    released, current = load(f"{service}.openapi.json", RELEASED), load(f"{service}.openapi.json")
    known = (*DOCUMENTED_NOW.get(service, ()), *ACCEPTED.get(service, ()))
    assert [p for p in openapi_breaks(released, current) if not p.startswith(known)] == []
