"""Phones in one form (E.164), and what compares or counts them: intake's models and limits, router's registry."""

import pytest
from pydantic import ValidationError

from libs.phones import e164
from services.intake import codes
from services.intake.models import AppealIn, CodeCheck, CodeRequest, LinkRequest
from services.router import registry
from tests.helpers import appeal_body

ONE_NUMBER = ["13800138000", "+86 138 0013 8000", "0086 13800138000", "86 13800138000", "013800138000"]


@pytest.mark.parametrize("written", [*ONE_NUMBER, "+86-138-0013-8000", "138 0013 8000", "(+86) 138 0013 8000"])
def test_every_usual_form_of_a_chinese_mobile_is_one_number(written):
    assert e164(written) == "+8613800138000"


def test_a_number_of_another_country_keeps_its_own_code():
    assert e164("+1 650 253 0000") == "+16502530000"


@pytest.mark.parametrize(
    "written", ["12345", "1380013800", "23800138000", "phone", "13800138000 ext 5", "1" * 33, "", "+86"]
)
def test_what_is_no_valid_number_is_refused(written):
    with pytest.raises(ValueError, match="phone number"):
        e164(written)


@pytest.mark.parametrize("written", ONE_NUMBER)
def test_intake_keeps_and_sends_on_the_contact_phone_in_e164(written):
    body = AppealIn.model_validate(appeal_body(contact={"name": "Li Wei", "phone": written}))
    assert body.contact.phone == "+8613800138000"
    for model in (CodeRequest, LinkRequest):
        assert model.model_validate({"phone": written}).phone == "+8613800138000"
    assert CodeCheck.model_validate({"phone": written, "code": "042917"}).phone == "+8613800138000"


def test_an_invalid_phone_is_refused_naming_its_field():
    with pytest.raises(ValidationError) as refused:
        AppealIn.model_validate(appeal_body(contact={"name": "Li Wei", "phone": "12345"}))
    assert [e["loc"] for e in refused.value.errors()] == [("contact", "phone")]
    with pytest.raises(ValidationError) as refused:
        CodeRequest.model_validate({"phone": "23800138000"})
    assert [e["loc"] for e in refused.value.errors()] == [("phone",)]


def test_one_phone_is_one_subject_of_the_limits():
    keys = {codes.keyed("secret", "phone", codes.normalized(p)) for p in ONE_NUMBER}
    assert len(keys) == 1
    assert codes.normalized("138 0013") == "138 0013", "a phone stored before that no longer parses stays as it was"


def test_the_registry_matches_a_contact_phone_in_any_form_it_or_the_list_wrote():
    company = {"phones": ["0086 138-0013-8000", "0755 8888 8888"]}
    for written in ONE_NUMBER:
        assert registry.phone_matches(company, e164(written)) is True
    assert registry.phone_matches(company, "+8675588888888") is True
    assert registry.phone_matches(company, "+8613900139000") is False
    assert registry.phone_matches({"phones": ["123456"]}, "123456") is True, "a list's odd number still compares"
