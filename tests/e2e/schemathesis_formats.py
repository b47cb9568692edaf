"""The formats the OpenAPI documents name beyond JSON Schema's own, taught to schemathesis (a hooks file: the test
sets SCHEMATHESIS_HOOKS to it), as a client generator would be taught them: valid values, for a schema-valid request
must be taken.

- `uscc`: a unified social credit code whose 18th character is the check character of the first 17 (libs/uscc.py);
- `phone`: a phone number libphonenumber takes as valid (libs/phones.py).
"""

import phonenumbers
import schemathesis
from hypothesis import strategies as st

from libs.uscc import ALPHABET, check_character

_LETTERS = st.sampled_from(ALPHABET)
_DIGITS = st.sampled_from("0123456789")


def _uscc(head: list[str], region: list[str], rest: list[str]) -> str:
    first17 = "".join(head + region + rest)
    return first17 + check_character(first17)


USCC = st.builds(
    _uscc,
    st.lists(_LETTERS, min_size=2, max_size=2),
    st.lists(_DIGITS, min_size=6, max_size=6),
    st.lists(_LETTERS, min_size=9, max_size=9),
)


def _valid_phone(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, "CN"))
    except phonenumbers.NumberParseException:
        return False


PHONE = st.one_of(
    st.from_regex(r"\A1(3[0-9]|5[0-35-9]|8[0-9])[0-9]{8}\Z"),
    st.from_regex(r"\A\+86 1(3[0-9]|8[0-9]) [0-9]{4} [0-9]{4}\Z"),
).filter(_valid_phone)

schemathesis.openapi.format("uscc", USCC)
schemathesis.openapi.format("phone", PHONE)
