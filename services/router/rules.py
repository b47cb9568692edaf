"""Routing rules, the policy catalogue and SLA profile selection: plain functions over validated config."""

import re
from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field

from libs.calendars import Calendars, load_calendars
from libs.config import (
    AssessmentConfig,
    City,
    RegistryConfig,
    SlaConfig,
    StrictModel,
    SupervisionConfig,
    config_error,
    load_assessment,
    load_city,
    load_registry_config,
    load_sla_config,
    load_supervision,
    load_yaml,
)
from libs.events import PolicyRef
from libs.kinds import Category


class RuleMatch(StrictModel):
    """Conditions of a rule; every non-empty list must match (keywords: any one of them)."""

    categories: list[Category] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list, description="Any one, in title or description, case-insensitive.")
    size_bands: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list, description="Any one of these flags.")


class Rule(StrictModel):
    id: str
    description: str
    match: RuleMatch
    lead: str = Field(description="Department code; replaced by its district counterpart where one exists.")
    cohandlers: list[str] = Field(default_factory=list)
    use_district_counterpart: bool = True
    sla_profile: str | None = Field(default=None, description="Overrides the profile selection.")


class RoutingConfig(StrictModel):
    """`config/routing.yaml`: ordered rules, first match wins."""

    rules: list[Rule]


class Policy(StrictModel):
    id: str
    title: str
    title_zh: str | None = None
    categories: list[Category]
    keywords: list[str] = Field(default_factory=list, description="If given, one must appear in the appeal.")
    flags: list[str] = Field(default_factory=list, description="If given, the appeal must carry one.")
    url: str | None = None


class PolicyCatalogue(StrictModel):
    """`config/policies.yaml`."""

    policies: list[Policy]


@dataclass(frozen=True)
class AppealFacts:
    """What routing looks at."""

    category: str
    district: str
    size_band: str
    title: str
    description: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingDecision:
    lead: str
    cohandlers: list[str]
    rule_id: str | None
    policies: list[PolicyRef]
    sla_profile: str
    explanation: list[str] = field(default_factory=list)

    @property
    def policy_available(self) -> bool:
        return bool(self.policies)


@dataclass(frozen=True)
class RoutingBook:
    """Everything the router decides with, loaded and cross-checked at start."""

    city: City
    routing: RoutingConfig
    policies: PolicyCatalogue
    sla: SlaConfig
    registry: RegistryConfig
    supervision: SupervisionConfig
    calendars: Calendars
    assessment: AssessmentConfig
    # The city's time zone: list memberships run from and to local days.
    tz: ZoneInfo = ZoneInfo("Asia/Shanghai")


def _text(facts: AppealFacts) -> str:
    return f"{facts.title}\n{facts.description}".casefold()


def mentions(text: str, keyword: str) -> bool:
    """Whether casefolded `text` mentions `keyword`: whole words for Latin script, substrings for Chinese."""
    keyword = keyword.casefold()
    if keyword.isascii():
        return re.search(rf"\b{re.escape(keyword)}\b", text) is not None
    return keyword in text


def rule_matches(rule: Rule, facts: AppealFacts) -> bool:
    """Whether every condition of `rule` holds for the appeal."""
    m = rule.match
    text = _text(facts)
    return (
        (not m.categories or facts.category in m.categories)
        and (not m.districts or facts.district in m.districts)
        and (not m.size_bands or facts.size_band in m.size_bands)
        and (not m.flags or any(f in facts.flags for f in m.flags))
        and (not m.keywords or any(mentions(text, k) for k in m.keywords))
    )


def matching_policies(catalogue: PolicyCatalogue, facts: AppealFacts) -> list[Policy]:
    """Catalogue policies for the appeal's category whose keywords and flags (if any) fit."""
    text = _text(facts)
    return [
        p
        for p in catalogue.policies
        if facts.category in p.categories
        and (not p.keywords or any(mentions(text, k) for k in p.keywords))
        and (not p.flags or any(f in facts.flags for f in p.flags))
    ]


def select_profile(sla: SlaConfig, flags: tuple[str, ...], policy_available: bool, has_cohandlers: bool) -> str:
    """The first profile whose condition holds (docs/domain.md: 24h with a policy, 48h priority, else 72h)."""
    for choice in sla.selection:
        cond = choice.when
        if cond is None:
            return choice.profile
        if cond.flags and not any(f in flags for f in cond.flags):
            continue
        if cond.policy_available is not None and cond.policy_available != policy_available:
            continue
        if cond.cohandlers is not None and cond.cohandlers != has_cohandlers:
            continue
        return choice.profile
    raise LookupError("no SLA profile selection matched and there is no default")


def route(
    book: RoutingBook, facts: AppealFacts, exclude: Set[str] = frozenset(), chosen: str | None = None
) -> RoutingDecision:
    """Pick lead, co-handlers, policies and SLA profile for an appeal; departments in `exclude` are skipped.

    A department the company `chosen` leads alone; the rules come in only if it declines.
    """
    city = book.city
    explanation: list[str] = []
    cohandlers: list[str]
    rule = None if chosen else next((r for r in book.routing.rules if rule_matches(r, facts)), None)
    if chosen:
        lead, cohandlers, rule_id = chosen, [], None
        explanation.append(f"the company chose {chosen}: it leads, and has the scope clock to say if it is its own")
    elif rule is None:
        lead, cohandlers, rule_id = city.coordinating_office, [], None
        explanation.append(f"no rule matched; fallback to the coordinating office {lead}")
    else:
        rule_id = rule.id
        lead = city.counterpart(rule.lead, facts.district) if rule.use_district_counterpart else rule.lead
        cohandlers = [
            city.counterpart(c, facts.district) if rule.use_district_counterpart else c for c in rule.cohandlers
        ]
        explanation.append(f"rule {rule.id} matched: {rule.description}")
        if lead != rule.lead:
            explanation.append(f"district {facts.district} has a counterpart of {rule.lead}: {lead}")
    if lead in exclude:
        explanation.append(f"{lead} already declined; sent to the coordinating office {city.coordinating_office}")
        lead = city.coordinating_office
    cohandlers = [c for c in dict.fromkeys(cohandlers) if c != lead]
    policies = matching_policies(book.policies, facts)
    if policies:
        explanation.append("policies matched: " + ", ".join(p.id for p in policies))
    else:
        explanation.append("no catalogue policy matched")
    if rule is not None and rule.sla_profile:
        profile = rule.sla_profile
        explanation.append(f"SLA profile {profile} set by the rule")
    else:
        profile = select_profile(book.sla, facts.flags, bool(policies), bool(cohandlers))
        explanation.append(f"SLA profile {profile} selected")
    refs = [PolicyRef(id=p.id, title=p.title, url=p.url) for p in policies]
    return RoutingDecision(lead, cohandlers, rule_id, refs, profile, explanation)


def load_routing_book(config_dir: Path) -> RoutingBook:
    """Load city, rules, policies and SLA profiles, and check that every reference resolves."""
    city = load_city(config_dir)
    routing_path, policies_path = config_dir / "routing.yaml", config_dir / "policies.yaml"
    routing = load_yaml(routing_path, RoutingConfig)
    policies = load_yaml(policies_path, PolicyCatalogue)
    sla = load_sla_config(config_dir)
    registry = load_registry_config(config_dir, city)
    calendars = load_calendars(config_dir)
    supervision = load_supervision(config_dir, city)
    assessment = load_assessment(config_dir, city)
    tz = ZoneInfo(calendars["default"].config.timezone)
    districts = {d.code for d in city.districts}
    bands = {b.code for b in city.size_bands}
    ids: set[str] = set()
    for i, rule in enumerate(routing.rules):
        entry = f"rules[{i}] ({rule.id})"
        if rule.id in ids:
            raise config_error(routing_path, entry, "id", "duplicate rule id")
        ids.add(rule.id)
        for fname, code in [("lead", rule.lead)] + [("cohandlers", c) for c in rule.cohandlers]:
            if city.department(code) is None:
                raise config_error(routing_path, entry, fname, f"unknown department {code!r}")
        for d in rule.match.districts:
            if d not in districts:
                raise config_error(routing_path, entry, "match.districts", f"unknown district {d!r}")
        for b in rule.match.size_bands:
            if b not in bands:
                raise config_error(routing_path, entry, "match.size_bands", f"unknown size band {b!r}")
        if rule.sla_profile and rule.sla_profile not in sla.profiles:
            raise config_error(routing_path, entry, "sla_profile", f"unknown SLA profile {rule.sla_profile!r}")
    covered = {c for r in routing.rules for c in r.match.categories}
    missing = [c.value for c in Category if c not in covered]
    if missing:
        raise config_error(routing_path, "rules", "match.categories", "no rule covers " + ", ".join(missing))
    seen: set[str] = set()
    for i, policy in enumerate(policies.policies):
        if policy.id in seen:
            raise config_error(policies_path, f"policies[{i}] ({policy.id})", "id", "duplicate policy id")
        seen.add(policy.id)
    _check_flags(config_dir, routing, policies, sla, registry)
    return RoutingBook(city, routing, policies, sla, registry, supervision, calendars, assessment, tz)


def _check_flags(
    config_dir: Path, routing: RoutingConfig, policies: PolicyCatalogue, sla: SlaConfig, registry: RegistryConfig
) -> None:
    """Every flag that routing, a policy or a profile looks at is one a government list gives."""
    given = {entry.flag for entry in registry.lists}
    uses = [(config_dir / "routing.yaml", f"rules ({r.id})", "match.flags", r.match.flags) for r in routing.rules]
    uses += [(config_dir / "policies.yaml", f"policies ({p.id})", "flags", p.flags) for p in policies.policies]
    uses += [
        (config_dir / "sla_profiles.yaml", f"selection ({c.profile})", "when.flags", c.when.flags)
        for c in sla.selection
        if c.when is not None
    ]
    for path, entry, fname, flags in uses:
        unknown = [f for f in flags if f not in given]
        if unknown:
            raise config_error(
                path,
                entry,
                fname,
                f"no list of config/registry.yaml gives {', '.join(unknown)}; only the government's lists give flags",
            )
