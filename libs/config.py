"""Validated YAML configuration shared by several services: the city's districts, departments, size bands.

Service-specific files (routing rules, policies, SLA profiles) are modelled in
their own service, but all of them load through `load_yaml`, so an invalid file
stops the service with one message naming the file, the entry and the field.
"""

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from libs.kinds import Category

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file is invalid; the message names file, entry and field."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _entry_path(data: object, loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location, naming list entries by their `id`/`code` when they have one."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                ident = node[part].get("id") or node[part].get("code")
                if ident:
                    label = f"[{part}] ({ident})"
            parts.append(label)
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            parts.append(("." if parts else "") + str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def load_yaml(path: Path, model: type[ModelT]) -> ModelT:
    """Load and validate one YAML file into `model`, or raise ConfigError naming what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {_entry_path(data, err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines)) from exc


def config_error(path: Path, entry: str, field: str, message: str) -> ConfigError:
    """A ConfigError for a rule that spans entries (e.g. a reference to an unknown department)."""
    return ConfigError(f"invalid configuration\n  {path}: {entry}: {field}: {message}")


class Person(StrictModel):
    """A member of staff who receives notifications."""

    name: str
    email: str | None = None
    phone: str | None = None
    wechat_openid: str | None = None


class District(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    name: str
    name_zh: str | None = None


class Department(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="Also names the topic dept.<code>.v1.")
    name: str
    name_zh: str | None = None
    level: Literal["municipal", "district"]
    district: str | None = Field(default=None, description="Required for district-level departments.")
    counterpart_of: str | None = Field(
        default=None, description="The municipal department this district department mirrors."
    )
    calendar: str = Field(default="default", description="Business calendar of config/calendars.yaml.")
    active: bool = Field(
        default=True, description="An inactive department is kept for history: nothing new goes to it."
    )
    handler: Person | None = None
    head: Person | None = None
    supervisor: Person | None = None
    leadership: Person | None = Field(
        default=None, description="The department's leadership: told at the urging ladder's last level (督办)."
    )


class SizeBand(StrictModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    label: str
    min_employees: int = Field(ge=0)
    max_employees: int | None = Field(default=None, description="Inclusive; none means no upper bound.")


class City(StrictModel):
    """`config/city.yaml`: who is who in the city."""

    name: str
    coordinating_office: str = Field(description="Fallback department when nothing else fits.")
    city_supervisor: Person | None = Field(
        default=None, description="The city's supervisor (督查): told at the urging ladder's last level."
    )
    districts: list[District]
    size_bands: list[SizeBand]
    departments: list[Department]

    def department(self, code: str) -> Department | None:
        """The department with `code`, if any."""
        return next((d for d in self.departments if d.code == code), None)

    def unknown_district(self, code: str) -> str | None:
        """Why `code` is not a district of the city, or None when it is one."""
        if any(d.code == code for d in self.districts):
            return None
        known = ", ".join(d.code for d in self.districts)
        return f"{code[:50]!r} is not a district of {self.name}: one of {known}"

    def cannot_choose(self, code: str) -> str | None:
        """Why a company cannot choose department `code` to lead its appeal, or None when it can."""
        department = self.department(code)
        if department is None:
            return f"{code!r} is not a department of {self.name}; GET /v1/departments on router lists them"
        if not department.active:
            return f"{department.name} ({code}) takes no new appeals"
        return None

    def counterpart(self, code: str, district: str) -> str:
        """The district counterpart of municipal department `code` in `district`, or `code` itself."""
        for dept in self.departments:
            if dept.counterpart_of == code and dept.district == district:
                return dept.code
        return code

    def size_band(self, employees: int) -> str:
        """The size band an employee count falls into."""
        for band in self.size_bands:
            if employees >= band.min_employees and (band.max_employees is None or employees <= band.max_employees):
                return band.code
        return self.size_bands[-1].code


class CategoryEntry(StrictModel):
    """One appeal category as people see it (Open311 clients see it as a service)."""

    code: Category
    name: str
    name_zh: str | None = None
    group: str
    description: str
    keywords: list[str] = Field(default_factory=list)


class Catalogue(StrictModel):
    """`config/categories.yaml`: names, groups and keywords of the categories."""

    categories: list[CategoryEntry]

    def entry(self, code: str) -> CategoryEntry | None:
        """The category with `code`, if any."""
        return next((c for c in self.categories if c.code == code), None)


# Calendar hours/minutes/seconds/days, or working days ("3wd") counted on a business calendar.
DURATION = r"^\d+(\.\d+)?(wd|d|h|m|s)$"


class ProfileCondition(StrictModel):
    flags: list[str] = Field(default_factory=list, description="Any one of these flags.")
    policy_available: bool | None = None
    cohandlers: bool | None = Field(default=None, description="True: several departments coordinate.")


class ProfileSelection(StrictModel):
    when: ProfileCondition | None = Field(default=None, description="No condition: the default.")
    profile: str


class SlaProfile(StrictModel):
    description: str = ""
    scope: str = Field(pattern=DURATION, description="Duration: '6h', '30m', '3wd' (working days), '10s'.")
    response: str = Field(pattern=DURATION)
    response_with_cohandlers: str | None = Field(default=None, pattern=DURATION)
    resolution: str = Field(pattern=DURATION)


class SlaConfig(StrictModel):
    """`config/sla_profiles.yaml`: targets per profile and the ordered selection of a profile."""

    profiles: dict[str, SlaProfile]
    selection: list[ProfileSelection]

    def profile(self, name: str | None) -> SlaProfile:
        """A profile by name; the default one (the last selection's) for a name no longer configured."""
        return self.profiles.get(name or "") or self.profiles[self.selection[-1].profile]


def load_sla_config(config_dir: Path) -> SlaConfig:
    """Load `sla_profiles.yaml` and check that every selection names a profile and the last is the default."""
    path = config_dir / "sla_profiles.yaml"
    sla = load_yaml(path, SlaConfig)
    for i, choice in enumerate(sla.selection):
        if choice.profile not in sla.profiles:
            raise config_error(path, f"selection[{i}]", "profile", f"unknown SLA profile {choice.profile!r}")
    if not sla.selection or sla.selection[-1].when is not None:
        raise config_error(path, "selection", "when", "the last selection must be the default (no `when`)")
    return sla


class GovernmentList(StrictModel):
    """A list the government keeps (key SMEs, producers of prevention materials); membership gives `flag`."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    name_zh: str | None = None
    flag: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="What routing rules, policies and SLA profiles see.")
    source: str = Field(description="Who keeps the list.")


class Liaison(Person):
    """A member of government staff who keeps contact with a set of companies."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="Also names the API key scope liaison:<id>.")
    department: str
    language: Literal["zh", "en"] = "zh"


class RegistryConfig(StrictModel):
    """`config/registry.yaml`: the government lists the registry keeps, and the liaisons."""

    lists: list[GovernmentList]
    liaisons: list[Liaison] = Field(default_factory=list)

    def find_list(self, list_id: str) -> GovernmentList | None:
        """The list with this id, if configured."""
        return next((entry for entry in self.lists if entry.id == list_id), None)

    def find_liaison(self, liaison_id: str) -> Liaison | None:
        """The liaison with this id, if configured."""
        return next((entry for entry in self.liaisons if entry.id == liaison_id), None)


def load_registry_config(config_dir: Path, city: City) -> RegistryConfig:
    """Load `registry.yaml`: list ids and flags unique, every liaison in a known department."""
    path = config_dir / "registry.yaml"
    registry = load_yaml(path, RegistryConfig)
    for what in ("id", "flag"):
        seen: set[str] = set()
        for i, entry in enumerate(registry.lists):
            value = getattr(entry, what)
            if value in seen:
                raise config_error(path, f"lists[{i}] ({entry.id})", what, f"another list has {what} {value!r}")
            seen.add(value)
    ids: set[str] = set()
    for i, liaison in enumerate(registry.liaisons):
        if liaison.id in ids:
            raise config_error(path, f"liaisons[{i}] ({liaison.id})", "id", "duplicate liaison id")
        ids.add(liaison.id)
        if city.department(liaison.department) is None:
            raise config_error(
                path, f"liaisons[{i}] ({liaison.id})", "department", f"unknown department {liaison.department!r}"
            )
    return registry


def load_city(config_dir: Path) -> City:
    """Load `city.yaml` and check its cross-references."""
    path = config_dir / "city.yaml"
    city = load_yaml(path, City)
    codes = [d.code for d in city.departments]
    districts = {d.code for d in city.districts}
    for i, dept in enumerate(city.departments):
        entry = f"departments[{i}] ({dept.code})"
        if codes.count(dept.code) > 1:
            raise config_error(path, entry, "code", "duplicate department code")
        if dept.level == "district" and dept.district not in districts:
            raise config_error(path, entry, "district", f"unknown district {dept.district!r}")
        if dept.counterpart_of is not None and city.department(dept.counterpart_of) is None:
            raise config_error(path, entry, "counterpart_of", f"unknown department {dept.counterpart_of!r}")
    if city.department(city.coordinating_office) is None:
        raise config_error(
            path, "coordinating_office", "coordinating_office", f"unknown department {city.coordinating_office!r}"
        )
    if not city.size_bands:
        raise config_error(path, "size_bands", "size_bands", "at least one band is required")
    return city


def load_catalogue(config_dir: Path) -> Catalogue:
    """Load `categories.yaml`; every category must appear exactly once."""
    path = config_dir / "categories.yaml"
    catalogue = load_yaml(path, Catalogue)
    codes = [c.code for c in catalogue.categories]
    for i, code in enumerate(codes):
        if codes.count(code) > 1:
            raise config_error(path, f"categories[{i}] ({code})", "code", "duplicate category")
    missing = sorted(set(Category) - set(codes))
    if missing:
        raise config_error(path, "categories", "code", f"missing categories: {', '.join(missing)}")
    return catalogue


Audience = Literal["head", "supervisor", "leadership", "coordinating_office_head", "city_supervisor"]


class ExtensionRules(StrictModel):
    max_past_due: str = Field(
        pattern=DURATION, description="How far past the current due time an extension may reach ('10wd')."
    )
    per_clock: int = Field(ge=0, le=10, description="Approved extensions per resolution clock.")


class SendBackRules(StrictModel):
    window: str = Field(
        pattern=rf"^scope$|{DURATION}",
        description="`scope`: while the department's scope clock runs; or a duration after the assignment.",
    )


class UrgingLevel(StrictModel):
    level: int = Field(ge=2, le=9, description="Level 1 is the breach itself.")
    after_breach: str = Field(pattern=DURATION)
    audiences: list[Audience] = Field(min_length=1)


class UrgingRules(StrictModel):
    levels: list[UrgingLevel]


class CohandlingRules(StrictModel):
    contribution: str = Field(pattern=DURATION, description="A co-handler's time to contribute, from joining.")


class SupervisionConfig(StrictModel):
    """`config/supervision.yaml`: extensions, the send-back window, the urging ladder, co-handlers' contributions."""

    extension: ExtensionRules
    send_back: SendBackRules
    urging: UrgingRules
    cohandling: CohandlingRules


def load_supervision(config_dir: Path, city: City) -> SupervisionConfig:
    """Load `supervision.yaml`: levels numbered 2, 3, ... in order, their audiences configured."""
    path = config_dir / "supervision.yaml"
    supervision = load_yaml(path, SupervisionConfig)
    levels = supervision.urging.levels
    for i, level in enumerate(levels):
        entry = f"urging.levels[{i}]"
        if level.level != i + 2:
            raise config_error(path, entry, "level", f"levels go 2, 3, ... in order; this one should be {i + 2}")
        if "city_supervisor" in level.audiences and city.city_supervisor is None:
            raise config_error(path, entry, "audiences", "city_supervisor is named but city.yaml has none")
    return supervision


# --- Return visits and assessment (config/assessment.yaml) ----------------------------------------------------------

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class VisitSelection(StrictModel):
    """Which resolved appeals get a return visit: all by default."""

    share: float = Field(default=1.0, ge=0, le=1, description="Share of the appeals, chosen by their id.")
    lists: list[str] = Field(default_factory=list, description="Companies on these lists are always visited.")
    size_bands: list[str] = Field(default_factory=list, description="Only these size bands (all when empty).")
    categories: list[Category] = Field(default_factory=list, description="Only these categories (all when empty).")


class ReturnVisitRules(StrictModel):
    due_after: str = Field(pattern=DURATION, description="After the resolution: the survey link goes then.")
    call_after: str = Field(pattern=DURATION, description="After the due time: the office calls those still silent.")
    attempts: int = Field(ge=1, le=10, description="Failed attempts that end a visit as unreached.")
    unreached_after: str = Field(pattern=DURATION, description="After the due time: a visit still open is unreached.")
    select: VisitSelection = VisitSelection()


class RedoRules(StrictModel):
    resolution: str = Field(pattern=DURATION, description="The redo's new resolution clock.")
    supervise_after: int = Field(ge=1, le=10, description="Redos after which the office supervises the appeal.")


class Weights(StrictModel):
    response_rate: float = Field(ge=0)
    resolution_rate: float = Field(ge=0)
    satisfaction_rate: float = Field(ge=0)


class Deductions(StrictModel):
    breach: float = Field(ge=0)
    redo: float = Field(ge=0)
    overruled_send_back: float = Field(ge=0)
    urging_level_3: float = Field(ge=0)


class Formula(StrictModel):
    """The scorecard's formula from a month on: a published month keeps the formula it was published with."""

    from_month: str = Field(alias="from", pattern=MONTH, description="The first month it applies to, YYYY-MM.")
    weights: Weights
    deductions: Deductions


class ScorecardRules(StrictModel):
    minimum_volume: int = Field(ge=0, description="Fewer lead assignments in a month: listed, not ranked.")
    red_list: int = Field(ge=0, description="The best N ranked departments.")
    black_list: int = Field(ge=0, description="The worst N ranked departments, none of them on the red list.")
    formulas: list[Formula] = Field(min_length=1)

    def formula(self, month: str) -> Formula:
        """The formula in effect in `month` (YYYY-MM): the latest to take effect on or before it; the first for a
        month before any."""
        due = [f for f in self.formulas if f.from_month <= month]
        return due[-1] if due else self.formulas[0]


class AssessmentConfig(StrictModel):
    """`config/assessment.yaml`: return visits (回访), redos (重办) and the city's monthly scorecard."""

    return_visits: ReturnVisitRules
    redo: RedoRules
    scorecard: ScorecardRules


def load_assessment(config_dir: Path, city: City) -> AssessmentConfig:
    """Load `assessment.yaml`: formulas in the order they take effect, size bands the city has."""
    path = config_dir / "assessment.yaml"
    assessment = load_yaml(path, AssessmentConfig)
    months = [f.from_month for f in assessment.scorecard.formulas]
    if months != sorted(set(months)):
        raise config_error(path, "scorecard.formulas", "from", "months must be distinct and in order")
    visits, redo = assessment.return_visits, assessment.redo
    for entry, field, text in (
        ("return_visits", "due_after", visits.due_after),
        ("return_visits", "call_after", visits.call_after),
        ("return_visits", "unreached_after", visits.unreached_after),
        ("redo", "resolution", redo.resolution),
    ):
        if float(text.rstrip("wdhms")) <= 0:
            raise config_error(path, entry, field, f"{text!r} must be positive")
    bands = {band.code for band in city.size_bands}
    for band in assessment.return_visits.select.size_bands:
        if band not in bands:
            raise config_error(path, "return_visits.select", "size_bands", f"{band!r} is not a size band of city.yaml")
    return assessment
