"""The platform's vocabulary: categories, channels, statuses, actions, event types and clock kinds.

Event types are past tense and carry their version. Additive changes add optional fields; a breaking change
makes a `.v2` type on a new topic.
"""

from enum import StrEnum


class Category(StrEnum):
    financing = "financing"
    labour = "labour"
    tax = "tax"
    sci_tech = "sci_tech"
    social_security = "social_security"
    export = "export"
    tariffs = "tariffs"
    customs = "customs"
    operations = "operations"
    trade = "trade"
    legal = "legal"
    insurance = "insurance"
    materials = "materials"
    approvals = "approvals"
    other = "other"


class Channel(StrEnum):
    wechat = "wechat"
    web = "web"
    app = "app"
    hotline_12345 = "hotline_12345"
    kiosk = "kiosk"
    staff_visit = "staff_visit"


class AppealStatus(StrEnum):
    submitted = "submitted"
    routed = "routed"
    accepted = "accepted"
    declined = "declined"
    rerouted = "rerouted"
    transferred = "transferred"
    info_requested = "info_requested"
    resolved = "resolved"
    confirmed = "confirmed"
    reopened = "reopened"
    closed = "closed"
    rejected = "rejected"


class ActionKind(StrEnum):
    accept = "accept"
    decline = "decline"
    request_info = "request_info"
    resolve = "resolve"
    transfer = "transfer"
    add_cohandler = "add_cohandler"
    request_extension = "request_extension"
    # The coordinating office's (docs/domain.md, "Supervision").
    approve_extension = "approve_extension"
    reject_extension = "reject_extension"
    # Past the send-back window the lead asks the office to move the appeal (退单 after the window).
    request_transfer = "request_transfer"
    grant_transfer = "grant_transfer"
    refuse_transfer = "refuse_transfer"
    # The office reviews each send-back: it withdraws the new lead and returns the appeal, or lets it stand.
    overrule_decline = "overrule_decline"
    confirm_decline = "confirm_decline"
    # 催办 by hand: the office presses the lead, with a comment.
    urge = "urge"
    # A co-handler's part of the answer, to the lead.
    contribute = "contribute"


class EventType(StrEnum):
    appeal_submitted = "appeal.submitted.v1"
    appeal_routed = "appeal.routed.v1"
    appeal_accepted = "appeal.accepted.v1"
    appeal_declined = "appeal.declined.v1"
    appeal_rerouted = "appeal.rerouted.v1"
    appeal_transferred = "appeal.transferred.v1"
    appeal_cohandler_added = "appeal.cohandler_added.v1"
    appeal_info_requested = "appeal.info_requested.v1"
    appeal_info_provided = "appeal.info_provided.v1"
    appeal_resolved = "appeal.resolved.v1"
    appeal_confirmed = "appeal.confirmed.v1"
    appeal_reopened = "appeal.reopened.v1"
    appeal_closed = "appeal.closed.v1"
    appeal_rejected = "appeal.rejected.v1"
    appeal_extension_requested = "appeal.extension_requested.v1"
    appeal_extension_approved = "appeal.extension_approved.v1"
    appeal_extension_rejected = "appeal.extension_rejected.v1"
    appeal_transfer_requested = "appeal.transfer_requested.v1"
    appeal_transfer_refused = "appeal.transfer_refused.v1"
    appeal_decline_overruled = "appeal.decline_overruled.v1"
    appeal_decline_confirmed = "appeal.decline_confirmed.v1"
    appeal_urged = "appeal.urged.v1"
    appeal_contributed = "appeal.contributed.v1"
    # Return visits (回访, docs/domain.md "Return visits and assessment"): the survey link is due; an attempt.
    appeal_visit_due = "appeal.visit_due.v1"
    appeal_visited = "appeal.visited.v1"
    assignment_created = "assignment.created.v1"
    assignment_withdrawn = "assignment.withdrawn.v1"
    action_rejected = "department.action_rejected.v1"
    department_action = "department.action.v1"
    company_info_provided = "company.info_provided.v1"
    company_feedback = "company.feedback.v1"
    sla_started = "sla.started.v1"
    sla_paused = "sla.paused.v1"
    sla_resumed = "sla.resumed.v1"
    sla_warning = "sla.warning.v1"
    sla_breached = "sla.breached.v1"
    sla_met = "sla.met.v1"
    sla_cancelled = "sla.cancelled.v1"
    sla_extended = "sla.extended.v1"
    sla_urged = "sla.urged.v1"
    sla_reported = "sla.reported.v2"
    notification_delivered = "notification.delivered.v1"
    notification_failed = "notification.failed.v1"
    enterprise_registered = "enterprise.registered.v1"
    enterprise_updated = "enterprise.updated.v1"
    company_code_issued = "company.code_issued.v1"
    company_link_requested = "company.link_requested.v1"
    appeal_submitted_v2 = "appeal.submitted.v2"
    appeal_contact = "appeal.contact.v1"
    appeal_contact_erased = "appeal.contact_erased.v1"


class VisitOutcome(StrEnum):
    """How a return visit or the company's own answer ended; a score 5 is satisfied, 4 basically, 1-3 not."""

    satisfied = "satisfied"
    basically_satisfied = "basically_satisfied"
    unsatisfied = "unsatisfied"
    # Never reached: shown, never counted as satisfied.
    unreached = "unreached"


class Cause(StrEnum):
    """Whose the reason for an unsatisfied answer is: the department's (a redo), or outside it (policy)."""

    department = "department"
    outside = "outside"


def outcome_of(score: int) -> VisitOutcome:
    """A company's score as an outcome: 5 satisfied, 4 basically satisfied, 1-3 unsatisfied."""
    if score >= 5:
        return VisitOutcome.satisfied
    return VisitOutcome.basically_satisfied if score == 4 else VisitOutcome.unsatisfied


class ClockKind(StrEnum):
    scope = "scope"
    response = "response"
    resolution = "resolution"
    # Each co-handler's own: its part of the answer, to the lead (config/supervision.yaml, cohandling).
    contribution = "contribution"


class ClockState(StrEnum):
    running = "running"
    paused = "paused"
    met = "met"
    breached = "breached"
    cancelled = "cancelled"


def lifecycle_type(status: AppealStatus) -> str:
    """The lifecycle event type announcing `status`."""
    return f"appeal.{status.value}.v1"
