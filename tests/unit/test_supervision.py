"""Extensions (延期), decided by router (services/router/supervision.py, docs/domain.md, "Supervision").

The lead asks against its resolution clock as sla last reported it; the coordinating office
approves or rejects; only the office, and on an appeal it leads only an operator, decides.
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.contract import APPEALS_LIFECYCLE
from libs.kinds import ActionKind, AppealStatus, EventType
from services.router import queue, supervision
from services.router.lifecycle import decide_action
from services.router.rules import RoutingBook, load_routing_book
from services.router.transitions import ActionError, Transition
from tests.unit.test_lifecycle import CONFIG, COORD, LEAD, NOW, action, admitted, apply

SHANGHAI = ZoneInfo("Asia/Shanghai")
DUE = NOW + timedelta(hours=20)
CLOCK_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5:resolution:1"


@pytest.fixture(scope="module")
def book() -> RoutingBook:
    return load_routing_book(CONFIG)


def clocks(state: str = "running", due: datetime | None = DUE, clock_id: str = CLOCK_ID) -> dict[str, dict[str, Any]]:
    """The appeal's clocks as router keeps them (libs/deadlines.py): a resolution clock of the lead."""
    return {
        clock_id: {
            "clock": "resolution",
            "department": LEAD,
            "state": state,
            "target": "24h",
            "started_at": NOW - timedelta(hours=4),
            "due_at": due,
        }
    }


def ask(doc, book, at=NOW, kept=None, **fields: Any) -> Transition:
    fields = {"until": DUE + timedelta(days=2), "reason": "The bank's credit committee meets on Friday.", **fields}
    return decide_action(doc, action(ActionKind.request_extension, LEAD, **fields), book, at, clocks=kept or clocks())


def office(doc, book, kind=ActionKind.approve_extension, at=NOW, department=COORD, operator=False, **fields):
    return decide_action(doc, action(kind, department, clerk="Chen Wei", **fields), book, at, operator=operator)


def refused(call, *args, **kwargs) -> ActionError:
    with pytest.raises(ActionError) as err:
        call(*args, **kwargs)
    return err.value


def event(outcome: Transition):
    (emit,) = [e for e in outcome.emits if e.topic == APPEALS_LIFECYCLE]
    return emit


# ---------------------------------------------------------------- asking


def test_the_lead_asks_and_the_appeal_records_a_pending_request_against_the_current_due(book):
    doc = admitted(book)
    outcome = ask(doc, book)
    emit = event(outcome)
    assert emit.type == EventType.appeal_extension_requested
    assert emit.data.status == AppealStatus.routed  # an extension changes no status
    assert (emit.data.due_at, emit.data.previous_due_at) == (DUE + timedelta(days=2), DUE)
    assert emit.data.reason.startswith("The bank")
    after = apply(doc, outcome)
    assert after["extensions"][-1]["state"] == supervision.PENDING
    assert after["extension_pending_until"] == DUE
    assert supervision.pending_extension(after, NOW) is not None


@pytest.mark.parametrize(
    ("fields", "status", "names"),
    [
        ({"until": None}, 422, "until"),
        ({"reason": None}, 422, "reason"),
        ({"until": datetime(2026, 3, 5, 10, 0)}, 422, "time zone"),
        ({"until": DUE}, 409, "after the current due time"),
    ],
    ids=["no until", "no reason", "naive until", "until not later"],
)
def test_a_request_names_what_is_missing_or_wrong(book, fields, status, names):
    err = refused(ask, admitted(book), book, **fields)
    assert (err.status, names in err.detail) == (status, True)


def test_a_request_at_or_after_the_due_time_is_too_late(book):
    err = refused(ask, admitted(book), book, at=DUE)
    assert err.status == 409 and "before the resolution clock is due" in err.detail


@pytest.mark.parametrize("state", ["paused", "met", "breached", "cancelled"])
def test_a_request_needs_a_running_resolution_clock(book, state):
    err = refused(ask, admitted(book), book, kept=clocks(state, due=None if state == "paused" else DUE))
    assert err.status == 409 and state in err.detail


def test_the_maximum_counts_working_days_and_skips_the_national_day_holiday(book):
    due = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
    limit = supervision.latest_limit(book, LEAD, due)
    # Ten working days from Wednesday 30 September: 1-7 October are off, Saturday 10 October is worked.
    assert limit.astimezone(SHANGHAI) == datetime(2026, 10, 20, 10, 0, tzinfo=SHANGHAI)
    doc, at = admitted(book), due - timedelta(hours=1)
    assert event(ask(doc, book, at=at, kept=clocks(due=due), until=limit)).data.due_at == limit
    err = refused(ask, doc, book, at=at, kept=clocks(due=due), until=limit + timedelta(minutes=1))
    assert err.status == 409 and "10wd" in err.detail and limit.isoformat() in err.detail


def test_a_second_request_while_one_is_pending_is_refused(book):
    doc = apply(admitted(book), ask(admitted(book), book))
    err = refused(ask, doc, book)
    assert err.status == 409 and "already pending" in err.detail


def test_one_approved_extension_per_resolution_clock_and_a_reopened_appeals_new_clock_has_its_own(book):
    doc = apply(admitted(book), ask(admitted(book), book))
    doc = apply(doc, office(doc, book))
    err = refused(ask, doc, book, at=NOW + timedelta(hours=1))
    assert err.status == 409 and "extended already" in err.detail
    redo = clocks(clock_id="01JB8X4R5ZJ6Q8V2Y7K9M3N4P5:resolution:2")
    assert event(ask(doc, book, kept=redo)).type == EventType.appeal_extension_requested


def test_a_rejected_request_leaves_room_to_ask_again(book):
    doc = apply(admitted(book), ask(admitted(book), book))
    doc = apply(doc, office(doc, book, ActionKind.reject_extension, note="Not a reason to wait."))
    assert event(ask(doc, book)).type == EventType.appeal_extension_requested


# ---------------------------------------------------------------- the office decides


def test_the_office_approves_with_the_requests_date_and_reason_and_its_clerk(book):
    doc = apply(admitted(book), ask(admitted(book), book))
    outcome = office(doc, book, note="Agreed, once.")
    emit = event(outcome)
    assert emit.type == EventType.appeal_extension_approved
    assert (emit.data.due_at, emit.data.previous_due_at) == (DUE + timedelta(days=2), DUE)
    assert (emit.data.actor, emit.data.clerk, emit.data.note) == (COORD, "Chen Wei", "Agreed, once.")
    after = apply(doc, outcome)
    assert after["extensions"][-1]["state"] == supervision.APPROVED
    assert after["extension_pending_until"] is None


def test_a_rejection_needs_a_comment_and_moves_nothing(book):
    doc = apply(admitted(book), ask(admitted(book), book))
    err = refused(office, doc, book, ActionKind.reject_extension)
    assert err.status == 422 and "note" in err.detail
    emit = event(office(doc, book, ActionKind.reject_extension, note="Answer the company first."))
    assert emit.type == EventType.appeal_extension_rejected


def test_a_request_left_unanswered_lapses_at_the_old_due_time(book):
    doc = apply(admitted(book), ask(admitted(book), book))
    assert supervision.pending_extension(doc, DUE) is None
    err = refused(office, doc, book, at=DUE)
    assert err.status == 409 and "lapsed" in err.detail


def test_nothing_pending_nothing_to_decide(book):
    err = refused(office, admitted(book), book)
    assert err.status == 409 and "no extension is pending" in err.detail


@pytest.mark.parametrize("kind", [ActionKind.approve_extension, ActionKind.reject_extension])
def test_only_the_office_decides_not_the_lead_nor_another_department(book, kind):
    doc = apply(admitted(book), ask(admitted(book), book))
    for department in (LEAD, "justice"):
        err = refused(office, doc, book, kind, department=department, note="x")
        assert err.status == 403 and "only the coordinating office" in err.detail


def test_on_an_appeal_the_office_leads_an_operator_decides_not_the_office(book):
    doc = {**admitted(book), "lead": COORD, "cohandlers": []}
    doc = apply(
        doc,
        decide_action(
            doc,
            action(ActionKind.request_extension, COORD, until=DUE + timedelta(days=1), reason="r"),
            book,
            NOW,
            clocks=clocks(),
        ),
    )
    err = refused(office, doc, book)
    assert err.status == 403 and "operator" in err.detail
    assert event(office(doc, book, operator=True)).type == EventType.appeal_extension_approved


def test_a_resolved_appeal_has_no_extension_left_to_decide(book):
    doc = apply(admitted(book), ask(admitted(book), book))
    err = refused(office, {**doc, "status": AppealStatus.resolved.value}, book)
    assert err.status == 409


# ---------------------------------------------------------------- the city queue's view of the clocks


def test_the_queue_keeps_the_latest_watched_runs_due_times_and_the_risk():
    clocks_now = {
        "a:scope:1": {"clock": "scope", "state": "breached", "due_at": NOW, "started_at": NOW - timedelta(hours=6)},
        "a:response:1": {"clock": "response", "state": "running", "due_at": DUE, "level": 80, "started_at": NOW},
        "a:resolution:1": {"clock": "resolution", "state": "met", "due_at": DUE, "started_at": NOW - timedelta(1)},
        "a:resolution:2": {"clock": "resolution", "state": "running", "due_at": DUE, "started_at": NOW},
    }
    found, gone = queue.summary(clocks_now)
    assert found == {"due.scope": NOW, "due.resolution": DUE, "overdue_from": NOW, "at_risk": True, "urge_level": 1}
    assert gone == {}
    found, gone = queue.summary({})
    assert found == {} and set(gone) == {"due.scope", "due.resolution", "overdue_from", "at_risk", "urge_level"}
    urged = {**clocks_now["a:scope:1"], "urge_level": 3}
    assert queue.summary({"a:scope:1": urged})[0]["urge_level"] == 3


@pytest.mark.parametrize(
    ("status", "due", "states"),
    [
        ("routed", {"scope": NOW - timedelta(seconds=1)}, ["overdue"]),
        ("accepted", {"scope": NOW - timedelta(seconds=1)}, []),  # the scope clock got its answer
        ("accepted", {"resolution": NOW}, ["overdue"]),
        ("accepted", {"resolution": NOW + timedelta(seconds=1)}, []),
        ("info_requested", {"resolution": NOW - timedelta(hours=1)}, []),  # paused: the company owes information
    ],
)
def test_overdue_means_a_watched_clock_ran_out_while_it_still_awaits_its_answer(status, due, states):
    assert queue.states_of({"status": status}, {"due": due}, NOW) == states


def test_an_appeal_at_risk_or_with_a_pending_extension_says_so():
    appeal = {"status": "accepted", "extension_pending_until": NOW + timedelta(hours=1)}
    assert queue.states_of(appeal, {"at_risk": True}, NOW) == ["at_risk", "extension_pending"]
    assert queue.states_of({**appeal, "extension_pending_until": NOW}, {}, NOW) == []


def test_clock_times_read_back_naive_from_the_database_still_compare():
    naive = (NOW - timedelta(minutes=1)).astimezone(UTC).replace(tzinfo=None)
    assert queue.states_of({"status": "routed"}, {"due": {"scope": naive}}, NOW) == ["overdue"]


# ---------------------------------------------------------------- send-backs (退单) and transfer requests


def assigned(book, at: datetime = NOW, **overrides: Any) -> dict[str, Any]:
    """A routed appeal whose lead was assigned it at `at` (as router's admission records)."""
    return {**admitted(book, **overrides), "assigned_at": at}


def lead_acts(doc, book, kind, at=NOW, department=None, **fields) -> Transition:
    return decide_action(doc, action(kind, department or doc["lead"], **fields), book, at)


GUIDANCE = {"guidance": "Tax deferrals are the tax service's."}


def test_the_send_back_window_is_the_scope_target_on_the_leads_calendar(book):
    doc = assigned(book)
    # standard_72h's scope target is 6 hours of calendar time.
    assert supervision.window_end(doc, book) == NOW + timedelta(hours=6)
    assert supervision.window_end({**doc, "assigned_at": None}, book) is None


def test_a_decline_inside_the_window_reroutes_and_enters_the_offices_review(book):
    doc = assigned(book)
    out = lead_acts(doc, book, ActionKind.decline, at=NOW + timedelta(hours=6) - timedelta(seconds=1), **GUIDANCE)
    after = apply(doc, out)
    assert after["send_back"]["state"] == supervision.PENDING
    assert (after["send_back"]["declined_by"], after["send_back"]["to"]) == (LEAD, after["lead"])
    assert after["assigned_at"] == NOW + timedelta(hours=6) - timedelta(seconds=1)
    declined = next(e for e in out.emits if e.type == EventType.appeal_declined)
    assert declined.data.chosen is False


@pytest.mark.parametrize("kind", [ActionKind.decline, ActionKind.transfer])
def test_past_the_window_the_lead_neither_declines_nor_transfers_and_is_told_to_ask_the_office(book, kind):
    doc = assigned(book)
    fields = GUIDANCE if kind == ActionKind.decline else {"target_department": "finance"}
    err = refused(lead_acts, doc, book, kind, at=NOW + timedelta(hours=6), **fields)
    assert err.status == 409 and "send-back window" in err.detail and "request_transfer" in err.detail


def test_a_window_of_a_duration_counts_from_the_assignment(book):
    config = book.supervision.model_copy(
        update={"send_back": book.supervision.send_back.model_copy(update={"window": "2h"})}
    )
    short = RoutingBook(**{**book.__dict__, "supervision": config})
    doc = assigned(short)
    assert supervision.window_end(doc, short) == NOW + timedelta(hours=2)


def test_the_chosen_departments_decline_is_no_send_back(book):
    doc = assigned(book, department="commerce")
    out = lead_acts(doc, book, ActionKind.decline, **GUIDANCE)
    assert "send_back" not in out.set
    assert next(e for e in out.emits if e.type == EventType.appeal_declined).data.chosen is True


def test_the_office_overrules_a_send_back_and_the_appeal_returns_with_its_first_assignment(book):
    first = NOW - timedelta(hours=1)
    doc = assigned(book, at=first)
    sent = apply(doc, lead_acts(doc, book, ActionKind.decline, **GUIDANCE))
    new_lead = sent["lead"]
    out = office(sent, book, ActionKind.overrule_decline, at=NOW + timedelta(minutes=5), note="Deferrals are yours.")
    after = apply(sent, out)
    assert (after["lead"], after["status"], after["assigned_at"]) == (LEAD, "routed", first)
    assert after["send_back"]["state"] == "overruled" and after["declined_by"] == []
    emit = event(out)
    assert (emit.type, emit.data.department, emit.data.previous_department) == (
        EventType.appeal_decline_overruled,
        LEAD,
        new_lead,
    )
    assert (emit.data.since, emit.data.actor, emit.data.clerk) == (first, COORD, "Chen Wei")
    assert [(e.type, e.data.department) for e in out.emits if e.topic != APPEALS_LIFECYCLE] == [
        (EventType.assignment_withdrawn, new_lead),
        (EventType.assignment_created, LEAD),
    ]
    # Returned by the office, it may not send the appeal back again, even inside the window.
    err = refused(lead_acts, after, book, ActionKind.decline, at=NOW + timedelta(minutes=6), **GUIDANCE)
    assert err.status == 409 and "overruled" in err.detail


def test_an_overrule_needs_a_pending_send_back_the_appeal_has_not_moved_on_from(book):
    doc = assigned(book)
    assert refused(office, doc, book, ActionKind.overrule_decline).status == 409
    sent = apply(doc, lead_acts(doc, book, ActionKind.decline, **GUIDANCE))
    moved = apply(sent, lead_acts(sent, book, ActionKind.transfer, target_department="finance"))
    err = refused(office, moved, book, ActionKind.overrule_decline)
    assert err.status == 409 and "moved on" in err.detail
    confirmed = apply(sent, office(sent, book, ActionKind.confirm_decline))
    assert confirmed["send_back"]["state"] == "confirmed" and confirmed["lead"] == sent["lead"]
    assert refused(office, confirmed, book, ActionKind.overrule_decline).status == 409


def test_past_the_window_the_lead_asks_and_the_office_grants_or_refuses(book):
    doc = assigned(book, at=NOW - timedelta(days=2))
    ask_for = {"reason": "Customs valuation, not finance.", "target_department": "customs"}
    err = refused(lead_acts, doc, book, ActionKind.request_transfer, reason="r")
    assert err.status == 422
    asked = apply(doc, lead_acts(doc, book, ActionKind.request_transfer, **ask_for))
    assert event(lead_acts(doc, book, ActionKind.request_transfer, **ask_for)).data.target_department == "customs"
    assert refused(lead_acts, asked, book, ActionKind.request_transfer, **ask_for).status == 409
    assert refused(office, asked, book, ActionKind.refuse_transfer).status == 422  # a refusal says why
    kept = apply(asked, office(asked, book, ActionKind.refuse_transfer, note="It is a financing matter."))
    assert kept["lead"] == LEAD and kept["transfer_request"] is None
    granted = office(asked, book, ActionKind.grant_transfer)
    after = apply(asked, granted)
    assert (after["lead"], after["transfer_request"], after["assigned_at"]) == ("customs", None, NOW)
    assert event(granted).type == EventType.appeal_transferred and event(granted).data.actor == COORD


def test_the_office_urges_by_hand_with_a_comment_and_it_is_counted(book):
    doc = assigned(book)
    assert refused(office, doc, book, ActionKind.urge).status == 422
    out = office(doc, book, ActionKind.urge, note="Call the company today.")
    emit = event(out)
    assert (emit.type, emit.data.department, emit.data.note) == (
        EventType.appeal_urged,
        LEAD,
        "Call the company today.",
    )
    assert len(apply(doc, out)["urgings"]) == 1
    err = refused(lead_acts, doc, book, ActionKind.urge, note="x")
    assert err.status == 403


# ---------------------------------------------------------------- co-handlers contribute


def test_a_cohandler_contributes_its_part_with_links_and_the_lead_sees_it(book):
    doc = assigned(book)
    cohandler = doc["cohandlers"][0]
    out = lead_acts(
        doc,
        book,
        ActionKind.contribute,
        department=cohandler,
        note="The deferral can run three months.",
        attachments=["https://files.example.org/deferral.pdf"],
    )
    emit = event(out)
    assert (emit.type, emit.data.department, emit.data.actor) == (EventType.appeal_contributed, LEAD, cohandler)
    assert emit.data.attachments == ["https://files.example.org/deferral.pdf"]
    assert apply(doc, out)["contributions"][0]["department"] == cohandler
    # The lead may have resolved already: a late part still reaches it.
    resolved = {**doc, "status": AppealStatus.resolved.value}
    assert event(lead_acts(resolved, book, ActionKind.contribute, department=cohandler, note="x")).data


def test_only_a_cohandler_contributes_and_it_says_something(book):
    doc = assigned(book)
    for department in (LEAD, "justice"):
        err = refused(lead_acts, doc, book, ActionKind.contribute, department=department, note="x")
        assert err.status == 403 and "only a co-handler" in err.detail
    err = refused(lead_acts, doc, book, ActionKind.contribute, department=doc["cohandlers"][0])
    assert err.status == 422


def test_a_contribution_link_must_be_https():
    from pydantic import ValidationError

    from services.router.models import ActionIn

    with pytest.raises(ValidationError, match="https"):
        ActionIn(action=ActionKind.contribute, note="x", attachments=["javascript:alert(1)"])


@pytest.mark.parametrize("kind", [ActionKind.transfer, ActionKind.add_cohandler])
def test_the_office_moves_any_appeal_or_brings_in_a_cohandler_past_any_window(book, kind):
    doc = assigned(book, at=NOW - timedelta(days=3))
    out = office(doc, book, kind, target_department="customs")
    after = apply(doc, out)
    assert "customs" in (after["lead"], *after["cohandlers"])
    assert event(out).data.actor == COORD
    # Another department may not.
    assert refused(lead_acts, doc, book, kind, department="justice", target_department="customs").status == 403
