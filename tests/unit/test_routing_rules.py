"""route(), rule_matches(), matching_policies() and select_profile() over the shipped configuration."""

from pathlib import Path

import pytest

from libs.kinds import Category
from services.router.rules import (
    AppealFacts,
    Rule,
    RuleMatch,
    load_routing_book,
    matching_policies,
    route,
    rule_matches,
    select_profile,
)

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def book():
    return load_routing_book(CONFIG)


def facts(
    category: str,
    *,
    district: str = "nanshan",
    size_band: str = "micro",
    title: str = "",
    description: str = "",
    flags: tuple[str, ...] = (),
) -> AppealFacts:
    return AppealFacts(
        category=category, district=district, size_band=size_band, title=title, description=description, flags=flags
    )


def rule(**match) -> Rule:
    return Rule(id="r", description="test rule", match=RuleMatch(**match), lead="finance")


# ---------------------------------------------------------------- route()


def test_nanshan_financing_goes_to_the_nanshan_counterpart(book):
    decision = route(
        book,
        facts(
            "financing", title="Bank loan", description="Staff could not come back after the holiday; we need a loan."
        ),
    )
    assert decision.lead == "nanshan-finance"
    assert decision.cohandlers == []
    assert decision.rule_id == "financing"
    assert any("nanshan-finance" in line for line in decision.explanation)


def test_overdue_loan_matches_deferred_repayment(book):
    decision = route(
        book,
        facts(
            "financing", title="Loan overdue", description="Employees could not return to work and our loan is overdue."
        ),
    )
    assert decision.lead == "nanshan-finance"
    assert [p.id for p in decision.policies] == ["deferred-repayment"]
    assert decision.sla_profile == "policy_24h"


def test_futian_vat_small_scale_taxpayer_gets_policy_24h(book):
    decision = route(
        book,
        facts(
            "tax",
            district="futian",
            title="VAT for a small-scale taxpayer",
            description="As a small-scale taxpayer, may we pay VAT at a lower rate?",
        ),
    )
    assert decision.lead == "futian-tax"
    assert decision.cohandlers == []
    assert [p.id for p in decision.policies] == ["vat-small-scale-taxpayers"]
    assert decision.policies[0].url == "https://policies.example.org/vat-small-scale-taxpayers"
    assert decision.policy_available
    assert decision.sla_profile == "policy_24h"


def test_epidemic_supplies_approval_gets_the_48h_policy(book):
    decision = route(
        book,
        facts(
            "approvals",
            district="baoan",
            title="Approval for a mask production line",
            description="We switched a line to medical masks and need a licence.",
            flags=("epidemic_supplies",),
        ),
    )
    assert decision.rule_id == "epidemic-supplies-approval"
    assert decision.lead == "baoan-approvals"
    assert decision.cohandlers == ["baoan-mii"]
    assert "epidemic-supplies-48h-approval" in [p.id for p in decision.policies]
    assert decision.sla_profile == "priority_48h"


def test_epidemic_supplies_materials_appeal(book):
    decision = route(
        book,
        facts(
            "materials",
            district="futian",
            title="Melt-blown fabric",
            description="Our production of protective suits is short of fabric.",
            flags=("epidemic_supplies", "key_enterprise"),
        ),
    )
    assert (decision.lead, decision.cohandlers) == ("futian-approvals", ["futian-mii"])
    assert [p.id for p in decision.policies] == ["epidemic-supplies-48h-approval"]
    assert decision.sla_profile == "priority_48h"


def test_approvals_without_the_flag_do_not_get_the_48h_policy(book):
    decision = route(
        book,
        facts("approvals", title="Approval for a new production line", description="We need a production licence."),
    )
    assert decision.rule_id == "approvals"
    assert decision.lead == "nanshan-approvals"
    assert decision.policies == []
    assert decision.sla_profile == "standard_72h"


def test_key_enterprise_without_policy_gets_priority_48h(book):
    decision = route(
        book,
        facts(
            "trade",
            size_band="large",
            title="Certificate of origin",
            description="Our overseas partner asks for documents we have never issued.",
            flags=("key_enterprise",),
        ),
    )
    assert decision.lead == "commerce"  # no district counterpart of commerce
    assert decision.policies == []
    assert decision.sla_profile == "priority_48h"


def test_category_other_goes_to_coord(book):
    decision = route(
        book,
        facts(
            "other",
            district="futian",
            title="Where do we ask?",
            description="Nobody seems to be responsible for our question.",
        ),
    )
    assert decision.lead == "coord"
    assert decision.rule_id == "other"
    assert decision.sla_profile == "standard_72h"


def test_excluded_lead_sends_to_coord(book):
    decision = route(
        book, facts("financing", title="Bank loan", description="We need a loan."), exclude={"nanshan-finance"}
    )
    assert decision.lead == "coord"
    assert decision.rule_id == "financing"
    assert any("declined" in line for line in decision.explanation)


def test_excluded_lead_keeps_cohandlers(book):
    decision = route(
        book,
        facts(
            "export",
            district="futian",
            title="Goods held at customs",
            description="Our export shipment waits for customs clearance.",
        ),
        exclude={"commerce"},
    )
    assert decision.lead == "coord"
    assert decision.cohandlers == ["customs"]


def test_export_with_customs_keywords_adds_customs(book):
    decision = route(
        book,
        facts(
            "export",
            title="Shipment held at customs",
            description="The customs declaration for our export order is stuck.",
        ),
    )
    assert decision.rule_id == "export-customs-clearance"
    assert (decision.lead, decision.cohandlers) == ("commerce", ["customs"])
    assert "customs-fast-clearance" in [p.id for p in decision.policies]
    assert decision.sla_profile == "coordinated_72h"


def test_plain_export_has_no_cohandler(book):
    decision = route(book, facts("export", title="Orders", description="Our European orders fell by half."))
    assert (decision.rule_id, decision.lead, decision.cohandlers) == ("export", "commerce", [])
    assert decision.sla_profile == "standard_72h"


def test_financing_insurance_claim_adds_insurance_cohandler(book):
    decision = route(
        book,
        facts(
            "financing",
            district="baoan",
            title="Cash flow",
            description="Our insurance claim for flooded stock is pending for weeks.",
        ),
    )
    assert decision.rule_id == "financing-insurance-claim"
    assert (decision.lead, decision.cohandlers) == ("baoan-finance", ["insurance"])
    assert [p.id for p in decision.policies] == ["fast-claim-settlement"]
    assert decision.sla_profile == "coordinated_72h"


def test_district_without_counterpart_keeps_municipal_lead(book):
    decision = route(
        book,
        facts(
            "legal",
            district="futian",
            title="Supplier contract",
            description="A supplier cancelled a contract citing force majeure.",
        ),
    )
    assert decision.lead == "justice"
    assert [p.id for p in decision.policies] == ["free-lawyer-volunteer-service"]


def test_chinese_keywords_match(book):
    decision = route(
        book,
        facts(
            "financing", district="futian", title="贷款到期", description="受疫情影响员工无法返岗，申请延期还本付息。"
        ),
    )
    assert decision.lead == "futian-finance"
    assert [p.id for p in decision.policies] == ["deferred-repayment"]
    assert decision.sla_profile == "policy_24h"


def test_chinese_keywords_pick_a_specific_rule(book):
    decision = route(book, facts("export", district="baoan", title="出口货物", description="货物在海关报关时被退回"))
    assert decision.rule_id == "export-customs-clearance"
    assert decision.cohandlers == ["customs"]
    assert "customs-fast-clearance" in [p.id for p in decision.policies]


def test_chinese_vat_appeal(book):
    decision = route(
        book, facts("tax", district="futian", title="增值税", description="我们是小规模纳税人，想了解减征政策")
    )
    assert [p.id for p in decision.policies] == ["vat-small-scale-taxpayers"]
    assert decision.sla_profile == "policy_24h"


@pytest.mark.parametrize("category", [c.value for c in Category])
def test_every_category_routes_to_a_rule(book, category):
    decision = route(book, facts(category, district="baoan", title="Help", description="We need help."))
    assert decision.rule_id is not None
    assert book.city.department(decision.lead) is not None


# ---------------------------------------------------------------- rule_matches()


def test_rule_matches_every_condition():
    r = rule(
        categories=["financing"],
        districts=["nanshan"],
        size_bands=["micro", "small"],
        flags=["key_enterprise"],
        keywords=["loan"],
    )
    ok = facts("financing", title="A LOAN", flags=("key_enterprise",))
    assert rule_matches(r, ok)
    assert not rule_matches(r, facts("tax", title="a loan", flags=("key_enterprise",)))
    key = ("key_enterprise",)
    assert not rule_matches(r, facts("financing", district="futian", title="a loan", flags=key))
    assert not rule_matches(r, facts("financing", size_band="large", title="a loan", flags=key))
    assert not rule_matches(r, facts("financing", title="a loan"))
    assert not rule_matches(r, facts("financing", title="a grant", flags=("key_enterprise",)))


def test_rule_keywords_search_description_too():
    r = rule(keywords=["缓缴", "deferral"])
    assert rule_matches(r, facts("tax", description="申请缓缴税款"))
    assert rule_matches(r, facts("tax", description="Tax DEFERRAL please"))
    assert not rule_matches(r, facts("tax", description="nothing relevant"))


def test_empty_match_matches_everything():
    assert rule_matches(rule(), facts("other"))


def test_shipped_specific_rule(book):
    r = next(x for x in book.routing.rules if x.id == "epidemic-supplies-approval")
    assert rule_matches(r, facts("materials", flags=("epidemic_supplies",)))
    assert not rule_matches(r, facts("materials"))
    assert not rule_matches(r, facts("financing", flags=("epidemic_supplies",)))


# ---------------------------------------------------------------- matching_policies()


@pytest.mark.parametrize("category", [c.value for c in Category])
def test_generic_appeal_matches_no_policy(book, category):
    generic = facts(
        category,
        title="Difficulties after the holiday",
        description="Our enterprise has difficulties resuming work; please help our business.",
    )
    assert matching_policies(book.policies, generic) == []


def test_policies_are_limited_to_their_categories(book):
    text = {"title": "Small-scale taxpayer", "description": "VAT reduction for a small-scale taxpayer"}
    matched = matching_policies(book.policies, facts("tax", **text))
    assert [p.id for p in matched] == ["vat-small-scale-taxpayers"]
    assert matching_policies(book.policies, facts("legal", **text)) == []


def test_flagged_policy_needs_the_flag(book):
    appeal = {"title": "Working capital", "description": "We need a bridge loan for working capital"}
    without = [p.id for p in matching_policies(book.policies, facts("financing", **appeal))]
    flagged = facts("financing", flags=("epidemic_supplies",), **appeal)
    with_flag = [p.id for p in matching_policies(book.policies, flagged)]
    assert "emergency-fund-turnover-pool" not in without
    assert "emergency-fund-turnover-pool" in with_flag


def test_policy_keywords_in_chinese(book):
    cases = {
        ("social_security", "申请减免社保费"): "social-insurance-exemption-smes",
        ("legal", "需要法律援助"): "free-online-legal-aid-smes",
        ("insurance", "安全生产责任险即将到期"): "liability-insurance-extension",
        ("operations", "希望免费使用财务软件"): "free-online-operations-software",
        ("labour", "停工停产期间工资如何发放，劳动关系如何处理"): "labour-relations-consultation",
    }
    for (category, text), expected in cases.items():
        matched = matching_policies(book.policies, facts(category, description=text))
        assert [p.id for p in matched] == [expected]


def test_policy_keywords_in_english(book):
    cases = {
        ("insurance", "Our liability insurance period ends in the lockdown"): "liability-insurance-extension",
        ("labour", "Can we join the online training micro-lecture series?"): "enterprise-micro-lectures",
        (
            "financing",
            "Is there a preferential rate loan for resuming production?",
        ): "preferential-rate-loans-resumption",
        ("legal", "We need a lawyer for a supplier issue"): "free-lawyer-volunteer-service",
        ("export", "Buyer cancelled; does export credit insurance cover it?"): "export-credit-insurance",
    }
    for (category, text), expected in cases.items():
        matched = matching_policies(book.policies, facts(category, description=text))
        assert [p.id for p in matched] == [expected]


def test_vat_keyword_does_not_match_innovation(book):
    appeal = facts("tax", description="Tax treatment of our innovation grant")
    assert matching_policies(book.policies, appeal) == []


# ---------------------------------------------------------------- select_profile()


@pytest.mark.parametrize(
    ("flags", "policy", "cohandlers", "expected"),
    [
        ((), True, False, "policy_24h"),
        (("key_enterprise",), True, False, "policy_24h"),
        (("key_enterprise",), False, False, "priority_48h"),
        (("epidemic_supplies",), True, True, "priority_48h"),
        ((), True, True, "coordinated_72h"),
        ((), False, True, "coordinated_72h"),
        ((), False, False, "standard_72h"),
        (("some_other_flag",), False, False, "standard_72h"),
    ],
)
def test_select_profile(book, flags, policy, cohandlers, expected):
    assert select_profile(book.sla, flags, policy, cohandlers) == expected


def test_rule_profile_overrides_selection(book):
    from dataclasses import replace

    overriding = book.routing.rules[0].model_copy(update={"sla_profile": "test_fast"})
    rules = book.routing.model_copy(update={"rules": [overriding, *book.routing.rules[1:]]})
    decision = route(replace(book, routing=rules), facts("approvals", title="Approval", flags=("epidemic_supplies",)))
    assert decision.sla_profile == "test_fast"
