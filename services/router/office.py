"""What the coordinating office decides, and what the lead asks it (docs/domain.md, "Supervision"): extensions,
transfer requests, the review of send-backs. Pure functions from the stored appeal to a `Transition`, like
`lifecycle.py`'s; `supervision.py` holds the rules they check.
"""

from datetime import datetime
from typing import Any

from libs.events import DepartmentAction
from libs.kinds import ActionKind, AppealStatus, EventType
from services.router import supervision
from services.router.rules import RoutingBook
from services.router.transitions import ActionError, Transition, announce, assign, common, move, withdraw

S = AppealStatus


def extension(
    doc: dict[str, Any], action: DepartmentAction, book: RoutingBook, now: datetime, clocks: dict[str, dict[str, Any]]
) -> Transition:
    """Ask for an extension (the lead), or approve or reject the pending one (the office)."""
    try:
        if action.action == ActionKind.request_extension:
            entry = supervision.ask(doc, action, book, now, clocks)
            extensions = [*doc.get("extensions", []), entry]
        else:
            entry = supervision.decide(doc, action, now)
            extensions = [*doc.get("extensions", [])[:-1], entry]
    except supervision.SupervisionError as exc:
        raise ActionError(exc.status, exc.detail) from None
    pending = entry["state"] == supervision.PENDING
    out = Transition(
        set={"extensions": extensions, "extension_pending_until": entry["previous_due_at"] if pending else None}
    )
    announce(
        doc,
        out,
        S(doc["status"]),
        supervision.event_type(entry["state"]),
        actor=action.department,
        clerk=action.clerk,
        note=action.note,
        reason=entry["reason"],
        due_at=entry["until"],
        previous_due_at=entry["previous_due_at"],
    )
    return out


def request_transfer(doc, action, book, now) -> Transition:
    """The lead asks the office to move the appeal (past the send-back window, the only way to)."""
    asked = supervision.transfer_request(doc, action, book, now)
    out = Transition(set={"transfer_request": asked})
    announce(
        doc,
        out,
        S(doc["status"]),
        EventType.appeal_transfer_requested,
        **common(action),
        reason=action.reason,
        target_department=action.target_department,
    )
    return out


def grant_transfer(doc, action, book, now) -> Transition:
    """The office moves the appeal: to the department it names, or to the one the lead suggested."""
    asked = supervision.pending_transfer(doc, action)
    target = action.target_department or asked["target_department"]
    if book.city.department(target) is None:
        raise ActionError(422, f"target_department {target!r} is not a known department")
    if target == doc["lead"]:
        raise ActionError(409, f"{target} already leads this appeal")
    return move(doc, action, target, now)


def refuse_transfer(doc, action, book, now) -> Transition:
    """The office keeps the appeal where it is; the lead is told why."""
    asked = supervision.pending_transfer(doc, action)
    out = Transition(set={"transfer_request": None})
    announce(
        doc,
        out,
        S(doc["status"]),
        EventType.appeal_transfer_refused,
        **common(action),
        target_department=asked["target_department"],
    )
    return out


def review_decline(doc, action, book, now) -> Transition:
    """The office's review of a send-back. An overrule withdraws the new lead and returns the appeal to the
    department that declined it: its scope clock stays met, its response clock runs from its first assignment,
    and it can no longer decline or transfer the appeal on its own. The decline still counts."""
    review = supervision.reviewed(doc, action, now)
    if review["state"] == "confirmed":
        out = Transition(set={"send_back": review})
        announce(doc, out, S(doc["status"]), EventType.appeal_decline_confirmed, **common(action))
        return out
    back, withdrawn = review["declined_by"], doc["lead"]
    cohandlers = [c for c in doc.get("cohandlers", []) if c != back]
    out = Transition(
        set={
            "send_back": review,
            "lead": back,
            "cohandlers": cohandlers,
            "status": S.routed.value,
            "declined_by": [],
            "assigned_at": review["assigned_at"],
            "overruled_for": back,
            "transfer_request": None,
        }
    )
    after = {**doc, "lead": back, "cohandlers": cohandlers}
    announce(
        after,
        out,
        S.routed,
        EventType.appeal_decline_overruled,
        previous_department=withdrawn,
        since=review["assigned_at"],
        **common(action),
    )
    withdraw(doc, out, withdrawn, "overruled", back)
    assign(after, out, back, "lead", back, cohandlers)
    return out


def urge(doc: dict[str, Any], action: DepartmentAction, book: RoutingBook, now: datetime) -> Transition:
    """The office presses the lead by hand (催办), with a comment: counted, and shown in the timeline."""
    if not action.note:
        raise ActionError(422, "note is required to urge: say what the office expects, and by when")
    out = Transition(set={"urgings": [*doc.get("urgings", []), {"at": now, "by": action.clerk, "note": action.note}]})
    announce(doc, out, S(doc["status"]), EventType.appeal_urged, **common(action))
    return out
