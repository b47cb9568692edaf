"""The additive-only check of the API documents (devstack/compat.py) on small documents: what it must refuse, and
what it must let through."""

import copy

import pytest

from devstack.compat import breaks, openapi_breaks


def document() -> dict:
    """A released document: one operation taking a query parameter and a body, answering a thing."""
    return {
        "openapi": "3.1.0",
        "paths": {
            "/v1/things": {
                "post": {
                    "parameters": [
                        {"in": "query", "name": "state", "schema": {"type": "string", "enum": ["open", "closed"]}},
                        {"in": "query", "name": "note", "schema": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                    ],
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ThingIn"}}}
                    },
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                        "422": {
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
                            }
                        },
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "ThingIn": {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["a", "b", "c"]},
                        "size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                        "label": {"type": "string"},
                    },
                },
                "Thing": {
                    "type": "object",
                    "required": ["id", "kind"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"type": "string", "enum": ["a", "b", "c"]},
                        "size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "HTTPValidationError": {"type": "object", "properties": {"detail": {"type": "array"}}},
            }
        },
    }


def changed(edit) -> list[str]:
    old = document()
    new = copy.deepcopy(old)
    edit(new)
    return openapi_breaks(old, new)


def schemas(doc: dict) -> dict:
    return doc["components"]["schemas"]


def operation(doc: dict) -> dict:
    return doc["paths"]["/v1/things"]["post"]


# ---------------------------------------------------------------- refused


def test_an_enum_narrowed_in_a_body_the_service_receives_is_refused():
    def edit(doc):
        schemas(doc)["ThingIn"]["properties"]["kind"]["enum"] = ["a", "b"]

    assert changed(edit) == ["POST /v1/things body.kind: no longer takes 'c'"]


def test_an_enum_narrowed_in_a_parameter_the_service_receives_is_refused():
    def edit(doc):
        operation(doc)["parameters"][0]["schema"]["enum"] = ["open"]

    assert changed(edit) == ["POST /v1/things query state: no longer takes 'closed'"]


def test_an_enum_where_any_value_was_taken_is_refused():
    def edit(doc):
        schemas(doc)["ThingIn"]["properties"]["label"]["enum"] = ["red", "blue"]

    assert changed(edit) == ["POST /v1/things body.label: takes only 'blue', 'red' now"]


def test_a_type_changed_inside_an_anyof_is_refused_in_what_is_received_and_in_what_is_sent():
    def received(doc):
        schemas(doc)["ThingIn"]["properties"]["size"]["anyOf"][0] = {"type": "string"}

    def sent(doc):
        schemas(doc)["Thing"]["properties"]["size"]["anyOf"][0] = {"type": "string"}

    assert changed(received) == ["POST /v1/things body.size: no longer takes integer"]
    assert changed(sent) == ["POST /v1/things 200 application/json.size: may now be string"]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: schemas(d)["Thing"]["properties"].pop("tags"), "POST /v1/things 200 application/json.tags is gone"),
        (
            lambda d: schemas(d)["Thing"]["properties"]["id"].update(type="integer"),
            "POST /v1/things 200 application/json.id: may now be integer",
        ),
        (
            lambda d: schemas(d)["Thing"]["required"].remove("kind"),
            "POST /v1/things 200 application/json: kind may be missing now",
        ),
        (
            lambda d: schemas(d)["Thing"]["properties"]["kind"]["enum"].remove("c"),
            "POST /v1/things 200 application/json.kind: values 'c' are gone",
        ),
        (
            lambda d: schemas(d)["Thing"]["properties"]["tags"]["items"].update(type="integer"),
            "POST /v1/things 200 application/json.tags[]: may now be integer",
        ),
    ],
    ids=["field-gone", "type-changed", "no-longer-required", "enum-value-gone", "item-type-changed"],
)
def test_a_response_schema_changed_under_its_readers_is_refused(edit, problem):
    assert changed(edit) == [problem]


def test_a_field_or_parameter_required_now_or_gone_is_refused():
    def required(doc):
        schemas(doc)["ThingIn"]["required"].append("label")

    def gone(doc):
        operation(doc)["parameters"].pop(1)

    assert changed(required) == ["POST /v1/things body: requires label now"]
    assert changed(gone) == ["POST /v1/things query note is gone"]


def test_a_consumed_event_whose_enum_narrowed_is_refused_and_a_published_one_may_grow():
    old = {"type": "object", "properties": {"status": {"type": "string", "enum": ["routed", "closed"]}}}
    narrowed = {"type": "object", "properties": {"status": {"type": "string", "enum": ["routed"]}}}
    grown = {"type": "object", "properties": {"status": {"type": "string", "enum": ["routed", "closed", "reopened"]}}}
    assert breaks({}, old, {}, narrowed, "receive appeal.x.v1", receiving=True) == [
        "receive appeal.x.v1.status: no longer takes 'closed'"
    ]
    assert breaks({}, old, {}, grown, "receive appeal.x.v1", receiving=True) == []
    assert breaks({}, old, {}, grown, "send appeal.x.v1", receiving=False) == []


# ---------------------------------------------------------------- let through


def test_a_purely_additive_change_passes():
    def edit(doc):
        thing_in, thing = schemas(doc)["ThingIn"], schemas(doc)["Thing"]
        thing_in["properties"]["kind"]["enum"].append("d")  # takes one more value
        thing_in["properties"]["colour"] = {"type": "string"}  # a new optional field
        thing_in["properties"]["size"]["anyOf"].append({"type": "string"})  # takes one more type
        thing["properties"]["colour"] = {"type": "string"}  # sends one more field
        thing["required"].append("tags")  # sends a field always now
        op = operation(doc)
        op["parameters"][0]["schema"]["enum"].append("archived")
        op["parameters"].append({"in": "query", "name": "limit", "schema": {"type": "integer"}})
        op["responses"]["200"]["headers"] = {"Link": {"schema": {"type": "string"}}}
        op["responses"]["409"] = {"content": {"application/problem+json": {"schema": {"type": "object"}}}}
        # The validation error body FastAPI declared and no service sent is no promise to keep.
        op["responses"]["422"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
        doc["paths"]["/v1/things/{id}"] = {"get": {"responses": {"200": {}}}}

    assert changed(edit) == []


def test_a_key_moved_from_a_parameter_to_a_security_scheme_is_still_taken():
    def edit(doc):
        op = operation(doc)
        op["parameters"].pop(1)
        op["security"] = [{"Note": []}]
        doc["components"]["securitySchemes"] = {"Note": {"type": "apiKey", "in": "query", "name": "note"}}

    assert changed(edit) == []
