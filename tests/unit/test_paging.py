"""The keyset cursors and pages every list uses (libs/paging.py): pure functions, and their 422 in a view."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI

from libs.http import install_problem_handlers
from libs.paging import (
    BadCursor,
    Pager,
    bound,
    decode_cursor,
    encode_cursor,
    next_link,
    page_of,
    pager,
    read_page,
)

T0 = datetime(2026, 3, 4, 9, 30, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "kinds"),
    [
        ((T0, "01J9ZK3A7C"), (datetime, str)),
        ((T0.astimezone(UTC) + timedelta(hours=3), "a:b:c"), (datetime, str)),
        ((None, "no-due-time"), (datetime, str)),
        ((3, "rule-4"), (int, str)),
        (("shenzhen",), (str,)),
    ],
)
def test_a_cursor_gives_back_the_key_it_was_made_of(key, kinds):
    cursor = encode_cursor("queue", key)
    assert decode_cursor(cursor, "queue", kinds) == key
    assert cursor.isascii() and "=" not in cursor and "+" not in cursor and "/" not in cursor, "safe in a URL as is"


def test_a_cursor_keeps_the_time_s_zone_and_microseconds():
    local = datetime(2026, 3, 4, 17, 30, 0, 456789, tzinfo=UTC).astimezone()
    [restored, _] = decode_cursor(encode_cursor("x", (local, "id")), "x", (datetime, str))
    assert restored == local and restored.tzinfo is not None


def tampered(cursor: str) -> list[str]:
    """The cursor with one character changed at each end and in the middle, cut short, and lengthened."""
    flip = {c: ("A" if c != "A" else "B") for c in cursor}
    out = [cursor[:i] + flip[cursor[i]] + cursor[i + 1 :] for i in (0, len(cursor) // 2, len(cursor) - 1)]
    return [*out, cursor[:-3], cursor + "AAAA", ""]


def test_a_tampered_cursor_is_refused():
    cursor = encode_cursor("worklist", (T0, "01J9ZK3A7C"))
    for wrong in tampered(cursor):
        with pytest.raises(BadCursor):
            decode_cursor(wrong, "worklist", (datetime, str))


@pytest.mark.parametrize("wrong", ["not base64!", "%%%", "A" * 600, "eyJ0IjoxfQ"])
def test_a_cursor_the_services_never_issued_is_refused(wrong):
    with pytest.raises(BadCursor):
        decode_cursor(wrong, "worklist", (datetime, str))


def test_a_cursor_of_another_list_or_holding_another_kind_of_place_is_refused():
    cursor = encode_cursor("worklist", (T0, "a"))
    with pytest.raises(BadCursor, match="another list"):
        decode_cursor(cursor, "queue", (datetime, str))
    for kinds in ((datetime, str, str), (int, str), (datetime, int)):
        with pytest.raises(BadCursor, match="does not hold a place"):
            decode_cursor(cursor, "worklist", kinds)
    with pytest.raises(BadCursor):
        decode_cursor(encode_cursor("rules", (True, "a")), "rules", (int, str))
    with pytest.raises(BadCursor):
        decode_cursor(encode_cursor("rules", (1, None)), "rules", (int, str))


def test_a_naive_time_makes_no_cursor():
    with pytest.raises(ValueError):
        encode_cursor("x", (datetime(2026, 1, 1), "a"))


def key(item):
    return (item["at"], item["_id"])


def items(*pairs):
    return [{"at": T0 + timedelta(seconds=s), "_id": i} for s, i in pairs]


def test_pages_follow_one_another_without_a_gap_or_a_repeat():
    listed = items(*[(n // 3, f"a{n:02d}") for n in range(10)])  # three at each second: ties broken by id
    seen, after = [], None
    while True:
        page, more = page_of(listed, key, after, 4)
        seen += page
        if not more:
            break
        after = key(page[-1])
    assert seen == listed
    assert page_of(listed, key, key(listed[-1]), 4) == ([], False)


def test_the_last_page_says_nothing_follows_even_when_full():
    listed = items((1, "a"), (2, "b"))
    assert page_of(listed, key, None, 2) == (listed, False)
    assert page_of(listed, key, None, 1) == (listed[:1], True)


def test_items_added_before_the_cursor_do_not_shift_the_next_page():
    listed = items((1, "a"), (2, "b"), (3, "c"), (4, "d"))
    first, _ = page_of(listed, key, None, 2)
    grown = sorted([*listed, *items((0, "early"), (2, "a-tie-before"), (2, "c-tie-after"))], key=key)
    second, _ = page_of(grown, key, key(first[-1]), 2)
    assert [i["_id"] for i in second] == ["c-tie-after", "c"]


async def stream(listed):
    for item in listed:
        yield item


async def test_read_page_puts_ties_on_the_first_field_in_order_by_id():
    # As a database sorted on `at` alone hands them: the same second in any order.
    shuffled = items((1, "c"), (1, "a"), (1, "b"), (2, "e"), (2, "d"), (3, "f"))
    page, more = await read_page(stream(shuffled), key, None, 2)
    assert ([i["_id"] for i in page], more) == (["a", "b"], True)
    page, more = await read_page(stream(shuffled), key, key(page[-1]), 2)
    assert ([i["_id"] for i in page], more) == (["c", "d"], True)
    page, more = await read_page(stream(shuffled), key, key(page[-1]), 2)
    assert ([i["_id"] for i in page], more) == (["e", "f"], False)


async def test_read_page_newest_first():
    newest_first = items((3, "f"), (2, "d"), (2, "e"), (1, "a"))
    page, more = await read_page(stream(newest_first), key, None, 2, descending=True)
    assert ([i["_id"] for i in page], more) == (["f", "e"], True)
    page, more = await read_page(stream(newest_first), key, key(page[-1]), 2, descending=True)
    assert ([i["_id"] for i in page], more) == (["d", "a"], False)


async def test_read_page_skips_an_offset_after_the_cursor():
    listed = items((1, "a"), (2, "b"), (3, "c"), (4, "d"))
    page, more = await read_page(stream(listed), key, key(listed[0]), 1, skip=1)
    assert ([i["_id"] for i in page], more) == (["c"], True)


def test_the_query_starts_at_the_cursor_s_time_and_holds_its_ties():
    assert bound("submitted_at", None) == {}
    assert bound("submitted_at", (T0, "a")) == {"submitted_at": {"$gte": T0}}
    assert bound("at", (T0, "a"), descending=True) == {"at": {"$lte": T0}}


def test_the_next_link_keeps_the_filters_and_drops_an_offset():
    link = next_link("http://router:8002/v1/appeals?state=overdue&limit=2&offset=40&cursor=old", "NEW")
    assert link == '<http://router:8002/v1/appeals?state=overdue&limit=2&cursor=NEW>; rel="next"'


def paged_app():
    app = FastAPI()
    install_problem_handlers(app)
    listed = items(*[(n, f"a{n}") for n in range(5)])

    @app.get("/things")
    async def things(page: Annotated[Pager, pager(default=2, maximum=3)]) -> list[str]:
        chosen, more = page_of(listed, key, page.after("things", datetime, str), page.limit)
        return [i["_id"] for i in page.link("things", chosen, more, key)]

    return app


async def test_a_view_pages_by_its_link_header_until_the_last_page():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(paged_app()), base_url="http://svc") as client:
        seen, url = [], "/things?limit=2"
        while url:
            answer = await client.get(url)
            assert answer.status_code == 200
            seen += answer.json()
            url = answer.links.get("next", {}).get("url")
        assert seen == [f"a{n}" for n in range(5)]
        last = await client.get(
            "/things", params={"limit": 3, "cursor": encode_cursor("things", key(items((1, "a1"))[0]))}
        )
        assert last.json() == ["a2", "a3", "a4"] and "link" not in last.headers


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": encode_cursor("things", (T0, "a"))[:-2] + "zz"},
        {"cursor": encode_cursor("other", (T0, "a"))},
        {"cursor": "***"},
        {"cursor": ""},
    ],
    ids=["tampered", "another-list", "not-base64", "empty"],
)
async def test_a_malformed_cursor_is_a_422_naming_the_cursor(params):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(paged_app()), base_url="http://svc") as client:
        answer = await client.get("/things", params=params)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["cursor"]


@pytest.mark.parametrize("limit", [0, 4, -1])
async def test_a_limit_out_of_bounds_is_a_422_naming_the_limit(limit):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(paged_app()), base_url="http://svc") as client:
        answer = await client.get("/things", params={"limit": limit})
    assert answer.status_code == 422 and [e["field"] for e in answer.json()["errors"]] == ["limit"]
