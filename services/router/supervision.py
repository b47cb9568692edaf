"""What the coordinating office governs (docs/domain.md, "Supervision"), as pure decisions: extensions (延期).

Router does not time the clocks (sla does); it keeps them as sla reports them, in
`deadlines`, and decides an extension on what it last heard: the lead asks while its
resolution clock runs and before it is due, the office approves or rejects, and sla
moves the due time on the approval. A request records the due time it was asked
against: if the office has not answered by then, it lapses.
"""

from datetime import datetime
from typing import Any

from libs.calendars import parse_target
from libs.deadlines import aware
from libs.events import DepartmentAction
from libs.kinds import AppealStatus, EventType
from libs.mongo import as_stored
from services.router.rules import RoutingBook

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class SupervisionError(Exception):
    """A supervision action refused; `status` follows HTTP (403, 409, 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def resolution_clock(clocks: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The appeal's latest resolution clock (its id and entry), as sla last reported it."""
    runs = [(clock_id, c) for clock_id, c in clocks.items() if c["clock"] == "resolution"]
    return max(runs, key=lambda run: run[1]["started_at"], default=None)


def pending_extension(doc: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The extension asked and not yet answered, unless it lapsed (the old due time came first)."""
    asked = (doc.get("extensions") or [None])[-1]
    if asked is None or asked["state"] != PENDING or aware(asked["previous_due_at"]) <= now:
        return None
    return asked


def latest_limit(book: RoutingBook, department: str, due: datetime) -> datetime:
    """The latest due time an extension may ask for: the configured maximum past the current due, on the
    department's calendar (working days skip weekends and holidays)."""
    target = parse_target(book.supervision.extension.max_past_due)
    calendar = book.calendars.of_department(book.city, department)
    return calendar.add(target, due, calendar.budget(target))


def ask(
    doc: dict[str, Any], action: DepartmentAction, book: RoutingBook, now: datetime, clocks: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The extension the lead asks for, checked against its resolution clock: what the appeal records."""
    if action.until is None or not action.reason:
        raise SupervisionError(422, "until (the new due time) and reason are required to request an extension")
    if action.until.tzinfo is None:
        raise SupervisionError(422, "until needs a time zone, e.g. 2026-12-10T18:00:00+08:00")
    found = resolution_clock(clocks)
    if found is None or found[1]["state"] != "running" or found[1].get("due_at") is None:
        state = found[1]["state"] if found else "not started"
        raise SupervisionError(409, f"an extension is asked while the resolution clock runs; it is {state}")
    clock_id, clock = found
    due = aware(clock["due_at"])
    if now >= due:
        raise SupervisionError(409, f"an extension is asked before the resolution clock is due ({due.isoformat()})")
    if action.until <= due:
        # The appeal's clock, not the request, decides: 409, as past the latest limit below.
        raise SupervisionError(409, f"until must be after the current due time {due.isoformat()}")
    limit = latest_limit(book, clock["department"], due)
    if action.until > limit:
        most = book.supervision.extension.max_past_due
        raise SupervisionError(
            409, f"an extension reaches at most {most} past the current due time: {limit.isoformat()} at the latest"
        )
    if pending_extension(doc, now) is not None:
        raise SupervisionError(409, "an extension is already pending with the coordinating office")
    granted = sum(1 for e in doc.get("extensions", []) if e["clock_id"] == clock_id and e["state"] == APPROVED)
    if granted >= book.supervision.extension.per_clock:
        raise SupervisionError(
            409, f"this resolution clock was extended already ({granted} of {book.supervision.extension.per_clock})"
        )
    return as_stored(
        {
            "state": PENDING,
            "clock_id": clock_id,
            "department": action.department,
            "clerk": action.clerk,
            "until": action.until,
            "reason": action.reason,
            "previous_due_at": due,
            "asked_at": now,
        }
    )


def decide(doc: dict[str, Any], action: DepartmentAction, now: datetime) -> dict[str, Any]:
    """The pending extension as the office's answer leaves it: approved, or rejected with a comment."""
    asked = (doc.get("extensions") or [None])[-1]
    if asked is not None and asked["state"] == PENDING and pending_extension(doc, now) is None:
        raise SupervisionError(
            409, f"the extension lapsed unanswered at the old due time {aware(asked['previous_due_at']).isoformat()}"
        )
    if asked is None or asked["state"] != PENDING:
        raise SupervisionError(409, "no extension is pending on this appeal")
    if doc["status"] not in (AppealStatus.routed, AppealStatus.accepted, AppealStatus.reopened):
        raise SupervisionError(409, f"the appeal is {doc['status']}; its resolution clock no longer runs")
    approve = action.action.value == "approve_extension"
    if not approve and not action.note:
        raise SupervisionError(422, "note is required to reject an extension: tell the department why")
    return {
        **asked,
        "state": APPROVED if approve else REJECTED,
        "decided_at": now,
        "decided_by": action.clerk,
        "comment": action.note,
    }


def event_type(state: str) -> EventType:
    """The lifecycle event announcing an extension in `state`."""
    return {
        PENDING: EventType.appeal_extension_requested,
        APPROVED: EventType.appeal_extension_approved,
        REJECTED: EventType.appeal_extension_rejected,
    }[state]


# --- Send-backs (退单) -------------------------------------------------------------------------------------------


def window_end(doc: dict[str, Any], book: RoutingBook) -> datetime | None:
    """When the lead's send-back window closes: its scope target (or the configured duration) after it was
    assigned the appeal, on its calendar. None for an appeal assigned before router kept the instant."""
    assigned = doc.get("assigned_at")
    if assigned is None or not doc.get("lead"):
        return None
    window = book.supervision.send_back.window
    target = parse_target(book.sla.profile(doc.get("sla_profile")).scope if window == "scope" else window)
    calendar = book.calendars.of_department(book.city, doc["lead"])
    return calendar.add(target, aware(assigned), calendar.budget(target))


def closes_at(doc: dict[str, Any], book: RoutingBook) -> datetime | None:
    """When the lead stops declining or transferring on its own: its window's end, or the office's overrule
    (closed since). None when no window holds it: the office, the city's fallback, moves on what lands on it,
    and an appeal assigned before router kept the instant keeps the freedom it had."""
    lead = doc.get("lead")
    if lead == book.city.coordinating_office:
        return None
    if lead and doc.get("overruled_for") == lead:
        return aware((doc.get("send_back") or {}).get("decided_at") or doc["assigned_at"])
    return window_end(doc, book)


def check_send_back(doc: dict[str, Any], book: RoutingBook, now: datetime, verb: str) -> None:
    """Refuse (409) a decline or a transfer the lead may no longer make on its own."""
    end = closes_at(doc, book)
    if end is None or now < end:
        return
    lead = doc["lead"]
    if doc.get("overruled_for") == lead:
        raise SupervisionError(
            409, f"the coordinating office overruled {lead}'s decline: to move the appeal, ask it (request_transfer)"
        )
    window = book.supervision.send_back.window
    raise SupervisionError(
        409,
        f"the send-back window ({'while the scope clock runs' if window == 'scope' else window}) closed at "
        f"{end.isoformat()}: past it a department can neither {verb} nor move the appeal on its own; "
        "ask the coordinating office (request_transfer)",
    )


def send_back(doc: dict[str, Any], new_lead: str, guidance: str, now: datetime) -> dict[str, Any]:
    """The decline the office reviews: who sent the appeal back, since when it had it, and where it went."""
    return as_stored(
        {
            "state": PENDING,
            "declined_by": doc["lead"],
            "assigned_at": doc.get("assigned_at"),
            "to": new_lead,
            "guidance": guidance,
            "at": now,
        }
    )


def reviewed(doc: dict[str, Any], action: DepartmentAction, now: datetime) -> dict[str, Any]:
    """The pending send-back as the office's review leaves it: overruled, or confirmed."""
    pending = doc.get("send_back")
    if not pending or pending["state"] != PENDING:
        raise SupervisionError(409, "no send-back awaits the office's review on this appeal")
    if action.action.value == "overrule_decline" and doc.get("lead") != pending["to"]:
        raise SupervisionError(
            409, f"the appeal moved on since {pending['declined_by']} declined it; it is {doc.get('lead')}'s now"
        )
    state = "overruled" if action.action.value == "overrule_decline" else "confirmed"
    return {**pending, "state": state, "decided_at": now, "decided_by": action.clerk, "comment": action.note}


def transfer_request(doc: dict[str, Any], action: DepartmentAction, book: RoutingBook, now: datetime) -> dict:
    """What the lead asks the office: move the appeal to the department it suggests, and why."""
    if not action.reason or not action.target_department:
        raise SupervisionError(422, "reason and target_department (the suggestion) are required to request_transfer")
    if book.city.department(action.target_department) is None:
        raise SupervisionError(422, f"target_department {action.target_department!r} is not a known department")
    if action.target_department == doc["lead"]:
        raise SupervisionError(409, f"{action.target_department} already leads this appeal")
    if doc.get("transfer_request"):
        raise SupervisionError(409, "a transfer request is already pending with the coordinating office")
    return as_stored(
        {
            "department": doc["lead"],
            "clerk": action.clerk,
            "target_department": action.target_department,
            "reason": action.reason,
            "at": now,
        }
    )


def pending_transfer(doc: dict[str, Any], action: DepartmentAction) -> dict[str, Any]:
    """The transfer request the office answers; refusing it needs a comment."""
    asked = doc.get("transfer_request")
    if not asked:
        raise SupervisionError(409, "no transfer request is pending on this appeal")
    if action.action.value == "refuse_transfer" and not action.note:
        raise SupervisionError(422, "note is required to refuse a transfer: tell the department why")
    return asked
