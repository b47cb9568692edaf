"""Identifiers: ULIDs sort by creation time, so ids double as a rough timeline."""

from ulid import ULID


def new_id() -> str:
    """Return a new ULID as its 26-character string."""
    return str(ULID())
