"""Router's request and response bodies."""

from datetime import date, datetime
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from libs.deadlines import Deadline
from libs.events import PolicyRef
from libs.kinds import ActionKind, Category, Cause, VisitOutcome
from libs.links import Attachment
from libs.uscc import USCC_SCHEMA
from libs.wire import Boolean, Day, Instant, Integer, integral

# What each action needs besides `action`: a field present and not empty. The OpenAPI document says it (an `if`/`then`
# per action) and the model checks it, in one table; the state of the appeal decides the rest (403, 409).
REQUIRED_FOR: dict[ActionKind, tuple[str, ...]] = {
    ActionKind.decline: ("guidance",),
    ActionKind.request_info: ("note",),
    ActionKind.resolve: ("resolution",),
    ActionKind.transfer: ("target_department",),
    ActionKind.add_cohandler: ("target_department",),
    ActionKind.contribute: ("note",),
    ActionKind.request_extension: ("until", "reason"),
    ActionKind.reject_extension: ("note",),
    ActionKind.request_transfer: ("reason", "target_department"),
    ActionKind.refuse_transfer: ("note",),
    ActionKind.urge: ("note",),
}


def _required_for_each_action() -> Any:
    rules = []
    for kind, fields in REQUIRED_FOR.items():
        present: dict[str, Any] = {f: {"not": {"type": "null"}} for f in fields}
        present.update({f: {"type": "string", "minLength": 1} for f in fields if f != "until"})
        rules.append(
            {
                "if": {"properties": {"action": {"const": kind.value}}, "required": ["action"]},
                "then": {"required": list(fields), "properties": present},
            }
        )
    return rules


class ActionIn(BaseModel):
    """A department's action on one of its appeals."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": _required_for_each_action(),
            "examples": [
                {"action": "accept", "note": "We will contact the bank today."},
                {
                    "action": "decline",
                    "guidance": "Customs questions go to Shenzhen Customs.",
                    "target_department": "customs",
                },
                {
                    "action": "resolve",
                    "resolution": "Repayment deferred by 6 months.",
                    "policy_refs": ["deferred-repayment"],
                },
            ],
        },
    )

    action: ActionKind
    note: str | None = Field(default=None, max_length=4000)
    guidance: str | None = Field(default=None, max_length=4000, description="Required for decline.")
    resolution: str | None = Field(default=None, max_length=8000, description="Required for resolve.")
    policy_refs: list[str] = Field(default_factory=list, max_length=20)
    target_department: str | None = Field(
        default=None,
        max_length=64,
        description="Required for transfer and add_cohandler, and for request_transfer (the department suggested); "
        "for grant_transfer, another department than the one suggested.",
    )
    clerk: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Who at the department acts, by name: the timeline shows it beside the department.",
        examples=["Wang Fang"],
    )
    until: Instant | None = Field(
        default=None,
        description="For request_extension: the new resolution due time asked for, with its zone; at most the "
        "configured working days (config/supervision.yaml) past the current due time.",
        examples=["2026-12-18T18:00:00+08:00"],
    )
    attachments: list[Attachment] = Field(
        default_factory=list, max_length=20, description="For contribute: https links to the co-handler's documents."
    )
    reason: str | None = Field(
        default=None,
        max_length=2000,
        description="For request_extension (why the department needs the time) and request_transfer (why the "
        "appeal is another department's).",
    )

    def missing(self) -> list[str]:
        """The fields its action needs that are absent or empty (`REQUIRED_FOR`)."""
        return [f for f in REQUIRED_FOR.get(self.action, ()) if getattr(self, f) in (None, "")]


class TimelineEntry(BaseModel):
    """One step of an appeal's lifecycle, as the departments see it."""

    type: str = Field(examples=["appeal.accepted.v1"])
    status: str = Field(examples=["accepted"])
    time: datetime
    department: str | None = Field(default=None, description="The lead after this step.")
    actor: str | None = Field(default=None, description="Department code, 'company' or 'system'.")
    clerk: str | None = Field(default=None, description="The clerk who acted for the department, when named.")
    note: str | None = None
    guidance: str | None = None
    resolution: str | None = None
    reason: str | None = None
    due_at: datetime | None = Field(default=None, description="For extensions: the due time asked for or granted.")
    target_department: str | None = None
    previous_department: str | None = None
    attachments: list[str] = Field(default_factory=list)
    policy_refs: list[str] = Field(default_factory=list)


class Extension(BaseModel):
    """An extension (延期) the lead asked for, and the office's answer."""

    state: str = Field(description="pending, approved or rejected; a pending one lapses at previous_due_at.")
    clock_id: str = Field(description="The resolution clock it extends; each run may be extended once.")
    department: str = Field(description="The department that asked.")
    clerk: str | None = None
    until: datetime = Field(description="The due time asked for.")
    reason: str
    previous_due_at: datetime = Field(description="The resolution clock's due time when it was asked.")
    asked_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = Field(default=None, description="Who at the office decided, by name.")
    comment: str | None = None


class Contribution(BaseModel):
    """A co-handler's part of the answer, for the lead."""

    department: str
    clerk: str | None = None
    note: str
    attachments: list[str] = Field(default_factory=list)
    at: datetime


class Urging(BaseModel):
    """The coordinating office pressed the lead by hand (催办)."""

    at: datetime
    by: str | None = Field(default=None, description="Who at the office, by name.")
    note: str


class SendBack(BaseModel):
    """A decline (退单) the coordinating office reviews: it may return the appeal (overrule) or let it stand."""

    state: str = Field(description="pending, overruled or confirmed.")
    declined_by: str
    to: str = Field(description="The department it went to.")
    guidance: str | None = None
    at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    comment: str | None = None


class VisitAttempt(BaseModel):
    """One call of the coordinating office to the company."""

    at: datetime
    visitor: str
    reached: bool
    outcome: VisitOutcome | None = None
    score: int | None = None
    cause: Cause | None = None
    note: str | None = None


class Visit(BaseModel):
    """The return visit (回访) of the appeal's latest resolution round."""

    round: int = Field(description="1 for the first resolution, 2 after one redo, ...")
    state: str = Field(
        description="scheduled (the survey link is not due yet), surveyed (sent; an answer or a call is awaited), "
        "review (the company said not resolved: the office may find the cause outside the department), visited, "
        "answered (by the company itself), unreached, or unselected (no visit: closes after days of silence)."
    )
    due_at: datetime | None = Field(default=None, description="When the survey link goes.")
    call_from: datetime | None = Field(default=None, description="When the office calls a company still silent.")
    unreached_at: datetime | None = Field(default=None, description="When a visit still unanswered is unreached.")
    attempts: list[VisitAttempt] = Field(default_factory=list)
    outcome: VisitOutcome | None = None
    score: int | None = None
    cause: Cause | None = None
    ended_at: datetime | None = None


class AttemptIn(BaseModel):
    """An attempt to reach the company (回访), or the office's review of its "not resolved"."""

    model_config = ConfigDict(extra="forbid")

    visitor: str = Field(min_length=1, max_length=100, description="Who at the office called, by name.")
    reached: Boolean
    outcome: VisitOutcome | None = Field(
        default=None, description="When reached: satisfied, basically_satisfied or unsatisfied (else from score)."
    )
    score: Annotated[int, Strict(), Ge(1), Le(5), BeforeValidator(integral)] | None = Field(
        default=None, description="When reached: 5 satisfied, 4 basically, 1-3 not."
    )
    cause: Cause | None = Field(
        default=None,
        description="When unsatisfied: department (a redo) or outside (policy does not allow it: the appeal closes).",
    )
    note: str | None = Field(default=None, max_length=2000)


class ReturnVisitRow(BaseModel):
    """A return visit task, for the office: the contact only while the task is open."""

    appeal_id: str
    title: str
    category: str
    lead: str | None
    status: str
    enterprise_name: str | None = None
    contact: dict | None = Field(default=None, description="Name and phone, on an open task only. Reading is logged.")
    resolution: str | None = None
    resolved_at: datetime | None = None
    redo_count: int = 0
    visit: Visit
    to_call: bool = Field(description="Open, past its call_from: the office calls now, in office hours.")


class TransferRequest(BaseModel):
    """Past its send-back window, the lead asks the office to move the appeal."""

    department: str
    clerk: str | None = None
    target_department: str = Field(description="The department the lead suggests.")
    reason: str
    at: datetime


class AppealOut(BaseModel):
    """An appeal as the departments see it."""

    appeal_id: str
    status: str
    lead: str | None = None
    cohandlers: list[str] = Field(default_factory=list)
    chosen_department: str | None = Field(default=None, description="The department the company chose, if any.")
    taken_by: str | None = Field(default=None, description="The liaison who took it on a staff visit.")
    declined_by: list[str] = Field(
        default_factory=list, description="Departments that declined it in a row; a second sends it to the fallback."
    )
    category: str
    district: str
    size_band: str
    channel: str
    flags: list[str] = Field(default_factory=list, description="From the government lists the company is on.")
    lists: list[str] = Field(default_factory=list, description="The lists the company was on when it appealed.")
    declared_flags: list[str] = Field(default_factory=list, description="What the channel declared: not verified.")
    phone_verified: bool | None = Field(
        default=None, description="The contact's phone is one the registry has; none when it has none."
    )
    title: str
    description: str
    enterprise: dict
    contact: dict | None = Field(
        default=None,
        description="Who to reach at the company; none once erased (docs/privacy.md). Reading it is logged.",
    )
    submitted_at: datetime
    updated_at: datetime | None = None
    sla_profile: str | None = None
    policy_available: bool = False
    rule_id: str | None = None
    policies: list[PolicyRef] = Field(default_factory=list)
    resolution: str | None = None
    reason: str | None = None
    sequence: int
    next_due: datetime | None = Field(default=None, description="When its first running SLA clock runs out.")
    deadlines: list[Deadline] = Field(default_factory=list, description="Its SLA clocks, cancelled ones left out.")
    timeline: list[TimelineEntry] = Field(default_factory=list, description="Its lifecycle, oldest first.")
    extensions: list[Extension] = Field(default_factory=list, description="Extensions asked, oldest first.")
    contributions: list[Contribution] = Field(
        default_factory=list, description="What the co-handlers contributed, oldest first."
    )
    send_back: SendBack | None = Field(default=None, description="The latest send-back and its review, if any.")
    transfer_request: TransferRequest | None = None
    assigned_at: datetime | None = Field(
        default=None, description="When the lead was assigned it: its send-back window runs from here."
    )
    send_back_closes_at: datetime | None = Field(
        default=None,
        description="When the lead's send-back window closes: later it neither declines nor transfers on its own "
        "(request_transfer). None when no window holds it.",
    )
    urgings: list[Urging] = Field(default_factory=list, description="The office's urgings by hand, oldest first.")
    visit: Visit | None = Field(default=None, description="The return visit of the latest resolution round.")
    redo_count: int = Field(default=0, description="How often the appeal was sent back to be redone (重办).")
    redo_due_at: datetime | None = Field(default=None, description="The latest redo's resolution due time.")


class QueueRow(BaseModel):
    """An appeal in the city queue: what the coordinating office needs to govern it, without the contact."""

    appeal_id: str
    title: str
    category: str
    district: str
    enterprise_name: str | None = None
    lead: str | None = None
    cohandlers: list[str] = Field(default_factory=list)
    status: str
    submitted_at: datetime
    states: list[str] = Field(
        description="overdue, at_risk, extension_pending, sent_back, transfer_requested.", examples=[["overdue"]]
    )
    deadlines: list[Deadline] = Field(default_factory=list)
    extension: Extension | None = Field(default=None, description="The latest extension asked, if any.")
    send_back: SendBack | None = Field(default=None, description="The latest send-back and its review, if any.")
    transfer_request: TransferRequest | None = Field(default=None, description="A transfer the lead asked for.")
    urge_level: int | None = Field(
        default=None, description="The urging ladder's level its clocks reached: 1 breached, 2 催办, 3 督办."
    )
    urgings: int = Field(default=0, description="How often the office urged it by hand.")
    redo_count: int = Field(default=0, description="How often it was sent back to be redone (重办).")


class PreviewIn(BaseModel):
    """The facts of an appeal to try the routing on."""

    category: Category
    district: str = Field(examples=["nanshan"])
    employees: Integer = Field(ge=0, examples=[25])
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=20_000)
    uscc: str | None = Field(
        default=None,
        description="A company of the registry: its lists today give the flags.",
        json_schema_extra=USCC_SCHEMA,
    )
    lists: list[str] | None = Field(default=None, description="Lists to assume instead of the registry's.")
    flags: list[str] = Field(default_factory=list, description="What a channel would declare: shown, never used.")
    department: str | None = Field(default=None, description="The department the company would choose.")


class PreviewOut(BaseModel):
    """What would happen to such an appeal, and why."""

    lead: str
    cohandlers: list[str]
    rule_id: str | None
    policies: list[PolicyRef]
    policy_available: bool
    sla_profile: str
    size_band: str
    flags_from_lists: dict[str, str] = Field(default_factory=dict, description="Each flag used, by its list.")
    declared_flags_ignored: list[str] = Field(default_factory=list)
    explanation: list[str]


class MembershipIn(BaseModel):
    """A company's place on a government list."""

    model_config = ConfigDict(extra="forbid")

    list: str = Field(description="List id (GET /v1/lists).", examples=["key_sme"])
    since: Day = Field(description="First local day on the list.")
    until: Day | None = Field(default=None, description="First local day off it; none while on it.")


class EnterpriseIn(BaseModel):
    """A company as an admin records it; memberships, when given, replace the company's."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "深圳市蓝海网络科技有限公司",
                    "district": "nanshan",
                    "industry": "internet services",
                    "phones": ["13800138000"],
                    "liaison": "zhou-min",
                    "memberships": [{"list": "key_sme", "since": "2026-02-01"}],
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    district: str | None = Field(default=None, max_length=50)
    industry: str | None = Field(default=None, max_length=100)
    phones: list[str] = Field(default_factory=list, max_length=10)
    liaison: str | None = Field(default=None, max_length=64, description="Liaison id (config/registry.yaml).")
    memberships: list[MembershipIn] | None = None


class AppealRecord(BaseModel):
    """One appeal in a company's history."""

    appeal_id: str
    status: str
    category: str
    title: str
    lead: str | None = None
    sla_profile: str | None = None
    lists: list[str] = Field(default_factory=list)
    submitted_at: datetime
    resolved_at: datetime | None = None
    next_due: datetime | None = Field(default=None, description="When its first running SLA clock runs out.")
    deadlines: list[Deadline] = Field(default_factory=list, description="Its SLA clocks, cancelled ones left out.")


class EnterpriseOut(BaseModel):
    """A company of the registry: profile, lists, liaison and its appeals, newest first."""

    uscc: str
    name: str
    district: str | None = None
    industry: str | None = None
    phones: list[str] = Field(default_factory=list)
    liaison: str | None = None
    memberships: list[MembershipIn] = Field(default_factory=list)
    lists_today: list[str] = Field(default_factory=list, description="The lists the company is on today.")
    flags_today: dict[str, str] = Field(default_factory=dict, description="Each flag it has today, by the list.")
    version: int
    appeals: list[AppealRecord] = Field(default_factory=list)


class RefusedRow(BaseModel):
    line: int = Field(description="Line in the file (the header is line 1).")
    reason: str


class ImportResult(BaseModel):
    """What an import of a government list did."""

    list_id: str
    as_of: date
    rows: int = Field(description="Rows read, refused ones included.")
    registered: int = Field(description="Companies the registry did not know before.")
    updated: int = Field(description="Known companies whose profile or membership changed.")
    ended: int = Field(description="Companies no longer on the list: their membership ends on `as_of`.")
    unchanged: int
    refused: list[RefusedRow]


class ListOut(BaseModel):
    """A government list the registry keeps."""

    id: str
    name: str
    name_zh: str | None = None
    flag: str
    source: str
    members: int = Field(description="Companies on the list today.")


class AuditEntry(BaseModel):
    """One change to a company: who made it, when, and what changed from what to what."""

    at: datetime
    actor: str
    action: str
    changes: dict[str, dict[str, Any]]
