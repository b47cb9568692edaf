"""Keyset paging for every list the services answer: a JSON array, and an RFC 8288 `Link: <...>; rel="next"` header
while more items follow, whose `cursor` resumes after the last item's sort key.

An offset shifts when the list changes between two pages (an appeal submitted or closed meanwhile is shown twice or
never); a key does not: the next page starts after the last item shown, wherever the others went. The order is by a
time and then the item's id, so items of the same instant keep one order. Where that time never changes (a
submission, a creation) no item is lost or shown twice however the list grows; where it may (a due time), the
list's description says that an item may move between pages.

The functions up to `next_link` are pure; `pager()` carries them into a view (`limit`, `cursor`, the header).
"""

import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import URL

# A sort key: the time (or another value that orders the list) first, the item's id last.
Key = tuple[Any, ...]
T = TypeVar("T")

# Cursors are not secret (a position grants nothing the key does not), but one edited by hand or cut short must be
# refused rather than read as another position: the checksum tells a cursor the services issued from any other.
_CHECKSUM_CONTEXT = b"appeals-platform paging v1"
_CHECKSUM_BYTES = 6
MAX_CURSOR_LENGTH = 512
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


class BadCursor(ValueError):
    """A cursor the services did not issue for this list."""


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_BYTES, key=_CHECKSUM_CONTEXT).digest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a cursor holds aware times only")
        return {"t": value.isoformat()}
    if value is None or isinstance(value, (str, int)):
        return value
    raise TypeError(f"a cursor cannot hold {type(value).__name__}")


def _restored(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"t"} or not isinstance(value["t"], str):
            raise BadCursor("the cursor holds an unknown value")
        try:
            restored = datetime.fromisoformat(value["t"])
        except ValueError:
            raise BadCursor("the cursor holds a malformed time") from None
        if restored.tzinfo is None:
            raise BadCursor("the cursor holds a time without its zone")
        return restored
    if value is None or isinstance(value, (str, int)):
        return value
    raise BadCursor("the cursor holds an unknown value")


def encode_cursor(name: str, key: Key) -> str:
    """An opaque cursor resuming the list `name` (e.g. `worklist`) after `key`."""
    payload = json.dumps([name, *[_plain(v) for v in key]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_checksum(payload) + payload).rstrip(b"=").decode()


def decode_cursor(cursor: str, name: str, kinds: tuple[type, ...]) -> Key:
    """The key a cursor of the list `name` resumes after, its parts of `kinds` (all but the id may be None);
    `BadCursor` for anything else (another list's, edited, cut short).

    A cursor continues its list in whatever order the list is asked for next (a worklist by due time, the city
    queue in another state): a position in one order is a position in the other, and grants nothing either way.
    """
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("the cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise BadCursor("the cursor is not one this service issued") from None
    mark, payload = raw[:_CHECKSUM_BYTES], raw[_CHECKSUM_BYTES:]
    if len(mark) != _CHECKSUM_BYTES or mark != _checksum(payload):
        raise BadCursor("the cursor is not one this service issued")
    try:
        decoded = json.loads(payload)
    except ValueError:
        raise BadCursor("the cursor is not one this service issued") from None
    if not isinstance(decoded, list) or not decoded:
        raise BadCursor("the cursor is not one this service issued")
    if decoded[0] != name:
        raise BadCursor(f"the cursor belongs to another list than {name}")
    key = tuple(_restored(v) for v in decoded[1:])
    if len(key) != len(kinds) or not all(
        isinstance(v, kind) and not (kind is int and isinstance(v, bool)) or (v is None and n < len(kinds) - 1)
        for n, (v, kind) in enumerate(zip(key, kinds, strict=True))
    ):
        raise BadCursor(f"the cursor does not hold a place in {name}")
    return key


def _ordered(a: Key, b: Key) -> int:
    """-1, 0 or 1 as `a` sorts before, with or after `b` (None before any value, as MongoDB sorts a missing field)."""
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if x is None:
            return -1
        if y is None:
            return 1
        return -1 if x < y else 1
    return 0


def _after(key: Key, cursor: Key | None, descending: bool) -> bool:
    if cursor is None:
        return True
    step = _ordered(key, cursor)
    return step < 0 if descending else step > 0


def page_of(
    items: Iterable[T],
    key_of: Callable[[T], Key],
    after: Key | None,
    limit: int,
    *,
    descending: bool = False,
    skip: int = 0,
) -> tuple[list[T], bool]:
    """The `limit` items after the key `after` (the first ones without it), and whether more follow.

    `items` come in the order of their keys (descending when `descending`).
    """
    page: list[T] = []
    for item in items:
        if not _after(key_of(item), after, descending):
            continue
        if skip:
            skip -= 1
            continue
        if len(page) == limit:
            return page, True
        page.append(item)
    return page, False


async def read_page(
    items: AsyncIterable[T],
    key_of: Callable[[T], Key],
    after: Key | None,
    limit: int,
    *,
    descending: bool = False,
    skip: int = 0,
) -> tuple[list[T], bool]:
    """`page_of` over items that come ordered by the first part of their key only (what one index serves), the
    items of the same first part in any order: each such run is put in order by the whole key before it is paged.

    A database then sorts on one field, bounded by `bound()`, and no `$or` over two (which the embedded server
    answers by scanning the whole collection, libs/mongo.py); ties on a time are few and short.
    """
    page: list[T] = []
    run: list[T] = []

    def settle() -> bool:
        nonlocal skip
        run.sort(key=_sort_key(key_of), reverse=descending)
        for item in run:
            if not _after(key_of(item), after, descending):
                continue
            if skip:
                skip -= 1
                continue
            if len(page) == limit:
                return True
            page.append(item)
        run.clear()
        return False

    async for item in items:
        if run and key_of(item)[0] != key_of(run[0])[0] and settle():
            return page, True
        run.append(item)
    return page, settle()


def _sort_key(key_of: Callable[[T], Key]) -> Callable[[T], tuple[tuple[bool, Any], ...]]:
    return lambda item: tuple((v is not None, v) for v in key_of(item))


def bound(field: str, after: Key | None, *, descending: bool = False) -> dict[str, Any]:
    """The query on `field` (the key's first part) that starts at the cursor: `{field: {$gte: T}}` (`$lte` when
    descending), which with `read_page` stands for `{$or: [{field: {$gt: T}}, {field: T, _id: {$gt: id}}]}`."""
    if after is None or after[0] is None:
        return {}
    return {field: {"$lte" if descending else "$gte": after[0]}}


def next_link(url: str, cursor: str) -> str:
    """The RFC 8288 `Link` header value pointing at the next page: this request's URL with `cursor` (an `offset`
    left out, for the cursor is already past it)."""
    target = URL(url).remove_query_params(["cursor", "offset"]).include_query_params(cursor=cursor)
    return f'<{target}>; rel="next"'


# ---------------------------------------------------------------- in a view


def keyed(doc: dict[str, Any], *fields: str) -> Key:
    """A stored document's key: the values of `fields` (dotted paths), then its `_id`."""
    values: list[Any] = []
    for field in fields:
        value: Any = doc
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value)
    return (*values, doc["_id"])


LINK_HEADER = {
    "Link": {
        "description": 'RFC 8288: `<url>; rel="next"` while more items follow; the next page is that URL as it '
        "is. Absent on the last page.",
        "schema": {"type": "string"},
    }
}


def paged_responses(description: str = "One page of the list") -> dict[int | str, dict[str, Any]]:
    """The 200 answer of a paged list as the OpenAPI documents declare it: the page, and its `Link` header."""
    return {200: {"description": description, "headers": LINK_HEADER}}


@dataclass
class Pager:
    """What a paged view was asked (`limit`, `cursor`) and where it says what follows (`Link`)."""

    limit: int
    cursor: str | None
    request: Request
    response: Response

    def after(self, name: str, *kinds: type) -> Key | None:
        """The key the cursor resumes after, if one was given; a 422 naming `cursor` if it holds no place of the
        list `name` (parts of `kinds`)."""
        if self.cursor is None:
            return None
        try:
            return decode_cursor(self.cursor, name, kinds)
        except BadCursor as exc:
            raise RequestValidationError(
                [{"loc": ("query", "cursor"), "type": "value_error", "msg": f"{exc}; start again without a cursor"}]
            ) from None

    def link(self, name: str, page: Sequence[T], more: bool, key_of: Callable[[T], Key]) -> list[T]:
        """The page of the list `name`, with the `Link` to the next one set when `more` items follow."""
        if more and page:
            self.response.headers["Link"] = next_link(str(self.request.url), encode_cursor(name, key_of(page[-1])))
        return list(page)


def pager(default: int, maximum: int) -> Any:
    """The `limit` and `cursor` query parameters of a list (`limit` from 1 to `maximum`), as a `Pager`."""

    async def dependency(
        request: Request,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=maximum, description=f"Items on a page, at most {maximum}.")] = default,
        cursor: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_CURSOR_LENGTH,
                pattern=CURSOR_PATTERN,
                description='Where the page starts: taken as it is from the `Link: <...>; rel="next"` header of the '
                "page before. Leave it out for the first page.",
            ),
        ] = None,
    ) -> Pager:
        return Pager(limit, cursor, request, response)

    return Depends(dependency)
