"""Identifiers: ULIDs sort by creation time, so ids double as a rough timeline."""

import hashlib
from datetime import datetime

from ulid import ULID


def new_id() -> str:
    """Return a new ULID as its 26-character string."""
    return str(ULID())


def stable_id(key: str, at: datetime) -> str:
    """The same ULID every time for `key`, timed at `at` (to the millisecond): a republished event keeps its id."""
    digest = hashlib.sha256(key.encode()).digest()
    return str(ULID.from_bytes(int(at.timestamp() * 1000).to_bytes(6, "big") + digest[:10]))
