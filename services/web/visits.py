"""Return visits (回访) and redos (重办) as the workbench shows them (docs/domain.md, "Return visits and
assessment"): the office's visit tasks and the form that records an attempt, what a recorded attempt did, a
department's redos at the top of its worklist, and its own line of the month's scorecard. Pure: the pages pass in
router's and stats' answers; router decides every outcome (services/router/visits.py) and web only reads it back."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from libs.kinds import Cause, VisitOutcome, outcome_of
from services.web.supervision import moment

# The office's tabs of visit tasks, as router lists them (GET /v1/return-visits?state=): those to call now first;
# every open one (the office may call before the company's time to answer is up); the company's "not resolved" to
# review; and the ended ones, to read.
TABS = ("to_call", "open", "review", "visited", "answered", "unreached")
# The visit's states router keeps: open (a call may be recorded), the company's "not resolved" (the office finds the
# cause), and the ended ones.
OPEN_STATES = ("scheduled", "surveyed")
REVIEW_STATE = "review"
OUTCOMES = tuple(o.value for o in VisitOutcome if o != VisitOutcome.unreached)
CAUSES = tuple(c.value for c in Cause)
SCORES = ("1", "2", "3", "4", "5")
# Router's limits (services/router/models.py, AttemptIn).
MAX_VISITOR = 100
MAX_NOTE = 2000
LAST = datetime.max.replace(tzinfo=UTC)


def form_of(row: dict[str, Any]) -> str | None:
    """The form a visit task offers: `visit` on an open task (reached or not, the outcome, the cause), `review` on
    the company's "not resolved" (whose fault it is), none on one ended."""
    state = (row.get("visit") or {}).get("state")
    if state in OPEN_STATES:
        return "visit"
    return "review" if state == REVIEW_STATE else None


def task(row: dict[str, Any], now: datetime, attempts_allowed: int) -> dict[str, Any]:
    """A row of router's visit tasks with what the page shows of it: its form, the failed calls so far and those
    left before the visit ends as unreached, and whether its call time has come."""
    visit = row.get("visit") or {}
    failed = sum(1 for a in visit.get("attempts") or [] if not a.get("reached"))
    call_from: str | None = visit.get("call_from")
    return {
        **row,
        "form": form_of(row),
        "failed": failed,
        "attempts_left": max(attempts_allowed - failed, 0),
        "calling": bool(row.get("to_call")) or (call_from is not None and moment(call_from) <= now),
    }


@dataclass
class AttemptForm:
    """What the office typed for one task, kept as typed so a refused form comes back with it."""

    visitor: str = ""
    reached: str = ""
    score: str = ""
    outcome: str = ""
    cause: str = ""
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # by field, message keys of i18n

    @classmethod
    def of(cls, form: Any) -> "AttemptForm":
        """The form's fields, trimmed; the visitor's name with its spaces folded, as sign-in folds the clerk's."""

        def text(name: str) -> str:
            return str(form.get(name, "")).strip()

        return cls(
            visitor=" ".join(str(form.get("visitor", "")).split()),
            reached=text("reached"),
            score=text("score"),
            outcome=text("outcome"),
            cause=text("cause"),
            note=text("note"),
        )

    def values(self) -> dict[str, str]:
        """What goes back into the form."""
        return {k: v for k, v in vars(self).items() if k != "errors"}


def attempt_body(typed: AttemptForm, kind: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Router's body for an attempt (AttemptIn) from the form of a `visit` or a `review` task, or the fields that
    are missing or wrong, as message keys, before anything is sent. The same rules as router's (a score 5 is
    satisfied, 4 basically, 1-3 not; a score and an outcome given must agree; unsatisfied needs its cause; a review
    needs only the cause), said beside the field in the clerk's language; what router refuses beyond them comes
    back in its words. Not reached, a call records only who called and the note: a score typed is not sent."""
    errors: dict[str, str] = {}
    if not typed.visitor:
        errors["visitor"] = "visitor_missing"
    elif len(typed.visitor) > MAX_VISITOR:
        errors["visitor"] = "visitor_too_long"
    if typed.reached not in ("yes", "no"):
        errors["reached"] = "reached_missing"
    if len(typed.note) > MAX_NOTE:
        errors["note"] = "visit_note_too_long"
    if typed.score and typed.score not in SCORES:
        errors["score"] = "score_bad"
    if typed.outcome and typed.outcome not in OUTCOMES:
        errors["outcome"] = "outcome_bad"
    if typed.cause and typed.cause not in CAUSES:
        errors["cause"] = "cause_bad"
    body: dict[str, Any] = {"visitor": typed.visitor, "reached": typed.reached == "yes"}
    if typed.note:
        body["note"] = typed.note
    if kind == "review":
        if not typed.cause and "cause" not in errors:
            errors["cause"] = "cause_required_review"
        return {**body, "cause": typed.cause}, errors
    if typed.reached != "yes" or errors:
        return body, errors
    if not typed.score and not typed.outcome:
        return body, {"score": "score_or_outcome_missing"}
    said = VisitOutcome(typed.outcome) if typed.outcome else outcome_of(int(typed.score))
    if typed.score and typed.outcome and outcome_of(int(typed.score)) != said:
        return body, {"outcome": "score_outcome_disagree"}
    if said == VisitOutcome.unsatisfied and not typed.cause:
        return body, {"cause": "cause_required"}
    body["outcome"] = said.value
    if typed.score:
        body["score"] = int(typed.score)
    if said == VisitOutcome.unsatisfied:
        body["cause"] = typed.cause
    return body, {}


# What a recorded attempt did, read back from router's answer (the appeal after it), for the notice on the page.
RECORDED = ("not_reached", "unreached", "closed", "outside", "redo", "redo_confirmed")


def recorded(appeal: dict[str, Any], kind: str) -> str:
    """The appeal after the attempt, in one word of RECORDED: a call that did not reach the company (the visit stays
    open), the visit ended unreached, the appeal closed (satisfied, basically), closed for reasons outside the
    department, a redo ordered, or (reviewing) the company's redo confirmed as the department's."""
    visit = appeal.get("visit") or {}
    status = appeal.get("status")
    if status == "closed":
        if visit.get("state") == "unreached":
            return "unreached"
        return "outside" if visit.get("cause") == Cause.outside.value else "closed"
    if status == "reopened":
        return "redo_confirmed" if kind == "review" else "redo"
    return "not_reached"


def is_redo(appeal: dict[str, Any]) -> bool:
    """The appeal is back with its lead to be redone (重办): reopened after a redo was ordered."""
    return appeal.get("status") == "reopened" and int(appeal.get("redo_count") or 0) > 0


def redos_first(redos: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worklist with its redos on top, the soonest redo due first (one without a due time last), each once:
    `redos` are router's reopened appeals of the department (a redo may have no running clock yet, so the
    soonest-due worklist may lack it), `rows` the worklist as asked."""
    mine: dict[str, dict[str, Any]] = {r["appeal_id"]: r for r in [*redos, *rows] if is_redo(r)}
    on_top = sorted(mine.values(), key=_redo_due)
    return [*on_top, *(r for r in rows if r["appeal_id"] not in mine)]


def _redo_due(appeal: dict[str, Any]) -> datetime:
    due = appeal.get("redo_due_at")
    return moment(due) if due else LAST


def standing(card: dict[str, Any] | None, department: str) -> dict[str, Any] | None:
    """What the department's workbench shows of the month's scorecard (stats' `Scorecard`): its own line, its
    place among the ranked, and the red and black lists (names only), never another department's figures. None
    when the scorecard does not name it."""
    if not card:
        return None
    rows = card.get("departments") or []
    own = next((r for r in rows if r.get("department") == department), None)
    if own is None:
        return None
    return {
        "month": card.get("month"),
        "row": own,
        # Stats gives a department's key its own line alone, and says how many were ranked.
        "ranked_count": card.get("ranked_count", sum(1 for r in rows if r.get("ranked"))),
        "minimum_volume": card.get("minimum_volume"),
        "red_list": list(card.get("red_list") or []),
        "black_list": list(card.get("black_list") or []),
        "list": own.get("list"),
    }
