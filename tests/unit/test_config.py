"""The shipped configuration loads and is consistent.

A defective file fails with one ConfigError naming the file, the entry and the field.
"""

import itertools
import re
import shutil
from pathlib import Path

import pytest
import yaml

from libs.config import ConfigError, load_city
from libs.kinds import Category
from services.router.rules import load_routing_book

CONFIG = Path(__file__).resolve().parents[2] / "config"
DURATION = re.compile(r"^[1-9][0-9]*(h|m|s|wd)$")
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def book():
    return load_routing_book(CONFIG)


# ---------------------------------------------------------------- the shipped config


def test_shipped_config_loads(book):
    assert book.city.name == "Shenzhen"
    assert book.routing.rules and book.policies.policies and book.sla.profiles


def test_shipped_config_loads_from_relative_path(monkeypatch):
    monkeypatch.chdir(CONFIG.parent)
    assert load_routing_book(Path("config")).city.coordinating_office == "coord"


def test_every_category_is_covered(book):
    covered = {c for rule in book.routing.rules for c in rule.match.categories}
    assert covered == set(Category)


def test_every_category_has_a_general_rule(book):
    """Each category has an unconditional rule, so no appeal of a known category falls to the fallback."""
    general = {
        c
        for r in book.routing.rules
        if not (r.match.keywords or r.match.flags or r.match.districts or r.match.size_bands)
        for c in r.match.categories
    }
    assert general == set(Category)


def test_rule_ids_are_unique(book):
    ids = [r.id for r in book.routing.rules]
    assert len(ids) == len(set(ids))


def test_every_referenced_department_exists(book):
    city = book.city
    referenced = {city.coordinating_office}
    for rule in book.routing.rules:
        referenced |= {rule.lead, *rule.cohandlers}
    referenced |= {d.counterpart_of for d in city.departments if d.counterpart_of}
    assert {code for code in referenced if city.department(code) is None} == set()


def test_rule_leads_are_municipal(book):
    for rule in book.routing.rules:
        for code in (rule.lead, *rule.cohandlers):
            assert book.city.department(code).level == "municipal", (rule.id, code)


def test_departments(book):
    city = book.city
    codes = [d.code for d in city.departments]
    assert len(codes) == len(set(codes))
    assert {d.code for d in city.districts} == {"nanshan", "futian", "baoan"}
    for code in [
        "finance",
        "hrss",
        "tax",
        "sti",
        "commerce",
        "customs",
        "mii",
        "justice",
        "insurance",
        "approvals",
        "coord",
    ]:
        assert city.department(code).level == "municipal"
    for district in ["nanshan", "futian", "baoan"]:
        for code in ["finance", "hrss", "tax", "mii", "approvals"]:
            counterpart = city.counterpart(code, district)
            assert counterpart == f"{district}-{code}"
            dept = city.department(counterpart)
            assert (dept.level, dept.district, dept.counterpart_of) == ("district", district, code)


def test_department_contacts_are_fictitious(book):
    for dept in book.city.departments:
        assert re.fullmatch(r"[a-z][a-z0-9-]*", dept.code)
        for role in ("handler", "head", "supervisor"):
            person = getattr(dept, role)
            assert person is not None, (dept.code, role)
            assert person.email.endswith("@example.org"), (dept.code, role)
            assert re.fullmatch(r"1380000[0-9]{4}", person.phone), (dept.code, role)
            assert person.wechat_openid.startswith("o-demo-"), (dept.code, role)


def test_size_bands(book):
    city = book.city
    assert [b.code for b in city.size_bands] == ["micro", "small", "medium", "large"]
    assert [city.size_band(n) for n in (0, 29, 30, 100, 101, 300, 301, 100_000)] == [
        "micro",
        "micro",
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]
    assert city.size_bands[0].label == "fewer than 30 employees"
    bands = city.size_bands
    for lower, upper in itertools.pairwise(bands):
        assert upper.min_employees == lower.max_employees + 1
    assert bands[-1].max_employees is None


def test_sla_profiles(book):
    profiles = book.sla.profiles
    assert {"standard_72h", "policy_24h", "priority_48h", "coordinated_72h", "test_fast"} <= set(profiles)
    for name, p in profiles.items():
        for value in (p.scope, p.response, p.response_with_cohandlers, p.resolution):
            assert value is None or DURATION.match(value), (name, value)
    assert (
        profiles["standard_72h"].scope,
        profiles["standard_72h"].response,
        profiles["standard_72h"].response_with_cohandlers,
        profiles["standard_72h"].resolution,
    ) == ("6h", "3wd", "5wd", "72h")
    assert profiles["policy_24h"].resolution == "24h"
    assert profiles["priority_48h"].resolution == "48h"
    assert (profiles["coordinated_72h"].response, profiles["coordinated_72h"].resolution) == ("5wd", "72h")
    fast = profiles["test_fast"]
    assert (fast.scope, fast.response, fast.resolution) == ("4s", "8s", "12s")
    assert [s.profile for s in book.sla.selection] == ["policy_24h", "priority_48h", "coordinated_72h", "standard_72h"]


def test_policies(book):
    ids = [p.id for p in book.policies.policies]
    assert len(ids) == len(set(ids))
    for expected in [
        "vat-small-scale-taxpayers",
        "social-insurance-exemption-smes",
        "deferred-repayment",
        "preferential-rate-loans-resumption",
        "free-online-legal-aid-smes",
        "free-lawyer-volunteer-service",
        "liability-insurance-extension",
        "fast-claim-settlement",
        "epidemic-supplies-48h-approval",
        "emergency-fund-turnover-pool",
        "enterprise-micro-lectures",
        "labour-relations-consultation",
        "free-online-operations-software",
        "export-credit-insurance",
        "customs-fast-clearance",
    ]:
        assert expected in ids
    for p in book.policies.policies:
        assert p.url == f"https://policies.example.org/{p.id}"
        assert p.title_zh and HAN.search(p.title_zh)
        assert any(HAN.search(k) for k in p.keywords), p.id
        assert any(re.search(r"[a-z]", k, re.IGNORECASE) for k in p.keywords), p.id
        assert all(len(k) >= 2 for k in p.keywords), p.id
    approval = next(p for p in book.policies.policies if p.id == "epidemic-supplies-48h-approval")
    assert approval.flags == ["epidemic_supplies"]
    assert set(approval.categories) == {"approvals", "materials"}


# ---------------------------------------------------------------- defective files


@pytest.fixture
def config_copy(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target)
    return target


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _error(config_dir: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_routing_book(config_dir)
    return str(info.value)


def test_unknown_lead_department(config_copy):
    path = config_copy / "routing.yaml"
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]
    rule_id = rules[3]["id"]
    _edit(path, lambda d: d["rules"][3].update(lead="no-such-dept"))
    message = _error(config_copy)
    assert str(path) in message
    assert f"rules[3] ({rule_id})" in message
    assert "lead" in message and "no-such-dept" in message


def test_unknown_cohandler_department(config_copy):
    path = config_copy / "routing.yaml"
    _edit(path, lambda d: d["rules"][0].update(cohandlers=["mii", "ghost"]))
    message = _error(config_copy)
    assert str(path) in message and "rules[0] (epidemic-supplies-approval)" in message
    assert "cohandlers" in message and "ghost" in message


def test_unknown_district_on_department(config_copy):
    path = config_copy / "city.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    index = next(i for i, d in enumerate(data["departments"]) if d["code"] == "futian-hrss")
    _edit(path, lambda d: d["departments"][index].update(district="luohu"))
    message = _error(config_copy)
    assert str(path) in message
    assert f"departments[{index}] (futian-hrss)" in message
    assert "district" in message and "luohu" in message


def test_missing_required_field(config_copy):
    path = config_copy / "routing.yaml"
    rule_id = yaml.safe_load(path.read_text(encoding="utf-8"))["rules"][3]["id"]
    _edit(path, lambda d: d["rules"][3].pop("lead"))
    message = _error(config_copy)
    assert str(path) in message
    assert f"rules[3] ({rule_id}).lead" in message
    assert "required" in message.lower()


def test_missing_required_field_in_city(config_copy):
    path = config_copy / "city.yaml"
    _edit(path, lambda d: d["departments"][1].pop("level"))
    message = _error(config_copy)
    assert str(path) in message and "departments[1] (finance).level" in message


def test_unknown_field_is_rejected(config_copy):
    path = config_copy / "policies.yaml"
    _edit(path, lambda d: d["policies"][0].update(keyword=["typo"]))
    message = _error(config_copy)
    assert str(path) in message and "policies[0] (vat-small-scale-taxpayers).keyword" in message


def test_unknown_category(config_copy):
    path = config_copy / "routing.yaml"
    _edit(path, lambda d: d["rules"][1]["match"].update(categories=["financing", "banking"]))
    message = _error(config_copy)
    assert str(path) in message and "rules[1] (financing-insurance-claim).match.categories[1]" in message


def test_duplicate_rule_id(config_copy):
    path = config_copy / "routing.yaml"
    first = yaml.safe_load(path.read_text(encoding="utf-8"))["rules"][0]["id"]
    _edit(path, lambda d: d["rules"][3].update(id=first))
    message = _error(config_copy)
    assert str(path) in message
    assert f"rules[3] ({first})" in message
    assert "id" in message and "duplicate" in message


def test_duplicate_department_code(config_copy):
    path = config_copy / "city.yaml"
    _edit(path, lambda d: d["departments"][2].update(code="finance"))
    message = _error(config_copy)
    assert str(path) in message and "(finance)" in message and "code" in message and "duplicate" in message


def test_uncovered_category(config_copy):
    path = config_copy / "routing.yaml"
    _edit(path, lambda d: d.update(rules=[r for r in d["rules"] if "other" not in r["match"]["categories"]]))
    message = _error(config_copy)
    assert str(path) in message and "match.categories" in message and "other" in message


def test_unknown_sla_profile_in_rule(config_copy):
    path = config_copy / "routing.yaml"
    _edit(path, lambda d: d["rules"][2].update(sla_profile="instant"))
    message = _error(config_copy)
    assert str(path) in message and "rules[2]" in message
    assert "sla_profile" in message and "instant" in message


def test_selection_without_default(config_copy):
    path = config_copy / "sla_profiles.yaml"
    _edit(path, lambda d: d["selection"].pop())
    message = _error(config_copy)
    assert str(path) in message and "selection" in message


def test_bad_yaml(config_copy):
    path = config_copy / "policies.yaml"
    path.write_text("policies:\n  - id: broken\n    title: [unclosed\n", encoding="utf-8")
    message = _error(config_copy)
    assert str(path) in message
    assert "not valid YAML" in message and "line" in message


def test_missing_file(config_copy):
    (config_copy / "sla_profiles.yaml").unlink()
    message = _error(config_copy)
    assert str(config_copy / "sla_profiles.yaml") in message and "not found" in message


def test_city_alone_reports_its_file(config_copy):
    path = config_copy / "city.yaml"
    _edit(path, lambda d: d.update(coordinating_office="nobody"))
    with pytest.raises(ConfigError) as info:
        load_city(config_copy)
    assert str(path) in str(info.value) and "coordinating_office" in str(info.value)
