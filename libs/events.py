"""The event contract's data: the versioned payload of every event type (libs/kinds.py names the types,
libs/envelopes.py wraps each payload in its CloudEvents envelope).
"""

from datetime import date, datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from libs.kinds import (
    ActionKind,
    AppealStatus,
    Category,
    Cause,
    Channel,
    ClockKind,
    ClockState,
    EventType,
    VisitOutcome,
)
from libs.links import Attachment


class Enterprise(BaseModel):
    """The company making the appeal."""

    model_config = ConfigDict(extra="forbid")

    uscc: str = Field(
        description="Unified social credit code, 18 characters, check digit per GB 32100-2015.",
        examples=["91440300MA5FXT4K8N"],
    )
    name: str = Field(
        min_length=1,
        max_length=200,
        description="Registered company name.",
        examples=["Shenzhen Lanhai Network Technology Co., Ltd."],
    )
    employees: int = Field(ge=0, le=10_000_000, description="Number of employees.", examples=[25])
    industry: str = Field(
        min_length=1, max_length=100, description="Industry, free text.", examples=["internet services"]
    )
    district: str = Field(
        min_length=1, max_length=50, description="District code of the registered seat.", examples=["nanshan"]
    )


class Contact(BaseModel):
    """Who at the company hears back. Personal data: never logged, never a metric label."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Contact person.", examples=["Li Wei"])
    phone: str = Field(pattern=r"^\+?[0-9][0-9 \-]{5,19}$", description="Phone number.", examples=["13800138000"])
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="E-mail address.",
        examples=["liwei@example.com"],
    )
    wechat_openid: str | None = Field(
        default=None, max_length=64, description="WeChat open id.", examples=["oX3f0t1example"]
    )


class AppealFiled(BaseModel):
    """A channel adapter handed in an appeal and intake made it durable: what it is about, whose it is and where it
    came from; never who to reach at the company, nor anything that opens the appeal (`appeal.submitted.v2`)."""

    appeal_id: str = Field(description="Platform id of the appeal (ULID).", examples=["01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"])
    channel: Channel = Field(description="Channel the appeal came through.")
    channel_ref: str = Field(description="The adapter's own id for the appeal.", examples=["wx-20260303-0042"])
    enterprise: Enterprise
    category: Category = Field(description="What the difficulty is about.")
    size_band: str = Field(description="Size band from the employee count.", examples=["micro"])
    title: str = Field(description="Short title.", examples=["Loan due while staff cannot return"])
    description: str = Field(description="The difficulty in the company's words.")
    attachments: list[str] = Field(default_factory=list, description="URLs of attached documents.")
    flags: list[str] = Field(
        default_factory=list,
        description="What the channel declares for the company (key_enterprise, in_litigation, ...): not verified; "
        "router gives flags from the government's lists only.",
        examples=[["key_enterprise"]],
    )
    department: str | None = Field(
        default=None, description="The department the company chose, if it chose one.", examples=["nanshan-finance"]
    )
    taken_by: str | None = Field(
        default=None, description="The liaison who took the appeal on a staff visit.", examples=["zhou-min"]
    )
    submitted_at: datetime = Field(
        description="When intake accepted the appeal (UTC). Its contact is on appeals.contacts.v1, published before."
    )


class AppealSubmitted(AppealFiled):
    """`appeal.submitted.v1`, which carried the contact and the company's link on a topic kept for good: read
    until appeals.submitted.v1 is retired, written no more."""

    contact: Contact
    follow_url: str | None = Field(
        default=None,
        description="The company's page of its appeal with the token that opens it: a credential, never logged.",
    )


class AppealContact(BaseModel):
    """Who to reach at the company about an appeal, and its page with the token that opens it: on the compacted
    appeals.contacts.v1 (key: the appeal), which only router and notify read, until the contact is erased.
    Personal data: never logged, never a metric label."""

    appeal_id: str
    contact: Contact
    follow_url: str | None = Field(
        default=None, description="The company's page of the appeal with its current token: a credential."
    )
    version: int = Field(
        default=0, description="Per-appeal change counter (a correction, a new link); readers keep the highest."
    )


class AppealContactErased(BaseModel):
    """An appeal's contact is erased: every copy is to go (a tombstone on appeals.contacts.v1 follows)."""

    appeal_id: str
    reason: Literal["retention", "request"] = Field(
        description="The retention period ended after the appeal closed, or an erasure was asked for."
    )


class PolicyRef(BaseModel):
    """A policy from the catalogue that fits the appeal."""

    id: str = Field(examples=["vat-small-scale-cut"])
    title: str = Field(examples=["VAT cut for small-scale taxpayers"])
    url: str | None = Field(default=None)


class AppealChanged(BaseModel):
    """Data of every `appeal.*.v1` lifecycle event: the appeal's state after the transition."""

    appeal_id: str = Field(description="Appeal id.")
    status: AppealStatus = Field(description="Status after this transition.")
    sequence: int = Field(description="Per-appeal transition counter; readers keep the highest.", examples=[3])
    department: str | None = Field(
        default=None, description="Lead department after the transition.", examples=["nanshan-finance"]
    )
    previous_department: str | None = Field(default=None, description="Lead before a decline, reroute or transfer.")
    cohandlers: list[str] = Field(default_factory=list, description="Co-handling departments.")
    category: Category
    channel: Channel
    district: str
    size_band: str
    flags: list[str] = Field(default_factory=list, description="Flags from the government lists the company is on.")
    lists: list[str] = Field(
        default_factory=list, description="Government lists the company was on when it appealed (registry)."
    )
    declared_flags: list[str] = Field(default_factory=list, description="What the channel declared; not verified.")
    sla_profile: str | None = Field(
        default=None, description="SLA profile governing the clocks.", examples=["policy_24h"]
    )
    policy_available: bool = Field(default=False, description="A catalogue policy fits the appeal.")
    rule_id: str | None = Field(default=None, description="Routing rule that matched.")
    policies: list[PolicyRef] = Field(default_factory=list)
    actor: str | None = Field(
        default=None, description="Who caused the transition: department code, 'company' or 'system'."
    )
    clerk: str | None = Field(
        default=None, description="For a department's action: the clerk who took it, by name, when given."
    )
    note: str | None = Field(default=None, description="Free-text note from the actor.")
    guidance: str | None = Field(default=None, description="For declines: how the company should proceed.")
    resolution: str | None = Field(default=None, description="For resolutions: what was done.")
    policy_refs: list[str] = Field(default_factory=list, description="Policies cited by the department.")
    reason: str | None = Field(default=None, description="Why: rejection, reroute, auto-close.")
    submitted_at: datetime = Field(description="When the appeal was submitted.")
    satisfaction: int | None = Field(default=None, description="Company's satisfaction 1..5, on confirm/reopen.")
    due_at: datetime | None = Field(
        default=None, description="For extensions: the resolution due time asked for, or granted on approval."
    )
    previous_due_at: datetime | None = Field(
        default=None, description="For extensions: the resolution clock's due time when the extension was asked."
    )
    chosen: bool | None = Field(
        default=None,
        description="For declines: the department was the company's choice, so the decline is routing's first "
        "step and not a send-back (counted apart).",
    )
    since: datetime | None = Field(
        default=None,
        description="For an overruled decline: when the department the appeal returns to was first assigned it; "
        "its response clock runs from then.",
    )
    target_department: str | None = Field(
        default=None,
        description="For a transfer request: the department the lead suggests; for a decline: the department the "
        "appeal went to.",
    )
    attachments: list[str] = Field(
        default_factory=list, description="For a contribution: https links to the co-handler's documents."
    )
    visit_round: int | None = Field(
        default=None,
        description="For a return visit, a company's answer, a redo or a close after a visit: the resolution round "
        "(1 for the first resolution, 2 after one redo, ...).",
    )
    reached: bool | None = Field(default=None, description="For a return visit attempt: the company was reached.")
    visit_outcome: VisitOutcome | None = Field(
        default=None,
        description="For a visit, a company's answer, or a close as unreached: satisfied, basically_satisfied, "
        "unsatisfied or unreached.",
    )
    cause: Cause | None = Field(
        default=None,
        description="For an unsatisfied visit or answer: `department` (its redo) or `outside` (policy does not "
        "allow it: reported apart, not in the department's satisfaction).",
    )
    redo: bool | None = Field(
        default=None, description="For a reopen: it counts as a redo (重办) against the department."
    )
    redo_count: int | None = Field(default=None, description="For a redo: how many redos the appeal has had.")


class AppealSummary(BaseModel):
    """What a department needs to act on an assignment."""

    category: Category
    title: str
    description: str
    enterprise: Enterprise
    contact: Contact
    channel: Channel
    flags: list[str] = Field(
        default_factory=list, description="Flags the government's lists give the company; these set the deadlines."
    )
    lists: list[str] = Field(default_factory=list, description="Government lists the company is on (registry).")
    declared_flags: list[str] = Field(
        default_factory=list, description="What the channel declared for the company: declared, not verified."
    )
    phone_verified: bool | None = Field(
        default=None, description="Whether the contact's phone is one the registry has; none when it has none."
    )
    attachments: list[str] = Field(default_factory=list)
    submitted_at: datetime


class AssignmentCreated(BaseModel):
    """A department was given an appeal to handle, as lead or co-handler."""

    appeal_id: str
    department: str = Field(description="Department the assignment is for.", examples=["nanshan-finance"])
    role: str = Field(description="`lead` or `cohandler`.", examples=["lead"])
    lead_department: str = Field(description="The lead department.")
    cohandlers: list[str] = Field(default_factory=list)
    rule_id: str | None = Field(description="Routing rule that matched.", examples=["financing-district"])
    policies: list[PolicyRef] = Field(default_factory=list, description="Matched catalogue policies.")
    sla_profile: str = Field(examples=["policy_24h"])
    appeal: AppealSummary


class AssignmentWithdrawn(BaseModel):
    """An appeal left a department: transferred, rerouted or declined."""

    appeal_id: str
    department: str
    reason: str = Field(examples=["transferred"])
    to_department: str | None = None


class DepartmentAction(BaseModel):
    """A department acts on an appeal (published to `appeals.actions.v1` or posted to router)."""

    model_config = ConfigDict(extra="forbid")

    appeal_id: str
    department: str = Field(description="Acting department; must hold the appeal.", examples=["nanshan-finance"])
    action: ActionKind
    note: str | None = Field(default=None, max_length=4000)
    guidance: str | None = Field(default=None, max_length=4000, description="Required for decline.")
    resolution: str | None = Field(default=None, max_length=8000, description="Required for resolve.")
    policy_refs: list[str] = Field(default_factory=list)
    target_department: str | None = Field(
        default=None, description="For transfer, add_cohandler; optional for decline (where the company should go)."
    )
    clerk: str | None = Field(
        default=None, max_length=100, description="The clerk acting for the department, by name (the workbench)."
    )
    until: datetime | None = Field(
        default=None, description="For request_extension: the new resolution due time asked for (with a zone)."
    )
    reason: str | None = Field(default=None, max_length=2000, description="For request_extension: why.")
    attachments: list[Attachment] = Field(
        default_factory=list, max_length=20, description="For contribute: https links to the co-handler's documents."
    )


class ActionRejected(BaseModel):
    """An action from a department's Kafka integration could not be applied."""

    appeal_id: str
    department: str
    action: str
    status: int = Field(description="HTTP-like status: 403, 404, 409 or 422.")
    detail: str


class CompanyInfoProvided(BaseModel):
    """The company answered a department's request for information."""

    appeal_id: str
    information: str
    attachments: list[str] = Field(default_factory=list)


class CompanyFeedback(BaseModel):
    """The company says whether the resolution solved its difficulty."""

    appeal_id: str
    resolved: bool
    satisfaction: int = Field(ge=1, le=5)
    comment: str | None = None


class SlaClockChanged(BaseModel):
    """One clock of one appeal after a change: the data of an `sla.*.v1` event, and of a report in `sla.reported.v2`."""

    appeal_id: str
    clock_id: str = Field(description="Stable id of this clock run.", examples=["01JB8X4R5ZJ6Q8V2Y7K9M3N4P5:scope:1"])
    clock: ClockKind
    department: str = Field(description="Department the clock holds to account.", examples=["nanshan-finance"])
    state: ClockState
    level: int | None = Field(default=None, description="For warnings and breaches: 50, 80 or 100 (% of target).")
    target: str = Field(description="Target as configured: '6h', '3wd' (working days).", examples=["6h"])
    calendar: str = Field(examples=["default"])
    sla_profile: str = Field(examples=["policy_24h"])
    started_at: datetime
    due_at: datetime | None = Field(default=None, description="When the target runs out; none while paused.")
    remaining_seconds: float | None = Field(
        default=None, description="Target time left: calendar seconds, or working seconds for working-day targets."
    )
    fired_at: datetime | None = Field(default=None, description="For warnings and breaches: when it was sent.")
    category: str | None = None
    district: str | None = None
    original_due_at: datetime | None = Field(
        default=None, description="For an extended clock: its due time before the approved extension (延期)."
    )
    urge_level: int | None = Field(
        default=None,
        description="For sla.urged.v1: the urging ladder's level reached (2: 催办, 3: 督办; 1 is the breach itself), "
        "config/supervision.yaml.",
        examples=[2],
    )


SlaClockType = Literal[
    EventType.sla_started,
    EventType.sla_paused,
    EventType.sla_resumed,
    EventType.sla_warning,
    EventType.sla_breached,
    EventType.sla_met,
    EventType.sla_cancelled,
    EventType.sla_extended,
    EventType.sla_urged,
]

SLA_CLOCK_TYPES: tuple[EventType, ...] = get_args(SlaClockType)


class SlaClockReport(BaseModel):
    """One clock's change inside `sla.reported.v2`: what an `sla.*.v1` event would say, under that event's id."""

    id: str = Field(description="The id the change has as an `sla.*.v1` event too; readers drop an id seen before.")
    type: SlaClockType = Field(description="What the change was, as a v1 event type.", examples=["sla.met.v1"])
    data: SlaClockChanged


class SlaClocksReported(BaseModel):
    """Data of `sla.reported.v2`: what one change did to an appeal's clocks (its starts on routing, its stops on
    resolution, the thresholds reached together), in one event instead of one `sla.*.v1` event per clock."""

    appeal_id: str
    reports: list[SlaClockReport] = Field(min_length=1, description="Each clock changed, in the order of the changes.")


class NotificationOutcome(BaseModel):
    """A notification reached its recipient, or finally could not. Carries no personal data."""

    appeal_id: str
    notification_id: str = Field(description="<event id>:<recipient>:<channel>; one per such triple.")
    event_id: str = Field(description="The event the notification is about.")
    event_type: str = Field(examples=["appeal.routed.v1"])
    recipient: str = Field(
        description="'company', '<department>:<role>', 'liaison:<id>' or 'city:supervisor'.",
        examples=["nanshan-finance:head"],
    )
    audience: str = Field(description="company, handler, head or supervisor.", examples=["head"])
    channel: str = Field(description="webhook, email, sms or wechat.", examples=["email"])
    attempts: int
    reason: str | None = Field(default=None, description="For failures: why the last attempt failed.")


class ListMembership(BaseModel):
    """A company's place on a government list: from `since`, up to but not including `until`."""

    list: str = Field(description="List id (config/registry.yaml).", examples=["key_sme"])
    since: date = Field(description="First local day on the list.")
    until: date | None = Field(default=None, description="First local day off the list; none while on it.")


class EnterpriseChanged(BaseModel):
    """A company of the registry as it is after a change: profile, lists and liaison. No contact data."""

    uscc: str = Field(description="Unified social credit code; also the Kafka key (the topic is compacted).")
    name: str
    district: str | None = None
    industry: str | None = None
    liaison: str | None = Field(default=None, description="Liaison id (config/registry.yaml).")
    memberships: list[ListMembership] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list, description="The fields this change touched.")
    version: int = Field(description="Per-company change counter; readers keep the highest.")


class CompanyMessage(BaseModel):
    """A message intake asks notify to send a phone at once: a one-time code, or an appeal's follow link again.

    Personal data and, for a link, a credential: never logged; the topic keeps it one day.
    """

    phone: str = Field(description="The phone to send it to.", examples=["13800138000"])
    language: Literal["zh", "en"] = Field(default="zh", description="Language of the message.")
    code: str | None = Field(default=None, description="The one-time code (company.code_issued.v1).")
    expires_at: datetime | None = Field(default=None, description="When the code stops working.")
    appeal_id: str | None = Field(default=None, description="The appeal (company.link_requested.v1).")
    follow_url: str | None = Field(default=None, description="The appeal's page with its token.")


_NOT_LIFECYCLE = {
    EventType.appeal_submitted,
    EventType.appeal_submitted_v2,
    EventType.appeal_contact,
    EventType.appeal_contact_erased,
}

DATA_MODELS: dict[str, type[BaseModel]] = {
    EventType.appeal_submitted: AppealSubmitted,
    EventType.assignment_created: AssignmentCreated,
    EventType.assignment_withdrawn: AssignmentWithdrawn,
    EventType.action_rejected: ActionRejected,
    EventType.department_action: DepartmentAction,
    EventType.company_info_provided: CompanyInfoProvided,
    EventType.company_feedback: CompanyFeedback,
    **{t: SlaClockChanged for t in SLA_CLOCK_TYPES},
    EventType.sla_reported: SlaClocksReported,
    EventType.notification_delivered: NotificationOutcome,
    EventType.notification_failed: NotificationOutcome,
    EventType.enterprise_registered: EnterpriseChanged,
    EventType.enterprise_updated: EnterpriseChanged,
    EventType.company_code_issued: CompanyMessage,
    EventType.company_link_requested: CompanyMessage,
    EventType.appeal_submitted_v2: AppealFiled,
    EventType.appeal_contact: AppealContact,
    EventType.appeal_contact_erased: AppealContactErased,
    **{t: AppealChanged for t in EventType if t.value.startswith("appeal.") and t not in _NOT_LIFECYCLE},
}
