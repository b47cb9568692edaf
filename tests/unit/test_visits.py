"""Return visits and redos as router decides them (services/router/visits.py; docs/domain.md, "Return visits and
assessment"): when a visit is due, who is visited, how each answer or attempt ends the round."""

import dataclasses
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.config import VisitSelection
from libs.contract import department_topic
from libs.kinds import ActionKind, AppealStatus, Cause, EventType, VisitOutcome, outcome_of
from services.router import visits
from services.router.lifecycle import decide_action, decide_auto_close, decide_feedback
from services.router.rules import RoutingBook, load_routing_book
from services.router.transitions import ActionError, Transition
from tests.unit.test_lifecycle import CONFIG, LEAD, act, action, admitted, apply, lifecycle_types

S = AppealStatus
E = EventType
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def book() -> RoutingBook:
    return load_routing_book(CONFIG)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def resolved_at(book: RoutingBook, when: datetime, **overrides: Any) -> dict[str, Any]:
    """An appeal accepted and resolved by its lead at `when`."""
    doc = admitted(book, **overrides)
    doc = apply(doc, act(doc, book, ActionKind.accept))
    outcome = visits_resolve(doc, book, when)
    return apply(doc, outcome)


def visits_resolve(doc: dict[str, Any], book: RoutingBook, when: datetime) -> Transition:
    return decide_action(doc, action(ActionKind.resolve, doc["lead"], resolution="Loan extended."), book, when)


def call(visitor: str = "Zhou Min", **fields: Any) -> visits.Attempt:
    return visits.Attempt(visitor=visitor, **fields)


# ---------------------------------------------------------------- when a visit is due


@pytest.mark.parametrize(
    ("resolved", "due", "call_from", "unreached"),
    [
        # Tuesday morning: the next working day, the same hour; calls a day later; unreached five working days on.
        (local(2026, 12, 1, 10), local(2026, 12, 2, 10), local(2026, 12, 3, 10), local(2026, 12, 9, 10)),
        # Friday afternoon: the weekend does not count.
        (local(2026, 12, 4, 16), local(2026, 12, 7, 16), local(2026, 12, 8, 16), local(2026, 12, 14, 16)),
        # Saturday: office time starts on Monday at nine, and a working day of it ends at six.
        (local(2026, 12, 5, 11), local(2026, 12, 7, 18), local(2026, 12, 8, 18), local(2026, 12, 14, 18)),
    ],
    ids=["weekday", "friday", "weekend"],
)
def test_a_visit_is_due_the_next_working_day_and_called_and_ended_on_the_office_s_calendar(
    book, resolved, due, call_from, unreached
):
    visit = resolved_at(book, resolved)["visit"]
    assert visit["state"] == visits.SCHEDULED
    assert visit["round"] == 1
    assert (visit["due_at"], visit["call_from"], visit["unreached_at"]) == (due, call_from, unreached)
    assert visit["next_at"] == due


def test_the_resolution_names_the_round_it_opens(book):
    doc = admitted(book)
    doc = apply(doc, act(doc, book, ActionKind.accept))
    outcome = visits_resolve(doc, book, local(2026, 12, 1, 10))
    assert [e.data.visit_round for e in outcome.emits if e.type == E.appeal_resolved] == [1]


# ---------------------------------------------------------------- who is visited


APPEAL = {"_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5", "lists": [], "size_band": "micro", "category": "financing"}


@pytest.mark.parametrize(
    ("rules", "appeal", "chosen"),
    [
        (VisitSelection(), APPEAL, True),
        (VisitSelection(share=0), APPEAL, False),
        (VisitSelection(share=0, lists=["key-smes"]), {**APPEAL, "lists": ["key-smes"]}, True),
        (VisitSelection(size_bands=["small"]), APPEAL, False),
        (VisitSelection(size_bands=["micro"], categories=["tax"]), APPEAL, False),
        (VisitSelection(size_bands=["micro"], categories=["financing"]), APPEAL, True),
    ],
    ids=["every-appeal", "none", "listed-company-always", "other-band", "other-category", "band-and-category"],
)
def test_which_appeals_are_visited(rules, appeal, chosen):
    assert visits.selected(appeal, rules) is chosen


def test_a_share_visits_about_that_share_and_the_same_appeals_every_time():
    ids = [f"01JB8X4R5ZJ6Q8V2Y7K9M{n:05d}" for n in range(2000)]
    rules = VisitSelection(share=0.25)
    chosen = [i for i in ids if visits.selected({**APPEAL, "_id": i}, rules)]
    assert 400 < len(chosen) < 600
    assert chosen == [i for i in ids if visits.selected({**APPEAL, "_id": i}, rules)]


def test_an_appeal_not_selected_closes_after_days_of_silence_as_before(book):
    unvisited = dataclasses.replace(
        book,
        assessment=book.assessment.model_copy(
            update={
                "return_visits": book.assessment.return_visits.model_copy(update={"select": VisitSelection(share=0)})
            }
        ),
    )
    doc = resolved_at(unvisited, local(2026, 12, 1, 10))
    assert doc["visit"] == {"round": 1, "state": visits.UNSELECTED, "attempts": []}
    assert apply(doc, decide_auto_close(doc, 7))["status"] == S.closed


def test_an_appeal_awaiting_its_visit_does_not_close_by_itself(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    with pytest.raises(ActionError) as err:
        decide_auto_close(doc, 7)
    assert err.value.status == 409


# ---------------------------------------------------------------- the sweep


def test_the_survey_goes_when_due_and_a_silent_visit_ends_unreached(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    with pytest.raises(ActionError):
        visits.on_time(doc, local(2026, 12, 2, 9, 59))
    surveyed = visits.on_time(doc, local(2026, 12, 2, 10))
    assert lifecycle_types(surveyed) == [E.appeal_visit_due]
    assert surveyed.emits[0].data.visit_round == 1
    doc = apply(doc, surveyed)
    assert doc["visit"]["state"] == visits.SURVEYED
    assert doc["visit"]["next_at"] == local(2026, 12, 9, 10)
    with pytest.raises(ActionError):
        visits.on_time(doc, local(2026, 12, 9, 9))
    closed = visits.on_time(doc, local(2026, 12, 9, 10))
    assert lifecycle_types(closed) == [E.appeal_closed]
    assert closed.emits[0].data.visit_outcome == VisitOutcome.unreached
    doc = apply(doc, closed)
    assert (doc["status"], doc["open"], doc["visit"]["state"]) == (S.closed, False, visits.UNREACHED)
    assert "next_at" not in doc["visit"]


# ---------------------------------------------------------------- answers and attempts


@pytest.mark.parametrize(
    ("score", "outcome"),
    [(5, VisitOutcome.satisfied), (4, VisitOutcome.basically_satisfied)]
    + [(n, VisitOutcome.unsatisfied) for n in (1, 2, 3)],
)
def test_a_score_maps_to_an_outcome(score, outcome):
    assert outcome_of(score) == outcome


def test_the_company_s_confirmation_is_its_round_s_answer_and_closes(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    outcome = decide_feedback(doc, True, 4, None, book, local(2026, 12, 1, 12))
    assert lifecycle_types(outcome) == [E.appeal_confirmed, E.appeal_closed]
    said = outcome.emits[0].data
    assert (said.visit_outcome, said.visit_round, said.cause) == (VisitOutcome.basically_satisfied, 1, None)
    doc = apply(doc, outcome)
    assert (doc["status"], doc["visit"]["state"], doc["visit"]["outcome"]) == (
        S.closed,
        visits.ANSWERED,
        "basically_satisfied",
    )


def test_the_company_s_not_resolved_is_a_redo_with_the_redo_s_clock_and_a_review_task(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    outcome = decide_feedback(doc, False, 5, "Nothing changed", book, local(2026, 12, 1, 12))
    assert lifecycle_types(outcome) == [E.appeal_reopened]
    reopened = outcome.emits[0].data
    assert (reopened.redo, reopened.redo_count, reopened.cause) == (True, 1, Cause.department)
    # Whatever the score, "not resolved" is unsatisfied; three working days from Tuesday noon.
    assert reopened.visit_outcome == VisitOutcome.unsatisfied
    assert reopened.due_at == local(2026, 12, 4, 12)
    assert [e.data.department for e in outcome.emits if e.type == E.assignment_created] == [LEAD]
    doc = apply(doc, outcome)
    assert (doc["status"], doc["visit"]["state"], doc["redo_count"]) == (S.reopened, visits.REVIEW, 1)


def test_attempts_that_do_not_reach_the_company_end_the_visit_unreached_at_the_third(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    for n in (1, 2):
        outcome = visits.attempt(doc, call(reached=False, note="no answer"), book, local(2026, 12, 3, 10 + n))
        assert lifecycle_types(outcome) == [E.appeal_visited]
        assert outcome.emits[0].data.reached is False
        doc = apply(doc, outcome)
        assert doc["status"] == S.resolved
    outcome = visits.attempt(doc, call(reached=False), book, local(2026, 12, 3, 15))
    assert lifecycle_types(outcome) == [E.appeal_visited, E.appeal_closed]
    assert [e.data.sequence for e in outcome.emits] == [doc["sequence"] + 1, doc["sequence"] + 2]
    assert outcome.emits[1].data.visit_outcome == VisitOutcome.unreached
    doc = apply(doc, outcome)
    assert (doc["status"], doc["visit"]["state"], len(doc["visit"]["attempts"])) == (S.closed, visits.UNREACHED, 3)


@pytest.mark.parametrize(
    ("fields", "types", "status"),
    [
        ({"score": 5}, [E.appeal_visited, E.appeal_closed], S.closed),
        ({"outcome": VisitOutcome.basically_satisfied}, [E.appeal_visited, E.appeal_closed], S.closed),
        ({"score": 2, "cause": Cause.outside}, [E.appeal_visited, E.appeal_closed], S.closed),
        ({"score": 1, "cause": Cause.department}, [E.appeal_visited, E.appeal_reopened], S.reopened),
    ],
    ids=["satisfied", "basically", "unsatisfied-outside", "unsatisfied-department-redo"],
)
def test_a_reached_visit_closes_the_appeal_or_orders_a_redo(book, fields, types, status):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    outcome = visits.attempt(doc, call(reached=True, **fields), book, local(2026, 12, 3, 10))
    assert lifecycle_types(outcome) == types
    visited = outcome.emits[0].data
    assert (visited.reached, visited.clerk, visited.actor) == (True, "Zhou Min", "coord")
    assert apply(doc, outcome)["status"] == status
    # The visitor is named once, on the visit; the redo or the close that follows is the office's.
    assert [e.data.clerk for e in outcome.emits if e.type != E.assignment_created][1:] == [None]


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({}, "score (1-5) or outcome is required"),
        ({"score": 3}, "cause (department or outside) is required"),
        ({"score": 5, "outcome": VisitOutcome.unsatisfied}, "score 5 is satisfied, not unsatisfied"),
        ({"outcome": VisitOutcome.unreached}, "outcome unreached is for attempts"),
    ],
)
def test_a_reached_visit_missing_its_outcome_or_cause_is_refused_naming_what(book, fields, complaint):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    with pytest.raises(ActionError) as err:
        visits.attempt(doc, call(reached=True, **fields), book, local(2026, 12, 3, 10))
    assert err.value.status == 422
    assert complaint in err.value.detail


def test_no_attempt_on_an_appeal_whose_visit_ended(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    doc = apply(doc, decide_feedback(doc, True, 5, None, book, local(2026, 12, 1, 12)))
    with pytest.raises(ActionError) as err:
        visits.attempt(doc, call(reached=True, score=5), book, local(2026, 12, 3, 10))
    assert err.value.status == 409


def test_the_office_finds_a_company_s_not_resolved_outside_the_department_and_the_appeal_closes(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    doc = apply(doc, decide_feedback(doc, False, 2, "Not what we asked", book, local(2026, 12, 1, 12)))
    with pytest.raises(ActionError) as err:
        visits.attempt(doc, call(reached=True, score=2), book, local(2026, 12, 2, 10))
    assert "cause" in err.value.detail
    outcome = visits.attempt(doc, call(reached=True, cause=Cause.outside), book, local(2026, 12, 2, 10))
    assert lifecycle_types(outcome) == [E.appeal_visited, E.appeal_closed]
    assert outcome.emits[0].data.cause == Cause.outside
    assert outcome.emits[0].data.visit_round == 1
    assert apply(doc, outcome)["status"] == S.closed


def test_the_office_confirms_the_cause_at_the_department_and_the_redo_stands(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    doc = apply(doc, decide_feedback(doc, False, 2, None, book, local(2026, 12, 1, 12)))
    outcome = visits.attempt(doc, call(reached=True, cause=Cause.department), book, local(2026, 12, 2, 10))
    assert lifecycle_types(outcome) == [E.appeal_visited]
    doc = apply(doc, outcome)
    assert (doc["status"], doc["visit"]["state"]) == (S.reopened, visits.VISITED)


def test_a_second_redo_puts_the_appeal_under_the_office_s_supervision_and_rounds_count_on(book):
    doc = resolved_at(book, local(2026, 12, 1, 10))
    doc = apply(doc, decide_feedback(doc, False, 2, None, book, local(2026, 12, 1, 12)))
    assert "redo_supervised_at" not in doc
    doc = apply(doc, act(doc, book, ActionKind.accept))
    doc = apply(doc, visits_resolve(doc, book, local(2026, 12, 3, 10)))
    assert (doc["visit"]["round"], doc["visit"]["state"]) == (2, visits.SCHEDULED)
    outcome = visits.attempt(doc, call(reached=True, score=1, cause=Cause.department), book, local(2026, 12, 4, 10))
    reopened = outcome.emits[1].data
    assert (reopened.redo_count, reopened.visit_round) == (2, 2)
    doc = apply(doc, outcome)
    assert doc["redo_supervised_at"] == local(2026, 12, 4, 10)
    assert [e.topic for e in outcome.emits if e.type == E.assignment_created] == [department_topic(LEAD)]


def test_times_are_kept_as_the_database_returns_them():
    visit = visits.ended(
        {"next_at": datetime(2026, 12, 1, tzinfo=UTC), "round": 1},
        visits.VISITED,
        datetime(2026, 12, 1, 1, 2, 3, 456789, tzinfo=UTC),
    )
    assert visit == {
        "round": 1,
        "state": visits.VISITED,
        "ended_at": datetime(2026, 12, 1, 1, 2, 3, 456000, tzinfo=UTC),
    }
