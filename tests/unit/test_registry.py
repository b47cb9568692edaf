"""The enterprise registry's rules (services/router/registry.py): reading a list, what an import changes, flags."""

from datetime import UTC, date, datetime

import pytest

from libs.config import load_city, load_registry_config
from libs.events import AppealSubmitted, Contact, Enterprise
from libs.kinds import AppealStatus
from libs.settings import PROJECT_ROOT
from libs.uscc import check_character
from services.router import registry
from services.router.lifecycle import decide_admission, new_appeal
from services.router.rules import load_routing_book

CONFIG = PROJECT_ROOT / "config"
CITY = load_city(CONFIG)
REGISTRY = load_registry_config(CONFIG, CITY)
BOOK = load_routing_book(CONFIG)


def code(n: int) -> str:
    first17 = f"91440300MR{n:07d}"
    return first17 + check_character(first17)


def csv_file(*rows: str, header: str = "统一社会信用代码,企业名称,所在区,行业,联系电话,联络员") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def test_a_list_in_utf8_with_chinese_headers_and_a_bom_is_read_row_by_row():
    data = "\ufeff".encode() + csv_file(
        f"{code(1)},深圳市星河精密制造有限公司,nanshan,manufacturing,13800138001,zhou-min",
        f"{code(2).lower()},深圳市华创电子科技有限公司,,,,",
    )
    rows, refused = registry.read_list(data, CITY, REGISTRY)
    assert refused == []
    assert rows[0] == registry.ListedCompany(
        2, code(1), "深圳市星河精密制造有限公司", "nanshan", "manufacturing", "13800138001", "zhou-min"
    )
    assert rows[1].uscc == code(2) and rows[1].district is None and rows[1].line == 3


def test_bad_rows_are_refused_with_their_line_and_reason_and_the_good_ones_kept():
    bad = code(3)[:-1] + ("0" if code(3)[-1] != "0" else "1")
    data = csv_file(
        f"{code(1)},Good One,nanshan,,,",
        f"{bad},Wrong check character,,,,",
        "12345,Too short,,,,",
        f"{code(4)},,,,,",
        f"{code(5)},Somewhere else,atlantis,,,",
        f"{code(6)},Unknown liaison,,,,nobody",
        f"{code(1)},Good One again,,,,",
        f"{code(7)},Good Two,futian,,not a phone,",
    )
    rows, refused = registry.read_list(data, CITY, REGISTRY)
    assert [r.uscc for r in rows] == [code(1)]
    assert [(r.line, r.reason.split(" (")[0]) for r in refused] == [
        (3, "credit code check character does not match"),
        (4, "credit code must be 18 characters, got 5"),
        (5, "no company name"),
        (6, "unknown district 'atlantis'; known: baoan, futian, nanshan"),
        (7, "unknown liaison 'nobody'"),
        (8, "repeats the company of line 2"),
        (9, "phone is not a phone number"),
    ]


def test_a_file_that_cannot_be_read_imports_nothing_and_says_why():
    gbk = csv_file(f"{code(1)},深圳市星河精密制造有限公司,nanshan,,,").decode().encode("gbk")
    with pytest.raises(registry.UnreadableFile, match="not UTF-8 .*GBK"):
        registry.read_list(gbk, CITY, REGISTRY)
    with pytest.raises(registry.UnreadableFile, match=r"missing columns: name \(name or 企业名称\)"):
        registry.read_list(csv_file(f"{code(1)}", header="uscc"), CITY, REGISTRY)
    with pytest.raises(registry.UnreadableFile, match="empty"):
        registry.read_list(b"", CITY, REGISTRY)
    with pytest.raises(registry.UnreadableFile, match="field larger than field limit"):
        registry.read_list(csv_file(f"{code(1)},{'x' * 200_000},,,,"), CITY, REGISTRY)


def test_a_lone_carriage_return_ends_a_line_as_a_newline_does():
    """Found by schemathesis: the csv module refused a CR inside an unquoted field, a 500."""
    rows, refused = registry.read_list(csv_file(f"{code(1)},One,,,,\r{code(2)},Two,,,,"), CITY, REGISTRY)
    assert [r.uscc for r in rows] == [code(1), code(2)] and refused == []


def test_an_import_is_the_list_as_of_its_day_and_importing_it_again_changes_nothing():
    rows, _ = registry.read_list(csv_file(f"{code(1)},One,nanshan,,13800138001,", f"{code(2)},Two,,,,"), CITY, REGISTRY)
    first = registry.plan_import("key_sme", date(2026, 3, 1), rows, {}, "import")
    assert [(c.uscc, c.before) for c in first] == [(code(1), None), (code(2), None)]
    stored = {c.uscc: {**c.after, "version": 1} for c in first}
    assert stored[code(1)]["memberships"] == [
        {"list": "key_sme", "since": "2026-03-01", "until": None, "source": "import"}
    ]
    assert registry.plan_import("key_sme", date(2026, 3, 1), rows, stored, "import") == []

    # A month later the list no longer has company 2, and company 1 changed its name.
    later, _ = registry.read_list(csv_file(f"{code(1)},One Renamed,nanshan,,13800138001,"), CITY, REGISTRY)
    changes = {c.uscc: c for c in registry.plan_import("key_sme", date(2026, 4, 1), later, stored, "import")}
    assert changes[code(1)].fields == {"name": ("One", "One Renamed")}
    assert changes[code(2)].after["memberships"][0]["until"] == "2026-04-01"
    assert registry.lists_on(changes[code(2)].after, date(2026, 3, 31)) == ["key_sme"]
    assert registry.lists_on(changes[code(2)].after, date(2026, 4, 1)) == []


def test_only_list_memberships_give_flags_and_only_while_they_hold():
    company = {
        "memberships": [
            {"list": "key_sme", "since": "2026-03-01", "until": "2026-06-01"},
            {"list": "prevention_supplies", "since": "2026-05-01", "until": None},
        ]
    }
    assert registry.lists_on(company, date(2026, 2, 28)) == []
    assert registry.lists_on(company, date(2026, 5, 15)) == ["key_sme", "prevention_supplies"]
    assert registry.flags_of(registry.lists_on(company, date(2026, 6, 1)), REGISTRY) == {
        "epidemic_supplies": "prevention_supplies"
    }
    assert registry.lists_on(None, date(2026, 5, 15)) == []


def test_the_contact_phone_is_checked_against_the_registry_s():
    company = {"phones": ["+86 138-0013-8000"]}
    assert registry.phone_matches(company, "13800138000") is True
    assert registry.phone_matches(company, "13900139000") is False
    assert registry.phone_matches({"phones": []}, "13800138000") is None


def appeal(flags: list[str], at: datetime = datetime(2026, 5, 15, 2, tzinfo=UTC)) -> AppealSubmitted:
    # Working capital: a financing matter that no catalogue policy covers (no 24-hour policy target).
    return AppealSubmitted(
        appeal_id="01JB8X4R5ZJ6Q8V2Y7K9M3N4P5",
        channel="wechat",
        channel_ref="wx-1",
        category="operations",
        size_band="micro",
        flags=flags,
        title="Workshop lease",
        description="Our landlord wants to end the lease.",
        enterprise=Enterprise(uscc=code(1), name="One", employees=12, industry="manufacturing", district="nanshan"),
        contact=Contact(name="Li Wei", phone="13800138001"),
        submitted_at=at,
    )


def test_a_declared_flag_gets_the_normal_deadline_and_a_listed_company_the_fast_track():
    declared = new_appeal(appeal(["key_enterprise"]), BOOK, None)
    assert declared["flags"] == [] and declared["declared_flags"] == ["key_enterprise"]
    assert decide_admission(declared, BOOK).set["sla_profile"] == "standard_72h"

    listed_company = {
        "phones": ["13800138001"],
        "memberships": [{"list": "key_sme", "since": "2026-05-01", "until": None}],
    }
    listed = new_appeal(appeal([]), BOOK, listed_company)
    assert listed["flags"] == ["key_enterprise"] and listed["lists"] == ["key_sme"]
    assert listed["phone_verified"] is True
    admitted = decide_admission(listed, BOOK)
    assert admitted.set["sla_profile"] == "priority_48h"
    routed = next(e for e in admitted.emits if e.topic == "appeals.lifecycle.v1")
    assert routed.data.lists == ["key_sme"] and routed.data.flags == ["key_enterprise"]

    # Not retroactive: an appeal from before the company joined the list keeps the normal deadline.
    early = new_appeal(appeal([], at=datetime(2026, 4, 20, 2, tzinfo=UTC)), BOOK, listed_company)
    assert early["flags"] == [] and decide_admission(early, BOOK).set["sla_profile"] == "standard_72h"


def test_a_declared_litigation_still_makes_the_appeal_inadmissible():
    rejected = decide_admission(new_appeal(appeal(["in_litigation"]), BOOK, None), BOOK)
    assert rejected.set["status"] == AppealStatus.rejected.value
