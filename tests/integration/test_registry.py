"""The enterprise registry on the real broker and database: imports, edits, their events, and what routing sees."""

import itertools
import time

from libs.contract import ENTERPRISES
from libs.uscc import check_character
from tests.helpers import appeal_body, read_topic
from tests.integration.test_appeal_flow import submit, wait_status

_numbers = itertools.count(int(time.time()) % 1_000_000 * 10)
HEADER = "统一社会信用代码,企业名称,所在区,行业,联系电话,联络员"


def code() -> str:
    """A credit code of its own for each company of these tests."""
    first17 = f"91440300MQ{next(_numbers):07d}"
    return first17 + check_character(first17)


def listing(*rows: tuple[str, str]) -> bytes:
    """A government list: each company with a name, in Nanshan, with a phone and liaison zhou-min."""
    lines = [HEADER] + [f"{uscc},{name},nanshan,manufacturing,13800138000,zhou-min" for uscc, name in rows]
    return ("\n".join(lines) + "\n").encode()


async def import_list(p, data: bytes, list_id: str, as_of: str, key: str = "admin"):
    return await p.router.post(
        "/v1/enterprises/import",
        params={"list": list_id, "as_of": as_of},
        content=data,
        headers={**p.key(key), "Content-Type": "text/csv"},
    )


async def test_an_import_registers_the_companies_once_says_so_on_kafka_and_a_second_one_changes_nothing(platform):
    one, two = code(), code()
    data = listing((one, "深圳市测试一号制造有限公司"), (two, "深圳市测试二号制造有限公司"))
    first = await import_list(platform, data, "prevention_supplies", "2026-02-01")
    assert first.status_code == 200, first.text
    assert first.json() | {"refused": None} == {
        "list_id": "prevention_supplies",
        "as_of": "2026-02-01",
        "rows": 2,
        "registered": 2,
        "updated": 0,
        "ended": 0,
        "unchanged": 0,
        "refused": None,
    }
    again = (await import_list(platform, data, "prevention_supplies", "2026-02-01")).json()
    assert (again["registered"], again["updated"], again["unchanged"]) == (0, 0, 2)

    company = (await platform.router.get(f"/v1/enterprises/{one}", headers=platform.key("operator"))).json()
    assert company["lists_today"] == ["prevention_supplies"]
    assert company["flags_today"] == {"epidemic_supplies": "prevention_supplies"}
    assert company["liaison"] == "zhou-min" and company["phones"] == ["13800138000"]
    own = await platform.router.get(f"/v1/enterprises/{one}", headers=platform.key("liaison:zhou-min"))
    other = await platform.router.get(f"/v1/enterprises/{one}", headers=platform.key("liaison:he-jun"))
    assert own.status_code == 200 and other.status_code == 403
    assert (await platform.router.get(f"/v1/enterprises/{one}", headers=platform.key("channel:web"))).status_code == 403

    events = await read_topic(platform.bootstrap, ENTERPRISES, lambda e: e.get("subject") in (one, two), count=2)
    assert sorted((e["subject"], e["type"]) for e in events) == sorted(
        [(one, "enterprise.registered.v1"), (two, "enterprise.registered.v1")]
    ), "one event per change, no more"
    assert all("phones" not in e["data"] for e in events), "contact data stays in the registry"
    audit = (await platform.router.get(f"/v1/enterprises/{one}/audit", headers=platform.key("operator"))).json()
    assert [entry["action"] for entry in audit] == ["import of prevention_supplies as of 2026-02-01"]
    assert audit[0]["actor"] == "demo admin" and "memberships" in audit[0]["changes"]


async def test_a_company_added_to_a_list_gets_the_fast_track_on_its_next_appeal_not_before(platform):
    uscc = code()
    # Workshop leases are operations: no catalogue policy, so no 24-hour target comes first.
    facts = {
        "enterprise": {"uscc": uscc, "district": "nanshan"},
        "category": "operations",
        "title": "Workshop lease ends",
        "description": "The landlord ends the lease of our workshop.",
        "flags": ["key_enterprise"],
    }
    before = (await submit(platform, appeal_body(**facts))).json()["appeal_id"]
    doc = await wait_status(platform, before, "routed")
    assert doc["sla_profile"] == "standard_72h", "a flag the channel declares shortens nothing"
    assert doc["declared_flags"] == ["key_enterprise"] and doc["flags"] == [] and doc["lists"] == []

    assert (
        await import_list(platform, listing((uscc, "深圳市快车道制造有限公司")), "key_sme", "2026-01-01")
    ).status_code == 200
    after = (await submit(platform, appeal_body(**{**facts, "title": "Workshop lease ends again"}))).json()
    doc = await wait_status(platform, after["appeal_id"], "routed")
    assert doc["sla_profile"] == "priority_48h" and doc["lists"] == ["key_sme"] and doc["flags"] == ["key_enterprise"]
    assert doc["phone_verified"] is True, "the contact's phone is the registry's"
    routed = await read_topic(
        platform.bootstrap,
        "appeals.lifecycle.v1",
        lambda e: e.get("subject") == after["appeal_id"] and e["type"] == "appeal.routed.v1",
    )
    assert routed[0]["data"]["lists"] == ["key_sme"], "the lifecycle event carries the verified lists"
    assigned = await read_topic(
        platform.bootstrap, f"dept.{doc['lead']}.v1", lambda e: e.get("subject") == after["appeal_id"]
    )
    summary = assigned[0]["data"]["appeal"]
    assert summary["declared_flags"] == ["key_enterprise"] and summary["lists"] == ["key_sme"]
    history = (await platform.router.get(f"/v1/enterprises/{uscc}", headers=platform.key("operator"))).json()
    assert [a["appeal_id"] for a in history["appeals"]] == [after["appeal_id"], before]


async def test_a_file_that_cannot_be_read_imports_nothing_and_only_admins_import(platform):
    uscc = code()
    gbk = listing((uscc, "深圳市编码错误制造有限公司")).decode().encode("gbk")
    refused = await import_list(platform, gbk, "key_sme", "2026-01-01")
    assert refused.status_code == 422 and "not UTF-8" in refused.json()["detail"]
    assert (await platform.router.get(f"/v1/enterprises/{uscc}", headers=platform.key("operator"))).status_code == 404
    assert (
        await import_list(platform, listing((uscc, "x")), "key_sme", "2026-01-01", key="operator")
    ).status_code == 403
    assert (await import_list(platform, listing((uscc, "x")), "no_such_list", "2026-01-01")).status_code == 404


async def test_ten_thousand_companies_import_in_one_request(platform):
    rows = [(code(), f"深圳市批量{n:05d}制造有限公司") for n in range(10_000)]
    data = listing(*rows)
    assert len(data) > 1_000_000, "more than the 1 MB other requests may send"
    answer = await import_list(platform, data, "key_sme", "2026-03-01")
    assert answer.status_code == 200, answer.text
    assert answer.json()["registered"] == 10_000 and answer.json()["refused"] == []
    lists = {
        entry["id"]: entry
        for entry in (await platform.router.get("/v1/lists", headers=platform.key("operator"))).json()
    }
    assert lists["key_sme"]["members"] >= 10_000 and lists["key_sme"]["flag"] == "key_enterprise"
