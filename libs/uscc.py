"""Unified social credit code (GB 32100-2015): 18 characters, the last a check character."""

import re

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_SHAPE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")


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
