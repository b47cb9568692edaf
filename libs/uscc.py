"""Unified social credit code (GB 32100-2015): 18 characters, the last a check character."""

import re

from pydantic.json_schema import JsonDict

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_SHAPE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")


# What a client may send, as the OpenAPI documents state it: the shape in any case, spaces around it dropped
# (`str.strip`'s spaces, listed), and `format: uscc` for the check character, which no pattern can say.
SPACES = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_CHAR = "0-9A-HJ-NP-RT-UW-Ya-hj-np-rt-uw-y"
USCC_INPUT = f"^[{SPACES}]*[{_CHAR}]{{2}}[0-9]{{6}}[{_CHAR}]{{10}}[{SPACES}]*$"
USCC_SCHEMA: JsonDict = {
    "pattern": USCC_INPUT,
    "format": "uscc",
    "description": "Unified social credit code (GB 32100-2015): 18 characters of 0-9 and the capitals but I, O, S, "
    "V, Z (any case; spaces around are dropped), the third to eighth digits, the 18th the check character of the "
    "first 17 (`format: uscc`: weights 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28 modulo 31).",
}
_INPUT = re.compile(USCC_INPUT)


def normalized_uscc(raw: str) -> str:
    """`raw` as the code it stands for (upper case, spaces around dropped); ValueError saying what is wrong."""
    code = raw.strip().upper()
    if not _INPUT.fullmatch(raw):
        raise ValueError(
            f"unified social credit code {uscc_problem(code) or 'has characters outside the code alphabet'}"
        )
    problem = uscc_problem(code)
    if problem:
        raise ValueError(f"unified social credit code {problem}")
    return code


def check_character(first17: str) -> str:
    """The check character for the first 17 characters of a code."""
    total = sum(ALPHABET.index(ch) * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """Why `code` is not a valid credit code, or None when it is."""
    if len(code) != 18:
        return f"must be 18 characters, got {len(code)}"
    if not _SHAPE.match(code):
        return "has characters outside the code alphabet (digits and capitals except I, O, S, V, Z)"
    if code[17] != check_character(code[:17]):
        return "check character does not match (GB 32100-2015)"
    return None
