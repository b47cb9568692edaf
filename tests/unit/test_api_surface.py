"""What an integrator reads in the OpenAPI documents before the first call: how to authenticate on every protected
operation, and operation ids a client generator turns into readable, stable method names."""

import re

import httpx
import pytest

from devstack.apidocs import SERVICES, build_app
from libs.http import PROBLEM_KINDS, PROBLEM_TYPE
from libs.settings import PROJECT_ROOT
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings

# Open to anyone: probes, the business calendars, and the Open311 facade, whose spec has its own `api_key` field.
PUBLIC = {"/healthz", "/readyz", "/v1/calendars"}


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, op) for path, item in document["paths"].items() for method, op in item.items()]


@pytest.mark.parametrize("service", SERVICES)
def test_every_protected_operation_declares_the_api_key_as_swagger_s_authorize_sends_it(service):
    document = build_app(service).openapi()
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    undeclared = [
        f"{method} {path}"
        for method, path, op in operations(document)
        if path not in PUBLIC and not path.startswith("/open311/") and {"ApiKey": []} not in op.get("security", [])
    ]
    assert not undeclared


def test_the_company_s_own_reads_declare_its_status_token_beside_a_key():
    document = build_app("intake").openapi()
    read = document["paths"]["/v1/appeals/{appeal_id}"]["get"]
    assert {"StatusToken": []} in read["security"] and {"ApiKey": []} in read["security"]
    assert document["components"]["securitySchemes"]["StatusToken"]["name"] == "X-Status-Token"


@pytest.mark.parametrize("service", SERVICES)
def test_operation_ids_are_the_handlers_names_once_each(service):
    ids = [op["operationId"] for _, _, op in operations(build_app(service).openapi())]
    assert len(ids) == len(set(ids))
    # FastAPI's default joins the name, the path and the method: submit_appeal_v1_appeals_post.
    assert not [i for i in ids if re.search(r"_(get|post|put|patch|delete)$", i) or "_v1_" in i]


def test_an_operation_s_id_is_what_its_handler_is_called():
    ids = {(method, path): op["operationId"] for method, path, op in operations(build_app("intake").openapi())}
    assert ids["POST", "/v1/appeals"] == "submit_appeal"
    ids = {(method, path): op["operationId"] for method, path, op in operations(build_app("router").openapi())}
    assert ids["POST", "/v1/return-visits/{appeal_id}/attempts"] == "record_attempt"


async def test_a_call_authorized_as_the_document_says_is_let_in(demo_keys):
    """What Swagger's Authorize does with the scheme: the key in the header the document names."""
    keys, keys_file = demo_keys
    app = create_router(RouterSettings(api_keys_file=keys_file, environment="test"))
    scheme = app.openapi()["components"]["securitySchemes"]["ApiKey"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://router") as client:
        assert (await client.get("/v1/departments")).status_code == 401
        authorized = await client.get("/v1/departments", headers={scheme["name"]: keys["operator"]})
        assert authorized.status_code == 200 and authorized.json()


def test_every_kind_of_problem_is_listed_for_integrators():
    listed = (PROJECT_ROOT / "docs" / "api" / "problems.md").read_text()
    assert [name for name in PROBLEM_KINDS if f"`{PROBLEM_TYPE}{name}`" not in listed] == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_declared_problem_answer_has_the_problem_schema(service):
    document = build_app(service).openapi()
    bare = [
        f"{method} {path} {code}"
        for method, path, op in operations(document)
        for code, answer in op.get("responses", {}).items()
        if "application/problem+json" in answer.get("content", {})
        and answer["content"]["application/problem+json"].get("schema", {}).get("title") != "Problem"
    ]
    assert not bare


async def test_a_client_tells_the_kinds_of_problem_apart_by_their_type(demo_keys):
    keys, keys_file = demo_keys
    app = create_router(RouterSettings(api_keys_file=keys_file, environment="test"))
    operator = {"X-Api-Key": keys["operator"]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://router") as client:
        answers = {
            "unauthenticated": await client.get("/v1/departments"),
            "forbidden": await client.get("/v1/routing/rules", headers={"X-Api-Key": keys["channel:wechat"]}),
            "not-found": await client.get("/v1/departments/nowhere/appeals", headers=operator),
            "invalid-fields": await client.post("/v1/routing/preview", json={"category": "weather"}, headers=operator),
        }
    for kind, answer in answers.items():
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert (body["type"], body["status"]) == (f"urn:appeals:problem:{kind}", PROBLEM_KINDS[kind].status), kind
    assert {e["field"] for e in answers["invalid-fields"].json()["errors"]} >= {"category"}


async def test_a_405_names_every_method_the_path_takes_in_allow(demo_keys):
    """Starlette's own 405 named the methods of the first route whose path matched (`Allow: POST` on Open311's
    requests, served by a GET and a POST route)."""
    _, keys_file = demo_keys
    app = build_app("intake")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://intake") as client:
        answer = await client.request("OPTIONS", "/open311/v2/requests.json")
    assert answer.status_code == 405 and answer.headers["content-type"] == "application/problem+json"
    assert set(answer.headers["allow"].split(", ")) >= {"GET", "POST"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_declares_the_answers_of_the_shared_plumbing(service):
    """A body that is not UTF-8 is a 400 and one over the limit a 413, before any field is read; a 422 is a problem,
    never the validation error body FastAPI declares by default."""
    document = build_app(service).openapi()
    undeclared = [
        f"{method} {path} {status}"
        for method, path, op in operations(document)
        if "requestBody" in op
        for status in ("400", "413")
        if status not in op["responses"]
    ]
    assert not undeclared
    assert "HTTPValidationError" not in str(document["paths"])
