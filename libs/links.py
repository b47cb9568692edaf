"""Links people send with an appeal or a contribution: checked at the door, so a clerk opens only an https page."""

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field


def _https_url(value: str) -> str:
    """A link a clerk may open: https, a host, no credentials, no spaces or control characters."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be a URL without spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() != "https":
        raise ValueError("must be an https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    return value


Attachment = Annotated[
    str,
    Field(max_length=2048, description="An https link to a document.", examples=["https://files.example.org/a.pdf"]),
    AfterValidator(_https_url),
]
