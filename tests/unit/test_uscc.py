"""Unified social credit codes (services/intake/uscc.py, GB 32100-2015) and their validation at intake."""

import pytest
from pydantic import ValidationError

from libs.uscc import ALPHABET, WEIGHTS, check_character, uscc_problem
from services.intake.models import AppealIn, EnterpriseIn

# Widely published example; by hand under GB 32100-2015: the values of 91350100M000100Y4 times the weights
# 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28 sum to 1640; 1640 mod 31 = 28; 31 - 28 = 3, so "3".
PUBLISHED_EXAMPLE = "91350100M000100Y43"

FIRST_17 = [
    "91440300MA5FXT4K8",
    "91110108551385082",
    "12100000400000624",
    "51440300MJL1234AB",
    "Y1440300000000000",
    "91350100M000100Y4",
]


def valid(first17: str) -> str:
    return first17 + check_character(first17)


def enterprise(uscc: str) -> dict:
    return {
        "uscc": uscc,
        "name": "Lanhai Network",
        "employees": 25,
        "industry": "internet services",
        "district": "nanshan",
    }


def appeal(uscc: str) -> dict:
    return {
        "channel_ref": "wx-20260303-0042",
        "enterprise": enterprise(uscc),
        "contact": {"name": "Li Wei", "phone": "13800138000"},
        "category": "financing",
        "title": "Loan due",
        "description": "Our loan falls due while staff cannot return.",
    }


# ---------------------------------------------------------------- the standard's parameters


def test_alphabet_is_digits_and_capitals_without_i_o_s_v_z():
    assert ALPHABET == "0123456789ABCDEFGHJKLMNPQRTUWXY"
    assert len(ALPHABET) == 31


def test_weights_are_powers_of_three_modulo_31():
    assert tuple(pow(3, i, 31) for i in range(17)) == WEIGHTS


# ---------------------------------------------------------------- valid codes


@pytest.mark.parametrize("first17", FIRST_17)
def test_code_with_computed_check_character_is_valid(first17):
    assert uscc_problem(valid(first17)) is None


def test_published_example_is_valid():
    assert check_character(PUBLISHED_EXAMPLE[:17]) == "3"
    assert uscc_problem(PUBLISHED_EXAMPLE) is None


def test_check_character_zero_when_the_sum_is_a_multiple_of_31():
    assert check_character("00000000000000000") == "0"


# ---------------------------------------------------------------- invalid codes


@pytest.mark.parametrize("first17", FIRST_17)
def test_wrong_check_character_is_refused(first17):
    code = valid(first17)
    wrong = next(c for c in ALPHABET if c != code[-1])
    assert uscc_problem(code[:17] + wrong) == "check character does not match (GB 32100-2015)"


def test_published_example_with_another_check_character_is_refused():
    assert uscc_problem(PUBLISHED_EXAMPLE[:17] + "4") is not None


@pytest.mark.parametrize("code", ["", PUBLISHED_EXAMPLE[:17], PUBLISHED_EXAMPLE + "0", PUBLISHED_EXAMPLE[:10]])
def test_wrong_length_is_refused(code):
    assert uscc_problem(code) == f"must be 18 characters, got {len(code)}"


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_forbidden_letter_is_refused(letter):
    code = PUBLISHED_EXAMPLE[:8] + letter + PUBLISHED_EXAMPLE[9:]
    assert "outside the code alphabet" in uscc_problem(code)


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_forbidden_letter_as_check_character_is_refused(letter):
    assert "outside the code alphabet" in uscc_problem(PUBLISHED_EXAMPLE[:17] + letter)


def test_letter_in_the_division_code_digits_is_refused():
    code = "91A50100M000100Y4"
    assert "outside the code alphabet" in uscc_problem(code + "0")


def test_lowercase_is_not_valid_on_its_own():
    assert uscc_problem(PUBLISHED_EXAMPLE.lower()) is not None


# ---------------------------------------------------------------- intake models


def test_enterprise_in_upper_cases_a_lowercase_code():
    assert EnterpriseIn(**enterprise("91350100m000100y43")).uscc == PUBLISHED_EXAMPLE


def test_enterprise_in_strips_surrounding_spaces():
    assert EnterpriseIn(**enterprise(f"  {PUBLISHED_EXAMPLE} ")).uscc == PUBLISHED_EXAMPLE


def test_appeal_in_accepts_a_valid_code():
    assert AppealIn.model_validate(appeal(PUBLISHED_EXAMPLE)).enterprise.uscc == PUBLISHED_EXAMPLE


def test_appeal_in_rejects_an_invalid_code_naming_uscc():
    with pytest.raises(ValidationError) as err:
        AppealIn.model_validate(appeal(PUBLISHED_EXAMPLE[:17] + "4"))
    [error] = err.value.errors()
    assert error["loc"] == ("enterprise", "uscc")
    assert "unified social credit code" in error["msg"]
    assert "check character" in error["msg"]


def test_documented_example_body_is_valid():
    [example] = AppealIn.model_config["json_schema_extra"]["examples"]
    AppealIn.model_validate(example)
