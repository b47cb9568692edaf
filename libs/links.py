"""Links people send with an appeal or a contribution: checked at the door, so a clerk opens only an https page.

The check is one pattern, the one the OpenAPI documents state, so that what a client reads there is what is taken:
https (any case), a host (a name, or an IPv6 address in brackets) with an optional port, no user name or password,
and no whitespace or control character anywhere.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# What a link never holds unencoded: the C0 and C1 controls, DEL, and every character `str.isspace` calls a space.
BLANK = "\\x00-\\x20\\x7f-\\x9f\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
HTTPS_LINK = (
    f"^[Hh][Tt][Tt][Pp][Ss]://(?:[^{BLANK}/?#@:\\[\\]]+|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]*)?(?:[/?#][^{BLANK}]*)?$"
)
_LINK = re.compile(HTTPS_LINK)
_BLANK = re.compile(f"[{BLANK}]")


def _https_url(value: str) -> str:
    """A link a clerk may open (`HTTPS_LINK`); ValueError saying what is wrong."""
    if _LINK.fullmatch(value):
        return value
    if _BLANK.search(value):
        raise ValueError("must be a URL without spaces or control characters")
    if not value.lower().startswith("https://"):
        raise ValueError("must be an https:// URL")
    if "@" in value.split("://", 1)[1].split("/", 1)[0]:
        raise ValueError("must not carry a user name or password")
    raise ValueError("must name a host, and a port in digits if any")


Attachment = Annotated[
    str,
    Field(
        max_length=2048,
        description="An https link to a document: a host, no user name or password, no spaces.",
        examples=["https://files.example.org/a.pdf"],
        json_schema_extra={"pattern": HTTPS_LINK},
    ),
    AfterValidator(_https_url),
]
