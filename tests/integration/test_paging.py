"""Lists paged by their `Link` header on the real broker and database: a queue growing between two pages loses and
shows twice nothing of its order by submission; the last page has no next link; `limit` and `cursor` are checked."""

import asyncio
import time
from datetime import datetime

import pytest

from libs.paging import encode_cursor
from tests.helpers import appeal_body

# A corner of the city the other tests leave alone, so that the pages hold few appeals besides these.
CORNER = {"category": "customs", "district": "futian"}


async def submit_routed(p, count: int) -> list[str]:
    """Submit `count` appeals in the corner, one after another; their ids once router holds each of them."""
    ids = []
    for _ in range(count):
        body = appeal_body(category=CORNER["category"], enterprise={"district": CORNER["district"]})
        answer = await p.intake.post("/v1/appeals", json=body, headers=p.key("channel:wechat"))
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["appeal_id"])
    deadline = time.monotonic() + 30
    for appeal_id in ids:
        while (await p.router.get(f"/v1/appeals/{appeal_id}", headers=p.key("operator"))).status_code != 200:
            assert time.monotonic() < deadline, f"router never held {appeal_id}"
            await asyncio.sleep(0.1)
    return ids


async def follow(p, url: str, params: dict | None, key: str, between=None) -> tuple[list[dict], list]:
    """Every row of a list, page after page by its `Link` header (calling `between` after each page but the last);
    and the answers, the last one last."""
    rows, answers = [], []
    while url:
        answer = await p.router.get(url, params=params, headers=p.key(key))
        assert answer.status_code == 200, answer.text
        answers.append(answer)
        rows += answer.json()
        url, params = answer.links.get("next", {}).get("url"), None
        if url and between is not None:
            await between()
    return rows, answers


def in_submission_order(rows: list[dict]) -> bool:
    keys = [(datetime.fromisoformat(r["submitted_at"]), r["appeal_id"]) for r in rows]
    return keys == sorted(keys)


async def test_the_city_queue_growing_between_pages_loses_and_doubles_nothing(platform):
    p = platform
    before = await submit_routed(p, 5)
    added: list[str] = []

    async def grow() -> None:
        if len(added) < 6:
            added.extend(await submit_routed(p, 3))

    rows, answers = await follow(p, "/v1/appeals", {**CORNER, "limit": 2}, "department:coord", between=grow)
    ids = [r["appeal_id"] for r in rows]
    assert len(ids) == len(set(ids)), "no appeal on two pages"
    assert set(before) <= set(ids), "none there before the first page was lost"
    assert set(added) <= set(ids), "those submitted meanwhile come later in the order, on the pages still to read"
    assert in_submission_order(rows)
    assert len(answers) >= 5 and all("link" in a.headers for a in answers[:-1])
    assert "link" not in answers[-1].headers, "the last page has no next link"
    # The next link keeps the filters and the limit; nothing else is needed to follow it.
    assert "category=customs" in answers[0].links["next"]["url"] and "limit=2" in answers[0].links["next"]["url"]


async def test_a_department_s_worklist_pages_in_submission_order_and_its_last_page_is_whole(platform):
    p = platform
    ids = await submit_routed(p, 3)
    lead = (await p.router.get(f"/v1/appeals/{ids[0]}", headers=p.key("operator"))).json()["lead"]
    everything = await p.router.get(
        f"/v1/departments/{lead}/appeals", params={"limit": 1000}, headers=p.key("operator")
    )
    whole = everything.json()
    assert "link" not in everything.headers and len(whole) < 1000
    rows, answers = await follow(p, f"/v1/departments/{lead}/appeals", {"limit": 2}, f"department:{lead}")
    assert [r["appeal_id"] for r in rows] == [r["appeal_id"] for r in whole], "the pages make the whole list"
    assert set(ids) <= {r["appeal_id"] for r in rows} and in_submission_order(rows)
    assert all(len(a.json()) == 2 for a in answers[:-1]) and 1 <= len(answers[-1].json()) <= 2


@pytest.mark.parametrize(
    ("path", "maximum"),
    [("/v1/appeals", 500), ("/v1/departments/customs/appeals", 1000), ("/v1/return-visits", 500)],
)
async def test_limit_is_bounded_and_a_foreign_or_broken_cursor_is_a_422_naming_it(platform, path, maximum):
    p = platform
    operator = p.key("operator")
    for limit in (0, maximum + 1):
        answer = await p.router.get(path, params={"limit": limit}, headers=operator)
        assert answer.status_code == 422 and [e["field"] for e in answer.json()["errors"]] == ["limit"], answer.text
    assert (await p.router.get(path, params={"limit": maximum}, headers=operator)).status_code == 200
    for cursor in ("not-a-cursor", encode_cursor("deliveries", (datetime.now().astimezone(), "x")), "%%"):
        answer = await p.router.get(path, params={"cursor": cursor}, headers=operator)
        assert answer.status_code == 422 and [e["field"] for e in answer.json()["errors"]] == ["cursor"], answer.text
        assert answer.headers["content-type"] == "application/problem+json"
