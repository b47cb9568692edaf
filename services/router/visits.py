"""Return visits (回访) and redos (重办), as pure decisions (docs/domain.md, "Return visits and assessment").

Each resolution opens a round. `plan` decides the round's visit: whether the appeal is
selected, when the survey link is due, when the office calls those still silent, and when
an unanswered visit ends as unreached. Router's sweep carries the plan out (`on_time`);
the company's answer (`lifecycle.decide_feedback`) or the office's attempt (`attempt`)
ends it. An unsatisfied answer whose cause lies with the department is a redo (`redo`):
back to the lead with a new resolution clock, which sla times from the same
`redo.resolution`; once an appeal has had `supervise_after` redos the office's queue
shows it. A company's own "not resolved" is a redo too, and the office may review it
within the visit task: cause outside the department closes the appeal, reported apart.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.calendars import BusinessCalendar, parse_target
from libs.config import VisitSelection
from libs.deadlines import aware
from libs.kinds import AppealStatus, Cause, EventType, VisitOutcome, outcome_of
from libs.mongo import as_stored
from services.router.rules import RoutingBook
from services.router.transitions import ActionError, Transition, announce, assign

S = AppealStatus
# The visit task's states: selected and not yet due; the survey link went and an answer or a call is awaited;
# the company said "not resolved" and the office may find the cause outside the department; ended by the office's
# call, by the company's own answer, or unreached; and not selected (closes after days of silence, as ever).
SCHEDULED, SURVEYED, REVIEW = "scheduled", "surveyed", "review"
VISITED, ANSWERED, UNREACHED, UNSELECTED = "visited", "answered", "unreached", "unselected"
OPEN = (SCHEDULED, SURVEYED)


@dataclass(frozen=True)
class Attempt:
    """One attempt of the office to reach the company, as the visitor records it."""

    visitor: str
    reached: bool
    outcome: VisitOutcome | None = None
    score: int | None = None
    cause: Cause | None = None
    note: str | None = None


def selected(doc: dict[str, Any], rules: VisitSelection) -> bool:
    """Whether the appeal's visit is made: always for a company on a listed list; else within the size bands and
    categories named (all when none), for the configured share of appeals, chosen by id so any replica agrees."""
    if set(doc.get("lists", [])) & set(rules.lists):
        return True
    if rules.size_bands and doc["size_band"] not in rules.size_bands:
        return False
    if rules.categories and doc["category"] not in rules.categories:
        return False
    return _share_of(doc["_id"]) < rules.share


def _share_of(appeal_id: str) -> float:
    """Where the appeal falls in [0, 1): the same on every replica and after every restart."""
    return int.from_bytes(hashlib.sha256(appeal_id.encode()).digest()[:8], "big") / 2**64


def _after(calendar: BusinessCalendar, duration: str, start: datetime) -> datetime:
    target = parse_target(duration)
    return calendar.add(target, start, calendar.budget(target))


def office_calendar(book: RoutingBook) -> BusinessCalendar:
    """The office visits, on its own calendar: a working day after a Friday resolution is Monday."""
    return book.calendars.of_department(book.city, book.city.coordinating_office)


def plan(doc: dict[str, Any], book: RoutingBook, now: datetime) -> dict[str, Any]:
    """The visit of the round a resolution opens."""
    rules = book.assessment.return_visits
    round_ = (doc.get("visit") or {}).get("round", 0) + 1
    if not selected(doc, rules.select):
        return {"round": round_, "state": UNSELECTED, "attempts": []}
    calendar = office_calendar(book)
    due = _after(calendar, rules.due_after, now)
    return as_stored(
        {
            "round": round_,
            "state": SCHEDULED,
            "resolved_at": now,
            "due_at": due,
            "call_from": _after(calendar, rules.call_after, due),
            "unreached_at": _after(calendar, rules.unreached_after, due),
            "attempts": [],
            # When router's sweep next acts on it (the index behind `due_visits`); gone once the visit ends.
            "next_at": due,
        }
    )


def ended(visit: dict[str, Any], state: str, now: datetime, **fields: Any) -> dict[str, Any]:
    """The visit in a state the sweep no longer acts on."""
    return as_stored({**{k: v for k, v in visit.items() if k != "next_at"}, "state": state, "ended_at": now, **fields})


def on_time(doc: dict[str, Any], now: datetime) -> Transition:
    """What the sweep does when a visit's time comes: send the survey link, or end a silent visit as unreached."""
    visit = doc.get("visit") or {}
    if doc["status"] != S.resolved or visit.get("state") not in OPEN or aware(visit["next_at"]) > now:
        raise ActionError(409, "nothing of this appeal's visit is due")
    if visit["state"] == SURVEYED:
        return _unreached(doc, visit, now, "no answer to the survey and no call reached the company in time")
    out = Transition(set={"visit": {**visit, "state": SURVEYED, "surveyed_at": now, "next_at": visit["unreached_at"]}})
    announce(doc, out, S.resolved, EventType.appeal_visit_due, actor="system", visit_round=visit["round"])
    return out


def _unreached(
    doc: dict[str, Any], visit: dict[str, Any], now: datetime, why: str, out: Transition | None = None
) -> Transition:
    """Close the appeal as unreached (shown, never counted as satisfied), after what `out` holds already."""
    out = out or Transition()
    out.set.update({"status": S.closed.value, "open": False, "visit": ended(visit, UNREACHED, now)})
    announce(
        doc,
        out,
        S.closed,
        actor="system",
        reason=f"return visit unreached: {why}",
        visit_outcome=VisitOutcome.unreached,
        visit_round=visit["round"],
    )
    return out


def attempt(doc: dict[str, Any], tried: Attempt, book: RoutingBook, now: datetime) -> Transition:
    """Record one attempt of the office: a visit's, or its review of the company's "not resolved"."""
    visit = doc.get("visit") or {}
    state = visit.get("state")
    if state == REVIEW and doc["status"] != S.closed:
        return _review(doc, visit, tried, book, now)
    if state not in OPEN or doc["status"] != S.resolved:
        raise ActionError(409, f"no return visit is open on this appeal; its visit is {state or 'not planned'}")
    entry = _entry(tried, now)
    attempts = [*visit.get("attempts", []), entry]
    office = book.city.coordinating_office
    extra = {"actor": office, "clerk": tried.visitor, "note": tried.note, "visit_round": visit["round"]}
    if not tried.reached:
        failed = sum(1 for a in attempts if not a["reached"])
        limit = book.assessment.return_visits.attempts
        out = Transition(set={"visit": {**visit, "attempts": attempts}})
        announce(doc, out, S.resolved, EventType.appeal_visited, reached=False, **extra)
        if failed >= limit:
            return _unreached(
                doc, {**visit, "attempts": attempts}, now, f"{failed} calls did not reach the company", out
            )
        return out
    outcome, cause = _judged(tried)
    result = {"outcome": outcome.value, "score": tried.score, "cause": cause.value if cause else None}
    visited = ended({**visit, "attempts": attempts}, VISITED, now, **result)
    said = {**extra, "reached": True, "visit_outcome": outcome, "satisfaction": tried.score, "cause": cause}
    if cause == Cause.department:
        return redo(doc, book, now, said, visit=visited, visited=True)
    out = Transition(set={"status": S.closed.value, "open": False, "visit": visited})
    announce(doc, out, S.resolved, EventType.appeal_visited, **said)
    why = "unsatisfied for reasons outside the department" if cause == Cause.outside else f"return visit: {outcome}"
    announce(doc, out, S.closed, actor=office, reason=why, visit_outcome=outcome, visit_round=visit["round"])
    return out


def _entry(tried: Attempt, now: datetime) -> dict[str, Any]:
    return as_stored(
        {
            "at": now,
            "visitor": tried.visitor,
            "reached": tried.reached,
            "outcome": tried.outcome.value if tried.outcome else None,
            "score": tried.score,
            "cause": tried.cause.value if tried.cause else None,
            "note": tried.note,
        }
    )


def _judged(tried: Attempt) -> tuple[VisitOutcome, Cause | None]:
    """The outcome a reached visit records, from its score (5, 4, 1-3) or as given; unsatisfied needs a cause."""
    if tried.score is None and tried.outcome is None:
        raise ActionError(422, "score (1-5) or outcome is required when the company was reached")
    outcome = tried.outcome or outcome_of(tried.score or 0)
    if outcome == VisitOutcome.unreached:
        raise ActionError(422, "outcome unreached is for attempts that did not reach the company (reached: false)")
    if tried.score is not None and tried.outcome is not None and outcome_of(tried.score) != tried.outcome:
        raise ActionError(
            422, f"score {tried.score} is {outcome_of(tried.score).value}, not {tried.outcome.value}: 5, 4, 1-3"
        )
    if outcome != VisitOutcome.unsatisfied:
        return outcome, None
    if tried.cause is None:
        raise ActionError(422, "cause (department or outside) is required when the company is unsatisfied")
    return outcome, tried.cause


def _review(doc: dict[str, Any], visit: dict[str, Any], tried: Attempt, book: RoutingBook, now: datetime) -> Transition:
    """The office's review of the company's "not resolved": outside the department, the appeal closes and the redo
    does not count against it; at the department, the redo stands."""
    if tried.cause is None:
        raise ActionError(422, "cause (department or outside) is required to review the company's answer")
    office = book.city.coordinating_office
    entry = _entry(tried, now)
    reviewed = ended({**visit, "attempts": [*visit.get("attempts", []), entry]}, VISITED, now, cause=tried.cause.value)
    said = {
        "actor": office,
        "clerk": tried.visitor,
        "note": tried.note,
        "visit_round": visit["round"],
        "reached": tried.reached,
        "visit_outcome": VisitOutcome.unsatisfied,
        "satisfaction": tried.score,
        "cause": tried.cause,
    }
    status = S(doc["status"])
    if tried.cause == Cause.department:
        out = Transition(set={"visit": reviewed})
        announce(doc, out, status, EventType.appeal_visited, **said)
        return out
    out = Transition(set={"status": S.closed.value, "open": False, "visit": reviewed})
    announce(doc, out, status, EventType.appeal_visited, **said)
    announce(
        doc,
        out,
        S.closed,
        actor=office,
        reason="the company's answer is unsatisfied for reasons outside the department",
        visit_outcome=VisitOutcome.unsatisfied,
        visit_round=visit["round"],
    )
    return out


def redo(
    doc: dict[str, Any], book: RoutingBook, now: datetime, said: dict[str, Any], *, visit: dict[str, Any], visited: bool
) -> Transition:
    """Back to the lead with a new resolution clock (`redo.resolution`), the company told; `said` is what the answer
    said (the company's, or the office's visit, announced first when `visited`)."""
    rules = book.assessment.redo
    count = doc.get("redo_count", 0) + 1
    lead = doc["lead"]
    due = as_stored(_after(book.calendars.of_department(book.city, lead), rules.resolution, now))
    out = Transition(
        set={"status": S.reopened.value, "resolved_at": None, "redo_count": count, "redo_due_at": due, "visit": visit}
    )
    if count >= rules.supervise_after and not doc.get("redo_supervised_at"):
        out.set["redo_supervised_at"] = now
    if visited:
        announce(doc, out, S.resolved, EventType.appeal_visited, **said)
    # The visit's own event carries the visitor and the note; the redo is the office's, under the lead.
    reopened = {k: v for k, v in said.items() if k not in (("reached", "clerk", "note") if visited else ("reached",))}
    announce(doc, out, S.reopened, **{**reopened, "redo": True, "redo_count": count, "due_at": due})
    assign(doc, out, lead, "lead", lead, doc.get("cohandlers", []))
    return out
