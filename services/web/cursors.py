"""Paging through router's lists the way router pages them: the next page from the `cursor` of the `Link: <...>;
rel="next"` header of the page before, never by an offset (which shifts as the queue changes).

A page's address carries the cursor it starts at (`after`) and those of the pages before it (`trail`, the newest
last), so that "previous" goes back without asking router for an order it does not keep. The trail is capped: past
`MAX_TRAIL` pages back, "previous" leads to the first page.
"""

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from libs.paging import CURSOR_PATTERN, MAX_CURSOR_LENGTH

MAX_TRAIL = 20
_CURSOR = re.compile(CURSOR_PATTERN)
# Cursors hold only URL-safe base64 characters: a dot joins them.
_JOIN = "."


def cursor_of(value: str | None) -> str:
    """A cursor as the page's address gave it, or "" when it is not one (the first page)."""
    return value if value and len(value) <= MAX_CURSOR_LENGTH and _CURSOR.match(value) else ""


def trail_of(value: str | None) -> str:
    """The cursors of the pages before, as the page's address gave them; any that is not a cursor ends it."""
    kept = []
    for part in (value or "").split(_JOIN):
        if not cursor_of(part):
            break
        kept.append(part)
    return _JOIN.join(kept[-MAX_TRAIL:])


def next_cursor(response: httpx.Response) -> str | None:
    """The cursor of router's next page, from the `Link` header of this one; None on the last page."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    found = parse_qs(urlsplit(url).query).get("cursor")
    return cursor_of(found[0]) or None if found else None


def forward(page: int, after: str, trail: str, cursor: str) -> dict[str, Any]:
    """The address's changes for the next page, which starts at `cursor`."""
    earlier = [*trail.split(_JOIN), after] if trail else ([after] if after else [])
    return {"page": page + 1, "after": cursor, "trail": _JOIN.join(earlier[-MAX_TRAIL:])}


def backward(page: int, trail: str) -> dict[str, Any]:
    """The address's changes for the page before this one."""
    earlier = trail.split(_JOIN) if trail else []
    if page <= 2 or not earlier:
        return {"page": 1, "after": "", "trail": ""}
    return {"page": page - 1, "after": earlier[-1], "trail": _JOIN.join(earlier[:-1])}
