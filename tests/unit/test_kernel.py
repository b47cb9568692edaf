"""The shared kernel in libs/: API keys, log redaction, settings, the event envelope, config, HTTP plumbing."""

import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError

from libs.auth import KeyStore, Principal, hash_key, parse_scope
from libs.config import load_city
from libs.contract import parse_event
from libs.envelopes import CloudEvent
from libs.events import AppealChanged
from libs.http import PROBLEM_JSON, BodySizeLimit, install_problem_handlers
from libs.kafka.publishing import encode, make_event
from libs.kinds import AppealStatus, Category, Channel, EventType
from libs.logging import configure_logging, redact
from libs.settings import DEV_SECRET
from services.intake.settings import IntakeSettings

CONFIG = Path(__file__).resolve().parents[2] / "config"
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
USCC = "91350100M000100Y43"


# ================================================================ libs/auth.py


def test_hash_key_is_the_sha256_hex_digest():
    assert hash_key("ak_secret") == hashlib.sha256(b"ak_secret").hexdigest()


@pytest.mark.parametrize(
    ("scope", "parsed"),
    [
        ("department:nanshan-finance", ("department", "nanshan-finance")),
        ("channel:wechat", ("channel", "wechat")),
        ("operator", ("operator", None)),
        ("admin", ("admin", None)),
    ],
)
def test_parse_scope_splits_kind_and_name(scope, parsed):
    assert parse_scope(scope) == parsed


@pytest.mark.parametrize("scope", ["root", "", "departments:finance", "Department:finance"])
def test_parse_scope_refuses_an_unknown_kind(scope):
    with pytest.raises(ValueError, match="unknown scope kind"):
        parse_scope(scope)


@pytest.mark.parametrize("scope", ["department", "department:", "channel", "channel:"])
def test_parse_scope_needs_a_name_for_channels_and_departments(scope):
    with pytest.raises(ValueError, match="needs a name"):
        parse_scope(scope)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys.json"
    path.write_text(
        json.dumps(
            [
                {"scope": "department:nanshan-finance", "sha256": hash_key("ak_finance"), "label": "Nanshan finance"},
                {"scope": "operator", "sha256": hash_key("ak_operator")},
            ]
        )
    )
    return path


def test_key_store_finds_the_principal_of_a_key(key_file):
    store = KeyStore.from_file(key_file)
    assert store.lookup("ak_finance") == Principal("department", "nanshan-finance", "Nanshan finance")


def test_key_store_labels_a_key_by_its_scope_when_no_label_is_given(key_file):
    assert KeyStore.from_file(key_file).lookup("ak_operator") == Principal("operator", None, "operator")


@pytest.mark.parametrize("key", ["ak_unknown", "", None, hash_key("ak_finance")])
def test_key_store_knows_no_other_key(key_file, key):
    assert KeyStore.from_file(key_file).lookup(key) is None


def test_key_store_without_a_file_accepts_no_key(tmp_path):
    assert KeyStore.from_file(None).lookup("ak_finance") is None
    assert KeyStore.from_file(tmp_path / "missing.json").lookup("ak_finance") is None


def test_key_store_refuses_a_file_with_a_malformed_scope(tmp_path):
    path = tmp_path / "api-keys.json"
    path.write_text(json.dumps([{"scope": "department", "sha256": hash_key("ak_x")}]))
    with pytest.raises(ValueError):
        KeyStore.from_file(path)


# ================================================================ libs/logging.py


@pytest.mark.parametrize(
    "phone", ["13800138000", "+86 138 0013 8000", "+8613800138000", "86-138-0013-8000", "138-0013-8000", "19912345678"]
)
def test_redact_masks_mobile_numbers(phone):
    assert redact(f"call {phone} now") == "call [phone] now"


@pytest.mark.parametrize("uscc", [USCC, "91440300MA5FXT4K8N"])
def test_redact_masks_credit_codes(uscc):
    assert redact(f"company {uscc} appealed") == "company [uscc] appealed"


@pytest.mark.parametrize(
    "text",
    [
        APPEAL_ID,  # ULID
        "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5-outbox",
        "2026-03-03T10:00:00.123456+00:00",  # timestamp
        "1772532000",  # epoch seconds
        "1772532000123",  # epoch milliseconds
        "wx-20260303-0042",  # channel reference
        "nanshan-finance",
        "appeal 42 took 1380 ms",
        "12800138000",  # 11 digits but no mobile prefix
    ],
)
def test_redact_leaves_ordinary_values_alone(text):
    assert redact(text) == text


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configured_logging_writes_json_without_the_phone(capsys, restore_logging):
    configure_logging("intake")
    logging.getLogger("tests.kernel").warning("could not reach %s", "13800138000", extra={"appeal_id": APPEAL_ID})
    [line] = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert "13800138000" not in line
    assert record["message"] == "could not reach [phone]"
    assert record["service"] == "intake"
    assert record["level"] == "WARNING"
    assert record["logger"] == "tests.kernel"
    assert record["appeal_id"] == APPEAL_ID


def test_configured_logging_masks_personal_data_in_extra_fields(capsys, restore_logging):
    configure_logging("intake")
    logging.getLogger("tests.kernel").info("submitted", extra={"contact": "+86 138 0013 8000", "uscc": USCC})
    out = capsys.readouterr().out
    record = json.loads(out)
    assert (record["contact"], record["uscc"]) == ("[phone]", "[uscc]")


def test_configured_logging_respects_the_level(capsys, restore_logging):
    configure_logging("intake", level="warning")
    logging.getLogger("tests.kernel").info("quiet")
    assert capsys.readouterr().out == ""


# ================================================================ libs/settings.py via IntakeSettings


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("INTAKE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_dev_accepts_the_defaults(clean_env):
    settings = IntakeSettings()
    assert settings.environment == "dev"
    assert settings.status_token_secret == DEV_SECRET
    assert settings.api_keys_file is None


def test_database_and_consumer_group_default_to_the_service_name(clean_env):
    settings = IntakeSettings()
    assert (settings.mongodb_database, settings.consumer_group) == ("intake", "intake")


@pytest.mark.parametrize("environment", ["prod", "test"])
def test_outside_dev_the_default_status_token_secret_is_refused(clean_env, tmp_path, environment):
    clean_env.setenv("INTAKE_ENVIRONMENT", environment)
    clean_env.setenv("INTAKE_API_KEYS_FILE", str(tmp_path / "api-keys.json"))
    with pytest.raises(ValidationError, match="status_token_secret"):
        IntakeSettings()


def test_prod_without_an_api_keys_file_is_refused(clean_env):
    clean_env.setenv("INTAKE_ENVIRONMENT", "prod")
    clean_env.setenv("INTAKE_STATUS_TOKEN_SECRET", "a-real-secret-of-at-least-32-bytes-0123456789")
    with pytest.raises(ValidationError, match="api_keys_file"):
        IntakeSettings()


def test_prod_with_a_secret_and_a_key_file_is_accepted(clean_env, tmp_path):
    clean_env.setenv("INTAKE_ENVIRONMENT", "prod")
    clean_env.setenv("INTAKE_STATUS_TOKEN_SECRET", "a-real-secret-of-at-least-32-bytes-0123456789")
    clean_env.setenv("INTAKE_API_KEYS_FILE", str(tmp_path / "api-keys.json"))
    settings = IntakeSettings()
    assert settings.api_keys_file == tmp_path / "api-keys.json"


def test_settings_are_read_from_intake_prefixed_variables(clean_env):
    clean_env.setenv("INTAKE_HTTP_PORT", "9123")
    clean_env.setenv("INTAKE_MONGODB_DATABASE", "intake_test")
    settings = IntakeSettings()
    assert settings.http_port == 9123
    assert settings.mongodb_database == "intake_test"


def test_settings_ignore_unprefixed_variables(clean_env):
    clean_env.setenv("HTTP_PORT", "9123")
    clean_env.setenv("ROUTER_HTTP_PORT", "9124")
    assert IntakeSettings().http_port == 8001


def test_an_unknown_environment_is_refused(clean_env):
    clean_env.setenv("INTAKE_ENVIRONMENT", "staging")
    with pytest.raises(ValidationError, match="environment"):
        IntakeSettings()


# ================================================================ libs/kinds.py, libs/events.py, libs/envelopes.py


def changed() -> AppealChanged:
    return AppealChanged(
        appeal_id=APPEAL_ID,
        status=AppealStatus.routed,
        sequence=1,
        department="nanshan-finance",
        category=Category.financing,
        channel=Channel.wechat,
        district="nanshan",
        size_band="micro",
        submitted_at=datetime(2026, 3, 3, 10, 0, tzinfo=UTC),
    )


def test_parse_event_round_trips_a_made_event():
    event = make_event(
        "appeals/router",
        EventType.appeal_routed,
        APPEAL_ID,
        changed(),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    parsed = parse_event(encode(event))
    assert isinstance(parsed.data, AppealChanged)
    assert parsed.data == event.data
    assert (parsed.id, parsed.type, parsed.subject, parsed.source, parsed.time, parsed.traceparent) == (
        event.id,
        event.type,
        event.subject,
        event.source,
        event.time,
        event.traceparent,
    )


def test_parse_event_refuses_an_unknown_type():
    body = encode(make_event("appeals/router", "appeal.teleported.v1", APPEAL_ID, changed()))
    with pytest.raises(ValueError, match="unknown event type 'appeal.teleported.v1'"):
        parse_event(body)


def test_parse_event_refuses_a_known_type_on_a_topic_that_does_not_carry_it():
    body = encode(make_event("appeals/router", EventType.appeal_routed, APPEAL_ID, changed()))
    assert parse_event(body, "appeals.lifecycle.v1").type == EventType.appeal_routed
    with pytest.raises(ValueError, match="'appeal.routed.v1' does not travel on appeals.submitted.v1"):
        parse_event(body, "appeals.submitted.v1")


def test_parse_event_refuses_data_that_does_not_fit_its_type():
    body = encode(make_event("appeals/router", EventType.assignment_created, APPEAL_ID, changed()))
    with pytest.raises(ValidationError):
        parse_event(body)


def test_parse_event_refuses_an_envelope_without_subject():
    envelope = json.loads(encode(make_event("appeals/router", EventType.appeal_routed, APPEAL_ID, changed())))
    del envelope["subject"]
    with pytest.raises(ValidationError):
        parse_event(json.dumps(envelope).encode())


def test_parse_event_refuses_bytes_that_are_not_json():
    with pytest.raises(ValidationError):
        parse_event(b"not json")


def test_make_event_gives_each_event_its_own_id():
    assert (
        make_event("s", EventType.appeal_routed, APPEAL_ID, changed()).id
        != make_event("s", EventType.appeal_routed, APPEAL_ID, changed()).id
    )


def test_parsed_event_is_a_cloud_event_1_0():
    parsed = parse_event(encode(make_event("appeals/router", EventType.appeal_routed, APPEAL_ID, changed())))
    assert isinstance(parsed, CloudEvent)
    assert parsed.specversion == "1.0"


# ================================================================ libs/config.py


@pytest.fixture(scope="module")
def city():
    return load_city(CONFIG)


@pytest.mark.parametrize(
    ("employees", "band"),
    [
        (0, "micro"),
        (29, "micro"),
        (30, "small"),
        (100, "small"),
        (101, "medium"),
        (300, "medium"),
        (301, "large"),
        (1_000_000, "large"),
    ],
)
def test_size_band_boundaries(city, employees, band):
    assert city.size_band(employees) == band


# ================================================================ libs/http.py

LIMIT = 100


class Item(BaseModel):
    name: str
    quantity: int


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, limit=LIMIT)

    @app.post("/items")
    async def create(item: Item) -> dict:
        return {"name": item.name}

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        return {"size": len(await request.body())}

    return app


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://test") as c:
        yield c


def chunks(total: int, size: int = 30):
    async def stream():
        sent = 0
        while sent < total:
            yield b"x" * min(size, total - sent)
            sent += size

    return stream()


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    return body


async def test_body_within_the_limit_passes(client):
    response = await client.post("/items", json={"name": "loan", "quantity": 1})
    assert response.status_code == 200


async def test_body_over_the_limit_with_content_length_is_a_413(client):
    response = await client.post("/items", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    body = assert_problem(response, 413)
    assert body["title"] == "Content Too Large"
    assert str(LIMIT) in body["detail"]


async def test_streamed_body_within_the_limit_passes(client):
    response = await client.post("/raw", content=chunks(LIMIT))
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def test_streamed_body_over_the_limit_is_a_413(client):
    request = client.build_request("POST", "/raw", content=chunks(LIMIT * 3))
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert_problem(response, 413)


async def test_streamed_body_over_the_limit_to_a_model_endpoint_is_a_413(client):
    response = await client.post("/items", content=chunks(LIMIT * 3), headers={"content-type": "application/json"})
    assert_problem(response, 413)


async def test_validation_error_is_a_422_problem_listing_the_fields(client):
    response = await client.post("/items", json={"name": 7})
    body = assert_problem(response, 422)
    assert body["detail"] == "invalid fields: name, quantity"
    assert {e["field"] for e in body["errors"]} == {"name", "quantity"}
    assert all(e["message"] for e in body["errors"])


async def test_unknown_route_is_a_404_problem(client):
    assert_problem(await client.get("/nowhere"), 404)
