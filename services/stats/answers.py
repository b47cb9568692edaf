"""What return visits (回访), the companies' answers and redos (重办) count, as plain functions.

An appeal's document keeps every answer it was given (`answers`: the company's own,
each attempt of the office's visit, a close as unreached) and every redo (`redos`),
each with its resolution round. What they count is read from them alone, so it
does not depend on the order the events were folded in:

- a round's answer is its earliest one, the company's or a reached visit's; a
  round with none that closed unreached is unreached;
- the round's cause is the latest the office's visits named for it (the office
  reviewing a company's "not resolved"), else the answer's own;
- only the last round with an answer counts for the appeal, in the hour it was
  given, against the department its event named: `answers|<department>|<outcome>`,
  outcome one of `OUTCOMES` (an unsatisfied answer whose cause is outside the
  department is `outside`);
- a redo counts in the hour of its reopen against its department (`redos|<dept>`),
  unless its round's cause is outside;
- each attempt of a visit, reached or not, counts in its hour (`visit_attempts|<dept>`).

When round 2 is answered, round 1's answer stops counting: the buckets change by
the difference of the counts, so it leaves its hour as round 2's enters its own.
"""

from datetime import datetime
from typing import Any, NamedTuple

from libs.events import AppealChanged
from libs.kinds import Cause, EventType, VisitOutcome, outcome_of
from services.stats.buckets import Counts, counter, hour_of

SATISFIED, BASICALLY, UNSATISFIED = "satisfied", "basically_satisfied", "unsatisfied"
OUTSIDE, UNREACHED = "outside", "unreached"
COMPANY = "company"
# How an appeal's last answer counts: the three of the satisfaction rate, then the two shown apart.
OUTCOMES = (SATISFIED, BASICALLY, UNSATISFIED, OUTSIDE, UNREACHED)
GIVEN = {SATISFIED, BASICALLY, UNSATISFIED}
# A round number beyond this is malformed (and an int MongoDB cannot store would stop the batch): the round is then
# inferred, as for events written before rounds were stamped.
MAX_ROUND = 1000


class Answer(NamedTuple):
    at: datetime
    department: str
    outcome: str


def fold_answers(doc: dict[str, Any], type_: str, data: AppealChanged, at: datetime) -> None:
    """Keep what a lifecycle event says of resolutions, answers, visits and redos on the appeal's document."""
    if type_ == EventType.appeal_resolved:
        # Rounds of events written before router stamped them are read from these (`_round_of`).
        doc.setdefault("resolved_at", []).append(at)
    if not data.department:
        return
    entry = {"at": at, "d": data.department, "r": _round(data.visit_round)}
    if type_ in (EventType.appeal_confirmed, EventType.appeal_reopened) and _by_company(data):
        outcome = _company_outcome(data)
        if outcome:
            cause = data.cause.value if data.cause else None
            doc.setdefault("answers", []).append({**entry, "by": COMPANY, "o": outcome, "c": cause})
    elif type_ == EventType.appeal_visited:
        reached = data.reached is True and data.visit_outcome in GIVEN
        outcome = data.visit_outcome.value if reached and data.visit_outcome else None
        # The cause of an unsatisfied answer, the visit's own or the office's review of the company's.
        unsatisfied = data.visit_outcome == VisitOutcome.unsatisfied
        cause = data.cause.value if unsatisfied and data.cause else None
        doc.setdefault("answers", []).append({**entry, "by": "visit", "o": outcome, "c": cause})
    elif type_ == EventType.appeal_closed and data.visit_outcome == VisitOutcome.unreached:
        doc.setdefault("answers", []).append({**entry, "by": "close", "o": UNREACHED, "c": None})
    if type_ == EventType.appeal_reopened and is_redo(data):
        doc.setdefault("redos", []).append(entry)


def is_redo(data: AppealChanged) -> bool:
    """A reopen that counts as a redo: marked so, or (written before redos were marked) the company's "not
    resolved", which carries its satisfaction."""
    return data.redo if data.redo is not None else data.satisfaction is not None


def _by_company(data: AppealChanged) -> bool:
    """A confirmation or reopen that is the company's answer: it carries its score. A redo ordered by the office's
    visit carries the visit's score too, but its answer is the visit event before it."""
    return data.satisfaction is not None and data.actor in (None, COMPANY)


def _round(value: int | None) -> int | None:
    return value if value is not None and 1 <= value <= MAX_ROUND else None


def _company_outcome(data: AppealChanged) -> str | None:
    """The outcome of a company's answer: as router mapped it, else from its score; None for a score outside 1-5."""
    if data.visit_outcome in GIVEN and data.visit_outcome:
        return data.visit_outcome.value
    score = data.satisfaction
    return outcome_of(score).value if score is not None and 1 <= score <= 5 else None


def _round_of(entry: dict[str, Any], resolved: list[datetime]) -> int:
    """The entry's round; for one written without it, the resolutions made by then (at least 1)."""
    if entry.get("r"):
        return int(entry["r"])
    return max(1, sum(1 for at in resolved if at <= entry["at"]))


def _key(entry: dict[str, Any]) -> tuple[datetime, str, str, str]:
    # Entries of the same instant are ordered by what they are, never by the order they were folded in.
    return entry["at"], entry["by"], entry.get("o") or "", entry["d"]


def rounds(doc: dict[str, Any]) -> dict[int, tuple[Answer | None, str | None]]:
    """Each round with an answer or a visit: (its answer as it counts, or None; its cause)."""
    resolved = doc.get("resolved_at", [])
    by_round: dict[int, list[dict[str, Any]]] = {}
    for entry in doc.get("answers", []):
        by_round.setdefault(_round_of(entry, resolved), []).append(entry)
    out: dict[int, tuple[Answer | None, str | None]] = {}
    for number, entries in by_round.items():
        given = sorted((e for e in entries if e.get("o") in GIVEN), key=_key)
        unreached = sorted((e for e in entries if e.get("o") == UNREACHED), key=_key)
        first = given[0] if given else unreached[0] if unreached else None
        reviews = sorted((e for e in entries if e["by"] == "visit" and e.get("c")), key=_key)
        cause = reviews[-1]["c"] if reviews else first.get("c") if first else None
        if first is None:
            out[number] = (None, cause)
            continue
        outcome = first["o"]
        if outcome == UNSATISFIED and cause == Cause.outside:
            outcome = OUTSIDE
        out[number] = (Answer(first["at"], first["d"], outcome), cause)
    return out


def answer_counts(doc: dict[str, Any], out: Counts) -> None:
    """Add what the appeal's answers, redos and visits count into `out` (hour buckets)."""
    found = rounds(doc)
    answered = [number for number, (answer, _) in found.items() if answer]
    if answered:
        answer = found[max(answered)][0]
        assert answer is not None
        _add(out, answer.at, counter("answers", answer.department, answer.outcome))
    resolved = doc.get("resolved_at", [])
    for redo in doc.get("redos", []):
        _, cause = found.get(_round_of(redo, resolved), (None, None))
        if cause != Cause.outside:
            _add(out, redo["at"], counter("redos", redo["d"]))
    for entry in doc.get("answers", []):
        if entry["by"] == "visit":
            _add(out, entry["at"], counter("visit_attempts", entry["d"]))


def _add(out: Counts, at: datetime, name: str) -> None:
    hour = out.setdefault("h:" + hour_of(at), {})
    hour[name] = hour.get(name, 0) + 1


def answer_figures(counts: dict[str, int], department: str) -> dict[str, Any]:
    """A department's answers by outcome, redos and visit attempts from summed buckets, and its satisfaction rate:
    (satisfied + basically satisfied) / (satisfied + basically satisfied + unsatisfied), null without any; answers
    unsatisfied for reasons outside the department and visits unreached are shown apart, in neither part."""
    figures: dict[str, Any] = {o: counts.get(counter("answers", department, o), 0) for o in OUTCOMES}
    good = figures[SATISFIED] + figures[BASICALLY]
    answered = good + figures[UNSATISFIED]
    figures.update(
        feedback=answered,
        satisfaction_rate=round(good / answered, 4) if answered else None,
        redos=counts.get(counter("redos", department), 0),
        visit_attempts=counts.get(counter("visit_attempts", department), 0),
    )
    return figures
