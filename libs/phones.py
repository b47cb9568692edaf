"""Phone numbers in one form: E.164, read as Chinese numbers unless they say otherwise.

`13800138000`, `+86 138 0013 8000`, `0086 13800138000`, `86 13800138000` and `013800138000` are
one number, and each limit, comparison and message must see it once: `+8613800138000`.
"""

import phonenumbers
from pydantic.json_schema import JsonDict

DEFAULT_REGION = "CN"
# Longer than any number written with spaces, dashes and a prefix; the parser is never handed a megabyte.
MAX_LENGTH = 32
# What the OpenAPI documents state of a phone a client sends: `format: phone`, a number libphonenumber takes as valid
# (no pattern says that).
PHONE_SCHEMA: JsonDict = {
    "format": "phone",
    "description": "A phone number in any usual form (13800138000, +86 138 0013 8000, 0086 13800138000), read as "
    "a Chinese number unless it starts with + or 00 and another country code, valid by libphonenumber's numbering "
    "plans (`format: phone`), without an extension.",
}


def e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """`raw` in E.164 (`+8613800138000`); ValueError saying what is wrong, never repeating the number."""
    if len(raw) > MAX_LENGTH:
        raise ValueError(f"a phone number has at most {MAX_LENGTH} characters")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number (for example 13800138000 or +86 138 0013 8000)") from None
    if number.extension:
        raise ValueError("a phone number for text messages has no extension")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number (for example 13800138000 or +86 138 0013 8000)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
