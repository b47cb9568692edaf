"""The appeal lifecycle state machine (docs/domain.md, "Lifecycle"): pure functions from state to outcome.

Each function takes the appeal as stored and returns the fields to set and the
events to emit; persistence and publishing live in `service.py`.
"""

from datetime import datetime
from typing import Any

from libs.contract import department_actions_topic, department_of
from libs.events import AppealFiled, AppealSubmitted, Contact, DepartmentAction
from libs.kinds import ActionKind, AppealStatus, Cause, EventType, VisitOutcome, outcome_of
from libs.outbox import Emit
from services.router import office, registry, supervision, visits
from services.router.rules import AppealFacts, RoutingBook, route
from services.router.transitions import ActionError, Transition, announce, assign, common, move, withdraw

S = AppealStatus
OPEN_STATUSES = {S.submitted, S.routed, S.accepted, S.info_requested, S.resolved, S.reopened}

# Which statuses each department action may start from.
ALLOWED_FROM: dict[ActionKind, set[AppealStatus]] = {
    ActionKind.accept: {S.routed, S.reopened},
    ActionKind.decline: {S.routed},
    ActionKind.request_info: {S.routed, S.accepted, S.reopened},
    ActionKind.resolve: {S.accepted},
    ActionKind.transfer: {S.routed, S.accepted, S.reopened},
    ActionKind.add_cohandler: {S.routed, S.accepted, S.info_requested, S.reopened},
    ActionKind.request_extension: {S.routed, S.accepted, S.reopened},
    ActionKind.approve_extension: {S.routed, S.accepted, S.info_requested, S.reopened},
    ActionKind.reject_extension: {S.routed, S.accepted, S.info_requested, S.reopened},
    ActionKind.request_transfer: {S.routed, S.accepted, S.info_requested, S.reopened},
    ActionKind.grant_transfer: {S.routed, S.accepted, S.info_requested, S.reopened},
    ActionKind.refuse_transfer: {S.routed, S.accepted, S.info_requested, S.reopened},
    ActionKind.overrule_decline: {S.routed, S.accepted},
    ActionKind.confirm_decline: {S.routed, S.accepted, S.info_requested, S.resolved, S.reopened},
    ActionKind.urge: {S.routed, S.accepted, S.info_requested, S.reopened},
    # The lead may resolve before every co-handler contributed; a late part still reaches it.
    ActionKind.contribute: {S.routed, S.accepted, S.info_requested, S.resolved, S.reopened},
}

# What the coordinating office may also do on any appeal, as the city's dispatcher (no send-back window holds it).
OFFICE_DISPATCH = {ActionKind.transfer, ActionKind.add_cohandler}
# An office leading an appeal does not approve its own extension: an operator does.
SELF_APPROVALS = {ActionKind.approve_extension, ActionKind.reject_extension, ActionKind.urge}
# What the coordinating office does.
OFFICE_ACTIONS = {
    ActionKind.approve_extension,
    ActionKind.reject_extension,
    ActionKind.grant_transfer,
    ActionKind.refuse_transfer,
    ActionKind.overrule_decline,
    ActionKind.confirm_decline,
    ActionKind.urge,
}

LITIGATION_FLAGS = ("in_litigation", "in_arbitration")


def handlers(doc: dict[str, Any]) -> list[str]:
    """The departments working on an appeal, lead first: what department worklists are indexed on."""
    lead = doc.get("lead")
    return ([lead] if lead else []) + [c for c in doc.get("cohandlers", []) if c != lead]


def duplicate_key(uscc: str, category: str, title: str) -> str:
    """Same company, category and title (case and spacing ignored) make a duplicate."""
    return f"{uscc}|{category}|{' '.join(title.casefold().split())}"


def facts_of(doc: dict[str, Any]) -> AppealFacts:
    """The routing facts of a stored appeal."""
    return AppealFacts(
        category=doc["category"],
        district=doc["district"],
        size_band=doc["size_band"],
        title=doc["title"],
        description=doc["description"],
        flags=tuple(doc.get("flags", [])),
    )


def new_appeal(
    submitted: AppealFiled, book: RoutingBook, company: dict[str, Any] | None = None, contact: Contact | None = None
) -> dict[str, Any]:
    """The stored form of a freshly submitted appeal, before any decision.

    `company` is the registry's document of the appealing company, if it knows it: the
    lists it is on the day it appeals give the flags routing, policies and deadlines
    see; what the channel declared is kept beside them and decides nothing but an
    inadmissible matter. `contact` came on appeals.contacts.v1 (an appeal.submitted.v1 carried its own).
    """
    if isinstance(submitted, AppealSubmitted):
        contact = submitted.contact
    e = submitted.enterprise
    lists = registry.lists_on(company, submitted.submitted_at.astimezone(book.tz).date())
    return {
        "_id": submitted.appeal_id,
        "status": S.submitted.value,
        "sequence": 0,
        "channel": submitted.channel.value,
        "channel_ref": submitted.channel_ref,
        "category": submitted.category.value,
        "district": e.district,
        "size_band": submitted.size_band,
        "flags": sorted(registry.flags_of(lists, book.registry)),
        "lists": lists,
        "declared_flags": submitted.flags,
        "phone_verified": registry.phone_matches(company, contact.phone) if contact else None,
        "liaison": company.get("liaison") if company else None,
        "chosen_department": submitted.department,
        "taken_by": submitted.taken_by,
        "title": submitted.title,
        "description": submitted.description,
        "attachments": submitted.attachments,
        "enterprise": e.model_dump(),
        "contact": contact.model_dump() if contact else None,
        "submitted_at": submitted.submitted_at,
        "cohandlers": [],
        "declined_by": [],
        "policies": [],
        "dup_key": duplicate_key(e.uscc, submitted.category.value, submitted.title),
        "open": True,
    }


def decide_admission(doc: dict[str, Any], book: RoutingBook) -> Transition:
    """Route a new appeal, or reject it when the matter is in litigation or arbitration."""
    out = Transition()
    flagged = [f for f in doc.get("declared_flags", doc.get("flags", [])) if f in LITIGATION_FLAGS]
    if flagged:
        return reject(
            doc,
            f"the matter is {flagged[0].replace('_', ' ')}; the platform cannot take it up "
            "while a court or arbitration body handles it",
        )
    decision = route(book, facts_of(doc), chosen=_chosen(doc, book))
    doc_after = {
        **doc,
        "lead": decision.lead,
        "cohandlers": decision.cohandlers,
        "rule_id": decision.rule_id,
        "policies": [p.model_dump() for p in decision.policies],
        "sla_profile": decision.sla_profile,
        "policy_available": decision.policy_available,
        "status": S.routed.value,
    }
    out.set.update(
        {
            k: doc_after[k]
            for k in ("lead", "cohandlers", "rule_id", "policies", "sla_profile", "policy_available", "status")
        }
    )
    out.set["routing_explanation"] = decision.explanation
    announce(doc_after, out, S.routed, reason="; ".join(decision.explanation))
    assign(doc_after, out, decision.lead, "lead", decision.lead, decision.cohandlers)
    for co in decision.cohandlers:
        assign(doc_after, out, co, "cohandler", decision.lead, decision.cohandlers)
    return out


def _chosen(doc: dict[str, Any], book: RoutingBook) -> str | None:
    """The department the company chose, while it may still lead (it has not declined the appeal)."""
    code = doc.get("chosen_department")
    department = book.city.department(code) if code else None
    if department is None or not department.active or code in doc.get("declined_by", []) or doc.get("chosen_declined"):
        return None
    return code


def reject(doc: dict[str, Any], reason: str) -> Transition:
    """Refuse to admit an appeal, with the reason the company is told."""
    out = Transition(set={"status": S.rejected.value, "open": False, "reason": reason})
    announce({**doc, "lead": None}, out, S.rejected, reason=reason, actor="system")
    return out


def acting_department(topic: str, action: DepartmentAction) -> DepartmentAction:
    """The action as the department whose actions topic it came on: only that department's principal may write
    there, so the topic says who acts. One naming another department is refused (403), never applied as either.
    `appeals.actions.v1`, which router only drains now, still names its department in the event."""
    code = department_of(topic)
    if code is None:
        return action
    if action.department != code:
        raise ActionError(403, f"an action on {topic} is {code}'s; this one names {action.department}")
    return action


def with_echo(out: Transition, action: DepartmentAction, event_id: str) -> Transition:
    """`out` with the action itself published on its department's actions topic, under the id it was applied
    with: the department's topic then holds every action it took, over HTTP too, and router, reading it there,
    finds it applied already."""
    topic = department_actions_topic(action.department)
    out.emits.append(Emit(topic, EventType.department_action, action, id=event_id))
    return out


def authorize(doc: dict[str, Any], action: DepartmentAction, book: RoutingBook, *, operator: bool = False) -> None:
    """The one place that decides who may take an action on an appeal; raises ActionError(403) otherwise.

    The lead department acts on its appeals; the coordinating office takes the office's actions on any
    appeal, but an extension of one it leads is decided by an operator (acting as the office), and also
    moves any appeal or brings in a co-handler, as the city's dispatcher.
    """
    dept, lead, office = action.department, doc.get("lead"), book.city.coordinating_office
    verb = action.action.value
    if action.action in OFFICE_ACTIONS:
        if dept != office:
            raise ActionError(403, f"only the coordinating office {office} may {verb}")
        if lead == office and not operator and action.action in SELF_APPROVALS:
            raise ActionError(403, f"{office} leads this appeal: an operator, not the office itself, may {verb}")
        return
    if action.action in OFFICE_DISPATCH and dept == office:
        return
    if action.action == ActionKind.contribute:
        if dept not in doc.get("cohandlers", []):
            raise ActionError(403, f"only a co-handler contributes; {dept} does not co-handle this appeal")
        return
    if dept != lead:
        if dept in doc.get("cohandlers", []):
            raise ActionError(403, f"{dept} co-handles this appeal; only the lead department {lead} may {verb} it")
        raise ActionError(403, f"appeal {doc['_id']} is not assigned to {dept}")


def decide_action(
    doc: dict[str, Any],
    action: DepartmentAction,
    book: RoutingBook,
    now: datetime,
    *,
    clocks: dict[str, dict[str, Any]] | None = None,
    operator: bool = False,
) -> Transition:
    """Apply an action, or raise ActionError (403 scope, 409 transition, 422 missing field).

    `clocks` are the appeal's clocks as sla last reported them: an extension is asked against them.
    """
    authorize(doc, action, book, operator=operator)
    status = S(doc["status"])
    if status not in ALLOWED_FROM[action.action]:
        raise ActionError(409, f"cannot {action.action.value} an appeal that is {status.value}")
    if action.action in (ActionKind.request_extension, ActionKind.approve_extension, ActionKind.reject_extension):
        return office.extension(doc, action, book, now, clocks or {})
    handler = {
        ActionKind.accept: _accept,
        ActionKind.decline: _decline,
        ActionKind.request_info: _request_info,
        ActionKind.resolve: _resolve,
        ActionKind.transfer: _transfer,
        ActionKind.add_cohandler: _add_cohandler,
        ActionKind.request_transfer: office.request_transfer,
        ActionKind.grant_transfer: office.grant_transfer,
        ActionKind.refuse_transfer: office.refuse_transfer,
        ActionKind.overrule_decline: office.review_decline,
        ActionKind.confirm_decline: office.review_decline,
        ActionKind.urge: office.urge,
        ActionKind.contribute: _contribute,
    }[action.action]
    try:
        return handler(doc, action, book, now)
    except supervision.SupervisionError as exc:
        raise ActionError(exc.status, exc.detail) from None


def _accept(doc, action, book, now) -> Transition:
    out = Transition(set={"status": S.accepted.value, "declined_by": [], "accepted_at": now})
    announce(doc, out, S.accepted, **common(action))
    return out


def _decline(doc, action, book: RoutingBook, now) -> Transition:
    if not action.guidance:
        raise ActionError(422, "guidance is required when declining: tell the company where to go")
    office = book.city.coordinating_office
    if doc["lead"] == office:
        raise ActionError(409, "the coordinating office is the fallback and cannot decline; transfer instead")
    target = action.target_department
    if target is not None and book.city.department(target) is None:
        raise ActionError(422, f"target_department {target!r} is not a known department")
    supervision.check_send_back(doc, book, now, "decline")
    chosen = _chosen(doc, book) == doc["lead"]
    # The department the company chose declining is routing's first step, not a decline in a row: the rules
    # route the appeal as if it had come without a choice, co-handlers included.
    declined_by = list(doc.get("declined_by", [])) if chosen else [*doc.get("declined_by", []), doc["lead"]]
    joining: list[str] = []
    if chosen:
        decision = route(book, facts_of(doc), exclude={doc["lead"]})
        new_lead, joining = decision.lead, decision.cohandlers
        why = f"{doc['lead']}, chosen by the company, declined; " + "; ".join(decision.explanation[:2])
    elif len(declined_by) >= 2:
        new_lead, why = office, "declined twice in a row; the coordinating office takes over"
    elif target and target not in declined_by:
        new_lead, why = target, f"{doc['lead']} pointed to {target}"
    else:
        new_lead = route(book, facts_of(doc), exclude=set(declined_by)).lead
        why = f"rerouted after {doc['lead']} declined"
    cohandlers = [c for c in dict.fromkeys([*doc.get("cohandlers", []), *joining]) if c != new_lead]
    out = Transition(
        set={
            "declined_by": declined_by,
            "lead": new_lead,
            "cohandlers": cohandlers,
            "status": S.routed.value,
            "assigned_at": now,
            "overruled_for": None,
        }
    )
    if chosen:
        out.set["chosen_declined"] = True
        out.set["rule_id"] = decision.rule_id
    else:
        # A send-back: the office reviews it, and may return the appeal (overrule_decline).
        out.set["send_back"] = supervision.send_back(doc, new_lead, action.guidance, now)
    # The declining department stays the event's department; where the appeal went is its target.
    announce(
        doc, out, S.declined, **common(action), guidance=action.guidance, chosen=chosen, target_department=new_lead
    )
    after = {**doc, "lead": new_lead, "cohandlers": cohandlers}
    announce(
        after, out, S.routed, EventType.appeal_rerouted, previous_department=doc["lead"], reason=why, actor="system"
    )
    withdraw(doc, out, doc["lead"], "declined", new_lead)
    assign(after, out, new_lead, "lead", new_lead, cohandlers)
    for co in joining:
        if co != new_lead:
            assign(after, out, co, "cohandler", new_lead, cohandlers)
    return out


def _request_info(doc, action, book, now) -> Transition:
    if not action.note:
        raise ActionError(422, "note is required: say what information the company must provide")
    out = Transition(set={"status": S.info_requested.value, "status_before_info": doc["status"]})
    announce(doc, out, S.info_requested, **common(action))
    return out


def _resolve(doc, action, book, now) -> Transition:
    if not action.resolution:
        raise ActionError(422, "resolution is required: say what was done")
    visit = visits.plan(doc, book, now)
    out = Transition(
        set={
            "status": S.resolved.value,
            "resolved_at": now,
            "resolution": action.resolution,
            "policy_refs": action.policy_refs,
            "visit": visit,
        }
    )
    announce(doc, out, S.resolved, **common(action), resolution=action.resolution, visit_round=visit["round"])
    return out


def _target(action: DepartmentAction, book: RoutingBook, doc: dict[str, Any]) -> str:
    target = action.target_department
    if not target:
        raise ActionError(422, f"target_department is required to {action.action.value}")
    if book.city.department(target) is None:
        raise ActionError(422, f"target_department {target!r} is not a known department")
    if target == doc["lead"]:
        raise ActionError(409, f"{target} already leads this appeal")
    return target


def _transfer(doc, action, book, now) -> Transition:
    if action.department == doc["lead"]:
        supervision.check_send_back(doc, book, now, "transfer")
    return move(doc, action, _target(action, book, doc), now)


def _add_cohandler(doc, action, book, now) -> Transition:
    target = _target(action, book, doc)
    if target in doc.get("cohandlers", []):
        raise ActionError(409, f"{target} already co-handles this appeal")
    cohandlers = [*doc.get("cohandlers", []), target]
    out = Transition(set={"cohandlers": cohandlers})
    after = {**doc, "cohandlers": cohandlers}
    announce(after, out, S(doc["status"]), EventType.appeal_cohandler_added, **common(action))
    assign(after, out, target, "cohandler", doc["lead"], cohandlers)
    return out


def _contribute(doc, action, book, now) -> Transition:
    """A co-handler's part of the answer, for the lead: it meets the co-handler's contribution clock."""
    if not action.note:
        raise ActionError(422, "note is required to contribute: the co-handler's part of the answer")
    part = {
        "department": action.department,
        "clerk": action.clerk,
        "note": action.note,
        "attachments": action.attachments,
        "at": now,
    }
    out = Transition(set={"contributions": [*doc.get("contributions", []), part]})
    announce(doc, out, S(doc["status"]), EventType.appeal_contributed, **common(action), attachments=action.attachments)
    return out


def decide_info_provided(doc: dict[str, Any]) -> Transition:
    """The company answered: back to where the department asked from."""
    if doc["status"] != S.info_requested:
        raise ActionError(409, f"no information was requested; the appeal is {doc['status']}")
    back = S(doc.get("status_before_info") or S.accepted)
    out = Transition(set={"status": back.value})
    announce(doc, out, back, EventType.appeal_info_provided, actor="company")
    return out


def decide_feedback(
    doc: dict[str, Any], resolved: bool, satisfaction: int, comment: str | None, book: RoutingBook, now: datetime
) -> Transition:
    """The company's answer, which is also its round's return visit: confirmed closes the appeal; not resolved
    reopens it to its lead as a redo, which the office may still find outside the department (visits.attempt)."""
    if doc["status"] != S.resolved:
        raise ActionError(409, f"feedback is taken on resolved appeals; this one is {doc['status']}")
    visit = doc.get("visit") or {}
    outcome = outcome_of(satisfaction) if resolved else VisitOutcome.unsatisfied
    said: dict[str, Any] = {
        "actor": "company",
        "note": comment,
        "satisfaction": satisfaction,
        "visit_outcome": outcome,
        "visit_round": visit.get("round"),
        "cause": Cause.department if outcome == VisitOutcome.unsatisfied else None,
    }
    if not resolved:
        return visits.redo(doc, book, now, said, visit=visits.ended(visit, visits.REVIEW, now), visited=False)
    out = Transition(set={"status": S.closed.value, "open": False})
    if visit:
        out.set["visit"] = visits.ended(visit, visits.ANSWERED, now, outcome=outcome.value, score=satisfaction)
    announce(doc, out, S.confirmed, **said)
    announce(doc, out, S.closed, reason="the company confirmed the resolution", actor="company")
    return out


def decide_auto_close(doc: dict[str, Any], days: int) -> Transition:
    """Close a resolution the company left unanswered; one selected for a return visit closes at its visit."""
    if doc["status"] != S.resolved:
        raise ActionError(409, f"only resolved appeals close automatically; this one is {doc['status']}")
    if (doc.get("visit") or {}).get("state") in visits.OPEN:
        raise ActionError(409, "a return visit is open: the appeal closes at its visit")
    out = Transition(set={"status": S.closed.value, "open": False})
    announce(
        doc, out, S.closed, reason=f"no answer from the company within {days} days of the resolution", actor="system"
    )
    return out
