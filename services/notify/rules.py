"""Who hears what, on which channel (docs/domain.md, "Notifications"): plain functions over an event."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import TypeAdapter, ValidationError

from libs.config import City, Person
from libs.kinds import EventType
from libs.links import Attachment

E = EventType
TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("zh", "en")

# Company-facing lifecycle events and their template.
COMPANY_TEMPLATES: dict[str, str] = {
    E.appeal_submitted: "acknowledged",
    E.appeal_submitted_v2: "acknowledged",
    E.appeal_routed: "routed",
    E.appeal_rerouted: "routed",
    E.appeal_transferred: "routed",
    E.appeal_declined: "declined",
    E.appeal_info_requested: "info_requested",
    E.appeal_resolved: "resolved",
    # Only the approval: a request or a rejection leaves the date the company was told as it was.
    E.appeal_extension_approved: "extension_approved",
    # The return visit's survey link (回访), and a redo (重办) with its new due date.
    E.appeal_visit_due: "visit_due",
    E.appeal_reopened: "redo",
}


class Tell(NamedTuple):
    """One recipient of a staff notice: whose department (LEAD, OFFICE or PREVIOUS), the role, the template."""

    whose: str
    role: str
    template: str


class StaffNotice(NamedTuple):
    """What staff hear of a lifecycle event: who, each with its template; `only_if`, when not every event of the
    type is told, says which are (a predicate over the event's data)."""

    tells: tuple[Tell, ...]
    only_if: Callable[[dict[str, Any]], bool] | None = None


LEAD = "lead"  # the appeal's lead department after the event
OFFICE = "office"  # the city's coordinating office, which rules on what a lead asks of it
PREVIOUS = "previous"  # the department the event took the appeal from (its previous_department)
CITY = "city"  # the city itself: its supervisor (city.yaml's city_supervisor) is no department's person

# The city supervisor's recipient id, beside `<department>:<role>` and `liaison:<id>` (app.py refuses a department
# coded "city", whose supervisor it would name too).
CITY_SUPERVISOR = f"{CITY}:supervisor"
# The roles planning reads of a department's staff (config/city.yaml, under each one's subscription).
STAFF_ROLES = ("handler", "head", "supervisor", "leadership")


def _sent_back(data: dict[str, Any]) -> bool:
    """A send-back (退单): a decline by a department the company did not choose, which the office reviews. A chosen
    department's decline is routing's first step; a decline from before router said which (no `chosen`) neither."""
    return data.get("chosen") is False


# Staff told of lifecycle events; docs/domain.md's "Notifications" has a row for each. The office's review of a
# send-back that lets it stand (appeal.decline_confirmed.v1) tells nobody, and is not here.
STAFF_NOTICES: dict[str, StaffNotice] = {
    E.appeal_routed: StaffNotice((Tell(LEAD, "handler", "assigned"),)),
    E.appeal_rerouted: StaffNotice((Tell(LEAD, "handler", "assigned"),)),
    E.appeal_transferred: StaffNotice((Tell(LEAD, "handler", "assigned"),)),
    E.appeal_extension_requested: StaffNotice((Tell(OFFICE, "handler", "office_extension_requested"),)),
    E.appeal_extension_approved: StaffNotice((Tell(LEAD, "handler", "lead_extension_approved"),)),
    E.appeal_extension_rejected: StaffNotice((Tell(LEAD, "handler", "lead_extension_rejected"),)),
    # The event names the department that declined (its `department`), and where the appeal went when it carries
    # `target_department`.
    E.appeal_declined: StaffNotice((Tell(OFFICE, "handler", "office_send_back"),), only_if=_sent_back),
    E.appeal_transfer_requested: StaffNotice((Tell(OFFICE, "handler", "office_transfer_requested"),)),
    E.appeal_transfer_refused: StaffNotice((Tell(LEAD, "handler", "lead_transfer_refused"),)),
    # The lead is the department the appeal returns to; the department withdrawn is told apart. Not the company:
    # its page shows the appeal going on.
    E.appeal_decline_overruled: StaffNotice(
        (
            Tell(LEAD, "handler", "lead_decline_overruled"),
            Tell(LEAD, "head", "lead_decline_overruled"),
            Tell(PREVIOUS, "handler", "withdrawn_decline_overruled"),
        )
    ),
    # The office urges the lead by hand (催办): the event's clerk is who at the office, its note what it expects.
    E.appeal_urged: StaffNotice((Tell(LEAD, "handler", "lead_urged"), Tell(LEAD, "head", "lead_urged"))),
    # A co-handler's part of the answer (协办意见): the event's department is the lead, its actor the co-handler.
    E.appeal_contributed: StaffNotice((Tell(LEAD, "handler", "lead_contributed"),)),
    # A redo (重办): the company or the office's return visit found the answer unsatisfied at the department.
    E.appeal_reopened: StaffNotice((Tell(LEAD, "handler", "lead_redo"), Tell(LEAD, "head", "lead_redo"))),
}
# What a company's liaison hears of its appeals, and the template.
LIAISON_TEMPLATES: dict[str, str] = {
    E.appeal_routed: "liaison_routed",
    E.appeal_declined: "liaison_declined",
    E.sla_breached: "liaison_breached",
}
# SLA levels and who hears them.
SLA_AUDIENCES = {50: ("handler",), 80: ("handler", "head"), 100: ("handler", "head", "supervisor")}
# The urging ladder's audiences as config/supervision.yaml names them (libs/config.py's `Audience`): whose person,
# in which role. Which level tells which of them is the configuration's (`Ladder`), not this table's.
URGE_AUDIENCES: dict[str, tuple[str, str]] = {
    "head": (LEAD, "head"),
    "supervisor": (LEAD, "supervisor"),
    "leadership": (LEAD, "leadership"),
    "coordinating_office_head": (OFFICE, "head"),
    "city_supervisor": (CITY, "supervisor"),
}
# Urging level -> the audiences it tells, from config/supervision.yaml (NotifyBook.ladder).
Ladder = Mapping[int, Sequence[str]]
# How the texts name each clock kind (libs/kinds.py's ClockKind), per language; every kind has a name in every
# language. A subject says the name alone; a body says, where it helps, what the clock is (`clock_name`'s `own`).
CLOCK_NAMES: dict[str, dict[str, str]] = {
    "zh": {"scope": "确认职责", "response": "首次答复", "resolution": "办结", "contribution": "协办意见"},
    "en": {"scope": "scope", "response": "first response", "resolution": "resolution", "contribution": "contribution"},
}
# A clock's name with what it is, as a body says it: to the people of the department it holds to account, and to
# others (the office's head, the city's supervisor, the company's liaison). A kind not here is said by its name.
CLOCK_NAMES_EXPLAINED: dict[str, dict[str, tuple[str, str]]] = {
    "en": {"contribution": ("contribution (your part as co-handler)", "contribution (a co-handler's part)")},
}
# How much of a co-handler's part the lead's notice quotes; the whole is on the appeal's page.
PART_QUOTED = 500
# A link as router checks it at the door (libs/links.py): https, a host, no credentials.
_LINK: TypeAdapter[str] = TypeAdapter(Attachment)


def links(attachments: Sequence[str] | None) -> list[str]:
    """The links a notice may show: https ones, as router checked them at the door (libs/links.py); any other is
    left out rather than put before a clerk."""
    shown = []
    for url in attachments or ():
        try:
            shown.append(_LINK.validate_python(url))
        except ValidationError:
            continue
    return shown


def clock_name(kind: str, language: str, own: bool | None = None) -> str:
    """A clock kind as the texts in `language` name it (a kind the table lacks by its code); with `own`, with what
    it is, said to the department the clock holds to account (True) or to others (False)."""
    lang = language if language in LANGUAGES else "zh"
    explained = CLOCK_NAMES_EXPLAINED.get(lang, {}).get(kind)
    if own is not None and explained:
        return explained[0] if own else explained[1]
    return CLOCK_NAMES[lang].get(kind, str(kind))


def quoted(text: str | None, limit: int = PART_QUOTED) -> tuple[str, bool]:
    """Free text as a notice quotes it, and whether it was cut: on one line (whitespace runs made one space), at most
    `limit` characters, cut at a space near the end when there is one (no word split) and marked with an ellipsis."""
    flat = " ".join((text or "").split())
    if len(flat) <= limit:
        return flat, False
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 4 // 5:
        cut = cut[:space]
    return cut.rstrip(" ,;:.，；：、。") + "…", True


@dataclass(frozen=True)
class Address:
    """Where one recipient can be reached; personal data, never logged."""

    email: str | None = None
    phone: str | None = None
    wechat_openid: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    quiet_hours: tuple[str, str] | None = None
    language: str = "zh"


@dataclass(frozen=True)
class Planned:
    """One notification to send: (event, recipient, channel) is its identity."""

    recipient: str
    audience: str
    channel: str
    department: str | None
    urgent: bool
    template: str
    language: str
    context: dict[str, Any] = field(default_factory=dict)


def staff_address(person: Person | None, subscription: dict[str, Any] | None, language: str = "zh") -> Address:
    """Staff contact from config, overridden field by field by the recipient's subscription."""
    sub = subscription or {}
    quiet = sub.get("quiet_hours")
    return Address(
        email=sub.get("email") or (person.email if person else None),
        phone=sub.get("phone") or (person.phone if person else None),
        wechat_openid=sub.get("wechat_openid") or (person.wechat_openid if person else None),
        webhook_url=sub.get("webhook_url"),
        webhook_secret=sub.get("webhook_secret"),
        quiet_hours=(quiet["start"], quiet["end"]) if quiet else None,
        language=sub.get("language") or language,
    )


def company_channels(address: Address, appeal_channel: str) -> list[str]:
    """SMS always (the phone is required); WeChat when the appeal came that way; e-mail when given."""
    channels = ["sms"] if address.phone else []
    if address.wechat_openid and appeal_channel == "wechat":
        channels = ["wechat"]
    if address.email:
        channels.append("email")
    if address.webhook_url:
        channels.append("webhook")
    return channels


def staff_channels(address: Address, urgent: bool) -> list[str]:
    """E-mail, WeChat and webhook where known; SMS only for what cannot wait (breaches)."""
    channels = [
        c
        for c, v in (("email", address.email), ("wechat", address.wechat_openid), ("webhook", address.webhook_url))
        if v
    ]
    if urgent and address.phone:
        channels.append("sms")
    return channels


def departments_told(event_type: str, department: str | None, city: City, previous: str | None = None) -> set[str]:
    """The departments whose staff addresses planning an event needs: its lead's, and the office's or the previous
    lead's (`previous`) when they are told; for an urging level, the office's whatever the level (its head may be
    among the audiences)."""
    told = {department} if department else set()
    if event_type == E.sla_urged and department:
        return told | {city.coordinating_office}
    notice = STAFF_NOTICES.get(event_type)
    if not department or not notice:
        return told
    for tell in notice.tells:
        code = _whose(tell.whose, department, previous, city)
        if code:
            told.add(code)
    return told


def _whose(whose: str, department: str, previous: str | None, city: City) -> str | None:
    """The department code a staff notice's `whose` names for an event of `department` (the lead after it); CITY
    for the city's own people."""
    return {LEAD: department, OFFICE: city.coordinating_office, PREVIOUS: previous, CITY: CITY}[whose]


def local_time(at: datetime | None, zone: str = "Asia/Shanghai") -> str:
    """A time as people in the city read it."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") if at else ""


def plan(
    event_type: str,
    data: dict[str, Any],
    appeal: dict[str, Any] | None,
    city: City,
    staff: dict[str, Address],
    company: Address | None,
    liaison: tuple[str, Address] | None = None,
    ladder: Ladder | None = None,
) -> list[Planned]:
    """Every notification an event owes, per docs/domain.md's table; `liaison` is the company's, if it has one;
    `ladder` who hears each urging level (config/supervision.yaml)."""
    context = {**data, **(appeal or {}).get("context", {})}
    planned = _for_liaison(event_type, data, city, liaison, context)
    if event_type == E.sla_urged:
        return planned + _urged(data, city, staff, ladder or {}, context)
    if event_type.startswith("sla."):
        level = data.get("level")
        if event_type not in (E.sla_warning, E.sla_breached) or level not in SLA_AUDIENCES:
            return []
        department = data["department"]
        urgent = level == 100
        template = "sla_breached" if urgent else "sla_warning"
        dept = city.department(department)
        context.update(department_name=dept.name if dept else department, due_at=local_time(data.get("due_at")))
        for role in SLA_AUDIENCES[level]:
            recipient = f"{department}:{role}"
            address = staff.get(recipient, Address())
            planned += [
                Planned(recipient, role, ch, department, urgent, template, address.language, context)
                for ch in staff_channels(address, urgent)
            ]
        return planned
    company_template = COMPANY_TEMPLATES.get(event_type)
    if company_template and company is not None:
        planned += [
            Planned(
                "company", "company", ch, data.get("department"), False, company_template, company.language, context
            )
            for ch in company_channels(company, context.get("channel", ""))
        ]
    notice = STAFF_NOTICES.get(event_type)
    if notice and data.get("department") and (notice.only_if is None or notice.only_if(data)):
        told: set[str] = set()
        for tell in notice.tells:
            department = _whose(tell.whose, data["department"], data.get("previous_department"), city)
            recipient = f"{department}:{tell.role}"
            if not department or recipient in told:
                continue  # no such department on the event, or a person told already by an earlier row
            told.add(recipient)
            address = staff.get(recipient, Address())
            planned += [
                Planned(
                    recipient,
                    tell.role,
                    ch,
                    department,
                    False,
                    tell.template,
                    address.language,
                    {**context, "role": "lead"},
                )
                for ch in staff_channels(address, False)
            ]
    return planned


def _urged(
    data: dict[str, Any], city: City, staff: dict[str, Address], ladder: Ladder, context: dict[str, Any]
) -> list[Planned]:
    """An urging level (催办, 督办) to the audiences the ladder gives it, each person once; like other staff notices
    it waits for office or quiet hours and goes by no SMS. A level the ladder does not have tells nobody."""
    department, level = data["department"], data.get("urge_level")
    planned: list[Planned] = []
    told: set[str] = set()
    for audience in ladder.get(level, ()) if level else ():
        whose, role = URGE_AUDIENCES[audience]
        code = _whose(whose, department, None, city)
        recipient = f"{code}:{role}"
        if recipient in told:
            continue  # the office's head when the office itself is urged, or an audience named twice
        told.add(recipient)
        address = staff.get(recipient, Address())
        # The audience as the log and the metrics show it: the role in its department, or the city's supervisor.
        shown = "city_supervisor" if whose == CITY else role
        planned += [
            Planned(
                recipient,
                shown,
                ch,
                None if whose == CITY else code,
                False,
                "sla_urged",
                address.language,
                {**context, "own": whose == LEAD},
            )
            for ch in staff_channels(address, False)
        ]
    return planned


def _for_liaison(
    event_type: str, data: dict[str, Any], city: City, liaison: tuple[str, Address] | None, context: dict[str, Any]
) -> list[Planned]:
    """The company's liaison hears that its appeal was routed, declined or breached, on its staff channels."""
    template = LIAISON_TEMPLATES.get(event_type)
    if liaison is None or template is None or (event_type == E.sla_breached and data.get("level") != 100):
        return []
    liaison_id, address = liaison
    urgent = event_type == E.sla_breached
    dept = city.department(data.get("department") or "")
    # Not of the department the clock holds to account: a clock's name says what it is to an onlooker.
    context = {**context, "department_name": dept.name if dept else (data.get("department") or ""), "own": False}
    return [
        Planned(
            f"liaison:{liaison_id}", "liaison", ch, data.get("department"), urgent, template, address.language, context
        )
        for ch in staff_channels(address, urgent)
    ]


class Renderer:
    """Jinja2 templates in `templates/<language>/<name>.j2`: first line subject, the rest the body."""

    def __init__(self, directory: Path = TEMPLATES) -> None:
        self._env = Environment(
            loader=FileSystemLoader(directory), undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self._env.globals["clock_name"] = clock_name

    def render(self, template: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
        """(subject, body) of a template in `language` (falling back to Chinese)."""
        lang = language if language in LANGUAGES else "zh"
        text = self._env.get_template(f"{lang}/{template}.j2").render(**context).strip()
        subject, _, body = text.partition("\n")
        return subject.strip(), body.strip()
