"""The Open311 translation (services/intake/open311_translation.py) and the company's deadlines, as plain functions."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from libs.config import ConfigError, load_catalogue, load_city
from libs.deadlines import deadlines
from libs.kinds import Category
from services.intake import open311_translation as translation
from tests.helpers import open311_form

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def city():
    return load_city(CONFIG)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(CONFIG)


def form(**overrides: str) -> list[tuple[str, str]]:
    description = "Our loan falls due on 10 March. Staff cannot return after the holiday."
    fields = open311_form(7, **{"attribute[enterprise_name]": "Lanhai", "description": description, **overrides})
    return [(k, v) for k, v in fields.items() if v is not None]


def test_every_category_is_a_service_with_its_group_and_keywords(catalogue):
    services = translation.service_list(catalogue)
    assert {s["service_code"] for s in services} == {c.value for c in Category}
    financing = next(s for s in services if s["service_code"] == "financing")
    assert financing["group"] == "Money and tax" and "loan" in financing["keywords"]
    assert all(s["metadata"] is True and s["type"] == "realtime" for s in services)


def test_a_missing_category_in_the_catalogue_stops_the_service(tmp_path):
    text = (CONFIG / "categories.yaml").read_text()
    (tmp_path / "categories.yaml").write_text(text.replace("  - code: other", "  - code: legal"))
    with pytest.raises(ConfigError, match="duplicate category|missing categories: other"):
        load_catalogue(tmp_path)


def test_the_service_definition_carries_the_enterprise_fields(catalogue, city):
    definition = translation.service_definition(catalogue.entry("tax"), city)
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert [a["order"] for a in definition["attributes"]] == list(range(1, len(attributes) + 1))
    assert {code for code, a in attributes.items() if a["required"]} == {
        "uscc",
        "enterprise_name",
        "employees",
        "industry",
        "district",
    }
    assert {v["key"] for v in attributes["district"]["values"]} == {d.code for d in city.districts}
    assert attributes["flags"]["datatype"] == "multivaluelist"


def test_a_form_post_becomes_an_appeal():
    appeal = translation.appeal_from_form(
        form(
            **{
                "attribute[flags][]": "key_enterprise",
                "email": "li@example.com",
                "media_url": "https://files.example.org/a.pdf",
            }
        ),
        "financing",
    )
    assert appeal.enterprise.employees == 25 and appeal.enterprise.district == "nanshan"
    assert appeal.contact.name == "Wei Li" and appeal.contact.email == "li@example.com"
    assert appeal.title == "Our loan falls due on 10 March"
    assert appeal.flags == ["key_enterprise"] and appeal.attachments == ["https://files.example.org/a.pdf"]


def test_the_same_post_gets_the_same_idempotency_key_and_a_channel_ref_wins():
    first = translation.appeal_from_form(form(), "financing").channel_ref
    assert translation.appeal_from_form(form(api_key="another"), "financing").channel_ref == first
    assert translation.appeal_from_form(form(description="Something else."), "financing").channel_ref != first
    assert (
        translation.appeal_from_form(form(**{"attribute[channel_ref]": "hotline-0042"}), "financing").channel_ref
        == "hotline-0042"
    )


def test_bad_fields_are_named_the_way_a_311_client_sent_them():
    with pytest.raises(translation.Open311Error) as caught:
        translation.appeal_from_form(
            form(**{"attribute[uscc]": "91440300MA5FXT4K8X", "phone": None, "attribute[employees]": "many"}),
            "financing",
        )
    assert caught.value.status == 400
    text = caught.value.description
    assert "attribute[uscc]: " in text and "check character" in text
    assert "phone: is required" in text and "attribute[employees]" in text
    with pytest.raises(translation.Open311Error, match="attribute\\[flags\\]: unknown values vip"):
        translation.appeal_from_form(form(**{"attribute[flags]": "vip"}), "financing")


def test_resolved_and_closed_appeals_are_closed_for_open311():
    assert [translation.status_of(s) for s in ("routed", "info_requested", "reopened")] == ["open"] * 3
    assert [translation.status_of(s) for s in ("resolved", "confirmed", "closed", "rejected")] == ["closed"] * 4


def test_without_the_channels_key_a_request_shows_no_company_data(city, catalogue):
    due = datetime(2026, 3, 6, 9, tzinfo=UTC)
    record = {
        "_id": "01J",
        "channel": "wechat",
        "category": "financing",
        "status": "resolved",
        "department": "nanshan-finance",
        "description": "Loan due for Lanhai",
        "resolution": "Deferred 6 months",
        "submitted_at": datetime(2026, 3, 3, 9),
        "updated_at": datetime(2026, 3, 4, 9),
        "clocks": {"c1": {"clock": "resolution", "state": "running", "due_at": due, "at": due}},
    }
    public = translation.request_view(record, city, catalogue, full=False)
    assert public["description"] is None and "Deferred" not in public["status_notes"]
    assert public["status"] == "closed" and public["agency_responsible"] == city.department("nanshan-finance").name
    assert public["requested_datetime"] == "2026-03-03T09:00:00+00:00"
    assert public["expected_datetime"] == "2026-03-06T09:00:00+00:00"
    full = translation.request_view(record, city, catalogue, full=True)
    assert full["description"] == "Loan due for Lanhai" and "Deferred 6 months" in full["status_notes"]


def test_w3c_dates_are_parsed_or_refused_by_name():
    assert translation.parse_w3c("2026-03-03T00:00:00Z", "start_date") == datetime(2026, 3, 3, tzinfo=UTC)
    with pytest.raises(translation.Open311Error, match="end_date: '03/03/2026' is not a W3C datetime"):
        translation.parse_w3c("03/03/2026", "end_date")


def test_deadlines_show_time_left_pauses_and_overdue_work():
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    started = now - timedelta(hours=2)

    def clock(kind, state, due, remaining=None):
        return {
            "clock": kind,
            "department": "nanshan-finance",
            "state": state,
            "target": "6h",
            "started_at": started,
            "due_at": due,
            "remaining_seconds": remaining,
            "at": now,
        }

    record = {
        "clocks": {
            "a": clock("scope", "running", now + timedelta(hours=4)),
            "b": clock("response", "running", now - timedelta(minutes=30)),
            "c": clock("resolution", "paused", None, 7200.0),
            "d": clock("scope", "cancelled", now),
        }
    }
    by_kind = {d.clock: d for d in deadlines(record, now)}
    assert set(by_kind) == {"scope", "response", "resolution"}, "cancelled clocks are left out"
    assert by_kind["scope"].remaining_seconds == 4 * 3600 and not by_kind["scope"].overdue
    assert by_kind["response"].remaining_seconds == -1800 and by_kind["response"].overdue
    assert by_kind["resolution"].remaining_seconds == 7200 and by_kind["resolution"].due_at is None
