"""The appeal lifecycle state machine (services/router/lifecycle.py, docs/domain.md, "Lifecycle").

Every function is pure: it takes the stored appeal and returns the fields to set and
the events to emit. These tests apply `outcome.set` to the document themselves, as
service.py does, to walk an appeal through its life.
"""

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.contract import APPEALS_LIFECYCLE, department_topic
from libs.events import AppealSubmitted, Contact, DepartmentAction, Enterprise
from libs.kinds import ActionKind, AppealStatus, Category, Channel, EventType
from services.router.lifecycle import (
    ALLOWED_FROM,
    ActionError,
    Transition,
    decide_action,
    decide_admission,
    decide_auto_close,
    decide_feedback,
    decide_info_provided,
    duplicate_key,
    new_appeal,
)
from services.router.rules import RoutingBook, load_routing_book

CONFIG = Path(__file__).resolve().parents[2] / "config"
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
S = AppealStatus

LEAD = "nanshan-finance"  # financing in Nanshan goes to the district counterpart of `finance`
COHANDLER = "nanshan-tax"  # ... and a tax deferral brings in the district tax service (rule financing-tax)
COORD = "coord"


@pytest.fixture(scope="module")
def book() -> RoutingBook:
    return load_routing_book(CONFIG)


# ---------------------------------------------------------------- helpers


def submitted(**overrides: Any) -> AppealSubmitted:
    fields: dict[str, Any] = {
        "appeal_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5",
        "channel": Channel.wechat,
        "channel_ref": "wx-20260303-0042",
        "enterprise": Enterprise(
            uscc="91350100M000100Y43",
            name="Lanhai Network",
            employees=25,
            industry="internet services",
            district="nanshan",
        ),
        "contact": Contact(name="Li Wei", phone="13800138000"),
        "category": Category.financing,
        "size_band": "micro",
        "title": "Loan due while staff cannot return",
        "description": "Our working-capital loan falls due; a tax deferral would tide us over.",
        "submitted_at": NOW,
    }
    fields.update(overrides)
    return AppealSubmitted(**fields)


def apply(doc: dict[str, Any], outcome: Transition) -> dict[str, Any]:
    """The stored appeal after an outcome, as service.py writes it."""
    return {**doc, **outcome.set}


def admitted(book: RoutingBook, **overrides: Any) -> dict[str, Any]:
    """A routed appeal: by default led by nanshan-finance with nanshan-tax co-handling."""
    doc = new_appeal(submitted(**overrides), book)
    return apply(doc, decide_admission(doc, book))


def action(kind: ActionKind, department: str = LEAD, **fields: Any) -> DepartmentAction:
    return DepartmentAction(appeal_id="01JB8X4R5ZJ6Q8V2Y7K9M3N4P5", department=department, action=kind, **fields)


def act(
    doc: dict[str, Any], book: RoutingBook, kind: ActionKind, department: str | None = None, **fields: Any
) -> Transition:
    return decide_action(doc, action(kind, department or doc["lead"], **fields), book, NOW)


def lifecycle_types(outcome: Transition) -> list[str]:
    return [e.type for e in outcome.emits if e.topic == APPEALS_LIFECYCLE]


def assignments(outcome: Transition) -> list[tuple[str, str, str]]:
    """(topic, department, role) of every assignment.created emitted."""
    return [(e.topic, e.data.department, e.data.role) for e in outcome.emits if e.type == EventType.assignment_created]


def withdrawals(outcome: Transition) -> list[tuple[str, str, str | None]]:
    return [
        (e.topic, e.data.reason, e.data.to_department)
        for e in outcome.emits
        if e.type == EventType.assignment_withdrawn
    ]


# Fields that make each action valid on the default appeal, so only the status decides.
VALID_FIELDS: dict[ActionKind, dict[str, Any]] = {
    ActionKind.accept: {},
    ActionKind.decline: {"guidance": "Ask the district tax service about deferral."},
    ActionKind.request_info: {"note": "Please send the loan contract."},
    ActionKind.resolve: {"resolution": "The bank deferred principal repayment by three months."},
    ActionKind.transfer: {"target_department": "finance"},
    ActionKind.add_cohandler: {"target_department": "justice"},
}

# The lead's actions on the lifecycle; extensions and the office's actions: tests/unit/test_supervision.py.
KINDS = list(VALID_FIELDS)
ALLOWED = [(k, s) for k, s in itertools.product(KINDS, AppealStatus) if s in ALLOWED_FROM[k]]
FORBIDDEN = [(k, s) for k, s in itertools.product(KINDS, AppealStatus) if s not in ALLOWED_FROM[k]]


# ---------------------------------------------------------------- admission


def test_admission_routes_to_the_lead_and_cohandlers(book):
    doc = admitted(book)
    assert doc["status"] == S.routed
    assert doc["lead"] == LEAD
    assert doc["cohandlers"] == [COHANDLER]
    assert doc["rule_id"] == "financing-tax"


def test_admission_emits_appeal_routed_on_the_lifecycle_topic(book):
    doc = new_appeal(submitted(), book)
    outcome = decide_admission(doc, book)
    first = outcome.emits[0]
    assert (first.topic, first.type) == (APPEALS_LIFECYCLE, EventType.appeal_routed)
    assert first.data.status == S.routed
    assert first.data.department == LEAD
    assert first.data.cohandlers == [COHANDLER]


def test_admission_assigns_the_lead_and_each_cohandler_on_their_department_topics(book):
    doc = new_appeal(submitted(), book)
    outcome = decide_admission(doc, book)
    assert assignments(outcome) == [
        (department_topic(LEAD), LEAD, "lead"),
        (department_topic(COHANDLER), COHANDLER, "cohandler"),
    ]
    assert department_topic(LEAD) == "dept.nanshan-finance.v1"
    for emit in outcome.emits[1:]:
        assert emit.data.lead_department == LEAD
        assert emit.data.cohandlers == [COHANDLER]


def test_admission_without_cohandlers_assigns_only_the_lead(book):
    doc = new_appeal(submitted(description="Our working-capital loan falls due next week."), book)
    outcome = decide_admission(doc, book)
    assert assignments(outcome) == [(department_topic(LEAD), LEAD, "lead")]


@pytest.mark.parametrize("flag", ["in_litigation", "in_arbitration"])
def test_admission_rejects_a_matter_in_litigation_or_arbitration(book, flag):
    doc = new_appeal(submitted(flags=[flag]), book)
    outcome = decide_admission(doc, book)
    assert outcome.set["status"] == S.rejected
    assert outcome.set["open"] is False
    assert flag.removeprefix("in_") in outcome.set["reason"]


@pytest.mark.parametrize("flag", ["in_litigation", "in_arbitration"])
def test_rejection_emits_only_appeal_rejected_with_the_reason(book, flag):
    doc = new_appeal(submitted(flags=[flag]), book)
    outcome = decide_admission(doc, book)
    assert [(e.topic, e.type) for e in outcome.emits] == [(APPEALS_LIFECYCLE, EventType.appeal_rejected)]
    assert outcome.emits[0].data.reason == outcome.set["reason"]
    assert outcome.emits[0].data.actor == "system"


# ---------------------------------------------------------------- allowed and forbidden transitions


@pytest.mark.parametrize(("kind", "status"), ALLOWED, ids=[f"{k}-from-{s}" for k, s in ALLOWED])
def test_action_is_allowed_from_its_source_statuses(book, kind, status):
    doc = {**admitted(book), "status": status.value}
    outcome = act(doc, book, kind, **VALID_FIELDS[kind])
    assert lifecycle_types(outcome)


@pytest.mark.parametrize(("kind", "status"), FORBIDDEN, ids=[f"{k}-from-{s}" for k, s in FORBIDDEN])
def test_action_from_any_other_status_is_a_409(book, kind, status):
    doc = {**admitted(book), "status": status.value}
    with pytest.raises(ActionError) as err:
        act(doc, book, kind, **VALID_FIELDS[kind])
    assert err.value.status == 409
    assert status.value in err.value.detail


def test_every_action_kind_has_allowed_source_statuses():
    assert set(ALLOWED_FROM) == set(ActionKind)


# ---------------------------------------------------------------- who may act


@pytest.mark.parametrize("kind", [*KINDS, ActionKind.request_extension])
def test_a_department_not_involved_gets_403(book, kind):
    doc = admitted(book)
    with pytest.raises(ActionError) as err:
        act(doc, book, kind, department="justice", **VALID_FIELDS.get(kind, {}))
    assert err.value.status == 403
    assert "not assigned to justice" in err.value.detail


@pytest.mark.parametrize("kind", [*KINDS, ActionKind.request_extension])
def test_a_cohandler_gets_403_naming_the_lead(book, kind):
    doc = admitted(book)
    with pytest.raises(ActionError) as err:
        act(doc, book, kind, department=COHANDLER, **VALID_FIELDS.get(kind, {}))
    assert err.value.status == 403
    assert LEAD in err.value.detail


# ---------------------------------------------------------------- accept


def test_accept_moves_a_routed_appeal_to_accepted(book):
    outcome = act(admitted(book), book, ActionKind.accept)
    assert outcome.set["status"] == S.accepted
    assert outcome.set["accepted_at"] == NOW
    assert lifecycle_types(outcome) == [EventType.appeal_accepted]


def test_accept_resets_the_decline_streak(book):
    doc = admitted(book)
    doc = apply(doc, act(doc, book, ActionKind.decline, guidance="Insurance matter.", target_department="insurance"))
    assert doc["declined_by"] == [LEAD]
    outcome = act(doc, book, ActionKind.accept)
    assert outcome.set["declined_by"] == []


# ---------------------------------------------------------------- decline


@pytest.mark.parametrize("guidance", [None, ""])
def test_decline_without_guidance_is_a_422(book, guidance):
    with pytest.raises(ActionError) as err:
        act(admitted(book), book, ActionKind.decline, guidance=guidance)
    assert err.value.status == 422
    assert "guidance" in err.value.detail


def test_decline_with_a_target_reroutes_to_it(book):
    outcome = act(admitted(book), book, ActionKind.decline, guidance="Insurance matter.", target_department="insurance")
    assert outcome.set["lead"] == "insurance"
    assert outcome.set["status"] == S.routed
    assert outcome.set["declined_by"] == [LEAD]


def test_decline_emits_declined_then_rerouted(book):
    outcome = act(admitted(book), book, ActionKind.decline, guidance="Insurance matter.", target_department="insurance")
    assert lifecycle_types(outcome) == [EventType.appeal_declined, EventType.appeal_rerouted]
    declined, rerouted = (e.data for e in outcome.emits if e.topic == APPEALS_LIFECYCLE)
    assert declined.guidance == "Insurance matter."
    assert (declined.department, declined.actor) == (LEAD, LEAD)
    assert (rerouted.status, rerouted.department, rerouted.previous_department) == (S.routed, "insurance", LEAD)


def test_decline_withdraws_from_the_old_lead_and_assigns_the_new_one(book):
    outcome = act(admitted(book), book, ActionKind.decline, guidance="Insurance matter.", target_department="insurance")
    assert withdrawals(outcome) == [(department_topic(LEAD), "declined", "insurance")]
    assert assignments(outcome) == [(department_topic("insurance"), "insurance", "lead")]


def test_decline_to_a_cohandler_drops_it_from_the_cohandlers(book):
    outcome = act(admitted(book), book, ActionKind.decline, guidance="It is a tax matter.", target_department=COHANDLER)
    assert outcome.set["lead"] == COHANDLER
    assert outcome.set["cohandlers"] == []


def test_decline_to_an_unknown_department_is_a_422(book):
    with pytest.raises(ActionError) as err:
        act(admitted(book), book, ActionKind.decline, guidance="Go elsewhere.", target_department="nowhere")
    assert err.value.status == 422


def test_decline_without_a_target_reroutes_away_from_the_decliner(book):
    outcome = act(admitted(book), book, ActionKind.decline, guidance="Not ours.")
    assert outcome.set["lead"] != LEAD
    assert outcome.set["status"] == S.routed


def test_second_decline_in_a_row_goes_to_the_coordinating_office(book):
    doc = admitted(book)
    doc = apply(doc, act(doc, book, ActionKind.decline, guidance="Insurance matter.", target_department="insurance"))
    outcome = act(doc, book, ActionKind.decline, guidance="A tax matter.", target_department="tax")
    assert outcome.set["lead"] == COORD
    assert outcome.set["declined_by"] == [LEAD, "insurance"]
    assert assignments(outcome) == [(department_topic(COORD), COORD, "lead")]


def test_the_coordinating_office_cannot_decline(book):
    doc = admitted(book, category=Category.other, description="Nothing fits.")
    assert doc["lead"] == COORD
    with pytest.raises(ActionError) as err:
        act(doc, book, ActionKind.decline, guidance="Try the tax service.", target_department="tax")
    assert err.value.status == 409


# ---------------------------------------------------------------- transfer and add_cohandler


@pytest.mark.parametrize("kind", [ActionKind.transfer, ActionKind.add_cohandler])
def test_transfer_and_add_cohandler_need_a_target(book, kind):
    with pytest.raises(ActionError) as err:
        act(admitted(book), book, kind)
    assert err.value.status == 422
    assert "target_department" in err.value.detail


@pytest.mark.parametrize("kind", [ActionKind.transfer, ActionKind.add_cohandler])
def test_transfer_and_add_cohandler_need_a_known_target(book, kind):
    with pytest.raises(ActionError) as err:
        act(admitted(book), book, kind, target_department="nowhere")
    assert err.value.status == 422
    assert "nowhere" in err.value.detail


@pytest.mark.parametrize("kind", [ActionKind.transfer, ActionKind.add_cohandler])
def test_transfer_and_add_cohandler_to_the_lead_itself_is_a_409(book, kind):
    with pytest.raises(ActionError) as err:
        act(admitted(book), book, kind, target_department=LEAD)
    assert err.value.status == 409


def test_transfer_hands_the_lead_to_the_target(book):
    doc = {**admitted(book), "declined_by": ["insurance"]}
    outcome = act(doc, book, ActionKind.transfer, target_department="finance")
    assert outcome.set["lead"] == "finance"
    assert outcome.set["status"] == S.routed
    assert outcome.set["declined_by"] == []
    assert lifecycle_types(outcome) == [EventType.appeal_transferred]
    assert outcome.emits[0].data.previous_department == LEAD


def test_transfer_withdraws_from_the_old_lead_and_assigns_the_target(book):
    outcome = act(admitted(book), book, ActionKind.transfer, target_department="finance")
    assert withdrawals(outcome) == [(department_topic(LEAD), "transferred", "finance")]
    assert assignments(outcome) == [(department_topic("finance"), "finance", "lead")]


def test_add_cohandler_appends_and_assigns_the_target_as_cohandler(book):
    outcome = act(admitted(book), book, ActionKind.add_cohandler, target_department="justice")
    assert outcome.set == {"cohandlers": [COHANDLER, "justice"], "sequence": 2}
    assert lifecycle_types(outcome) == [EventType.appeal_cohandler_added]
    assert assignments(outcome) == [(department_topic("justice"), "justice", "cohandler")]


def test_add_cohandler_twice_is_a_409(book):
    with pytest.raises(ActionError) as err:
        act(admitted(book), book, ActionKind.add_cohandler, target_department=COHANDLER)
    assert err.value.status == 409


# ---------------------------------------------------------------- request_info and info_provided


@pytest.mark.parametrize("note", [None, ""])
def test_request_info_needs_a_note(book, note):
    with pytest.raises(ActionError) as err:
        act(admitted(book), book, ActionKind.request_info, note=note)
    assert err.value.status == 422
    assert "note" in err.value.detail


@pytest.mark.parametrize("before", [S.routed, S.accepted, S.reopened])
def test_info_provided_returns_to_the_status_before_the_request(book, before):
    doc = {**admitted(book), "status": before.value}
    doc = apply(doc, act(doc, book, ActionKind.request_info, note="Send the loan contract."))
    assert doc["status"] == S.info_requested
    outcome = decide_info_provided(doc)
    assert outcome.set["status"] == before
    assert lifecycle_types(outcome) == [EventType.appeal_info_provided]
    assert outcome.emits[0].data.actor == "company"


@pytest.mark.parametrize("status", [s for s in AppealStatus if s != S.info_requested])
def test_info_provided_without_a_request_is_a_409(book, status):
    with pytest.raises(ActionError) as err:
        decide_info_provided({**admitted(book), "status": status.value})
    assert err.value.status == 409


# ---------------------------------------------------------------- resolve


@pytest.mark.parametrize("resolution", [None, ""])
def test_resolve_needs_a_resolution(book, resolution):
    doc = {**admitted(book), "status": S.accepted.value}
    with pytest.raises(ActionError) as err:
        act(doc, book, ActionKind.resolve, resolution=resolution)
    assert err.value.status == 422


def test_resolve_records_the_resolution_and_time(book):
    doc = {**admitted(book), "status": S.accepted.value}
    outcome = act(doc, book, ActionKind.resolve, resolution="Repayment deferred.", policy_refs=["deferred-repayment"])
    assert outcome.set["status"] == S.resolved
    assert outcome.set["resolved_at"] == NOW
    assert outcome.set["resolution"] == "Repayment deferred."
    assert outcome.set["policy_refs"] == ["deferred-repayment"]


# ---------------------------------------------------------------- feedback and auto-close


def resolved(book: RoutingBook) -> dict[str, Any]:
    return {**admitted(book), "status": S.resolved.value, "resolved_at": NOW}


def test_feedback_resolved_emits_confirmed_then_closed(book):
    outcome = decide_feedback(resolved(book), resolved=True, satisfaction=5, comment="Thanks", book=book, now=NOW)
    assert lifecycle_types(outcome) == [EventType.appeal_confirmed, EventType.appeal_closed]
    assert outcome.emits[0].data.satisfaction == 5


def test_feedback_resolved_closes_the_appeal(book):
    outcome = decide_feedback(resolved(book), resolved=True, satisfaction=5, comment=None, book=book, now=NOW)
    assert outcome.set["status"] == S.closed
    assert outcome.set["open"] is False


def test_feedback_not_resolved_reopens_the_appeal(book):
    outcome = decide_feedback(resolved(book), resolved=False, satisfaction=2, comment="Still stuck", book=book, now=NOW)
    assert outcome.set["status"] == S.reopened
    assert outcome.set["resolved_at"] is None
    assert "open" not in outcome.set
    assert lifecycle_types(outcome) == [EventType.appeal_reopened]


def test_feedback_not_resolved_sends_the_assignment_to_the_lead_again(book):
    outcome = decide_feedback(resolved(book), resolved=False, satisfaction=2, comment="Still stuck", book=book, now=NOW)
    assert assignments(outcome) == [(department_topic(LEAD), LEAD, "lead")]


@pytest.mark.parametrize("status", [s for s in AppealStatus if s != S.resolved])
def test_feedback_on_an_unresolved_appeal_is_a_409(book, status):
    with pytest.raises(ActionError) as err:
        decide_feedback(
            {**admitted(book), "status": status.value}, resolved=True, satisfaction=5, comment=None, book=book, now=NOW
        )
    assert err.value.status == 409


def test_auto_close_closes_a_resolved_appeal(book):
    outcome = decide_auto_close(resolved(book), days=7)
    assert outcome.set["status"] == S.closed
    assert outcome.set["open"] is False
    assert lifecycle_types(outcome) == [EventType.appeal_closed]
    assert outcome.emits[0].data.actor == "system"
    assert "7 days" in outcome.emits[0].data.reason


@pytest.mark.parametrize("status", [s for s in AppealStatus if s != S.resolved])
def test_auto_close_is_only_from_resolved(book, status):
    with pytest.raises(ActionError) as err:
        decide_auto_close({**admitted(book), "status": status.value}, days=7)
    assert err.value.status == 409


# ---------------------------------------------------------------- sequence numbers


def test_sequence_increases_by_one_per_lifecycle_event(book):
    doc = new_appeal(submitted(), book)
    assert doc["sequence"] == 0
    steps = [
        lambda d: decide_admission(d, book),  # routed
        lambda d: act(d, book, ActionKind.decline, guidance="Insurance.", target_department="insurance"),  # 2
        lambda d: act(d, book, ActionKind.accept),
        lambda d: act(d, book, ActionKind.add_cohandler, target_department="justice"),
        lambda d: act(d, book, ActionKind.request_info, note="Send the contract."),
        lambda d: decide_info_provided(d),
        lambda d: act(d, book, ActionKind.resolve, resolution="Claim paid."),
        lambda d: decide_feedback(d, resolved=False, satisfaction=2, comment=None, book=book, now=NOW),
        lambda d: act(d, book, ActionKind.accept),
        lambda d: act(d, book, ActionKind.resolve, resolution="Claim paid in full."),
        lambda d: decide_feedback(d, resolved=True, satisfaction=5, comment=None, book=book, now=NOW),  # 2
    ]
    seen: list[int] = []
    for step in steps:
        outcome = step(doc)
        seen += [e.data.sequence for e in outcome.emits if e.topic == APPEALS_LIFECYCLE]
        doc = apply(doc, outcome)
        assert doc["sequence"] == seen[-1]
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) == 13
    assert doc["status"] == S.closed


def test_rejection_is_sequence_one(book):
    doc = new_appeal(submitted(flags=["in_litigation"]), book)
    outcome = decide_admission(doc, book)
    assert outcome.set["sequence"] == 1
    assert outcome.emits[0].data.sequence == 1


# ---------------------------------------------------------------- duplicates


def test_duplicate_key_ignores_case_and_spacing():
    assert duplicate_key("91350100M000100Y43", "financing", "Loan due  while\tstaff cannot return ") == duplicate_key(
        "91350100M000100Y43", "financing", "  loan DUE while staff cannot return"
    )


def test_duplicate_key_ignores_full_width_spaces():
    assert duplicate_key("91350100M000100Y43", "tax", "退税\u3000延迟") == duplicate_key(
        "91350100M000100Y43", "tax", "退税 延迟"
    )


def test_duplicate_key_tells_different_titles_apart():
    assert duplicate_key("91350100M000100Y43", "financing", "Loan due") != duplicate_key(
        "91350100M000100Y43", "financing", "Loan overdue"
    )


def test_duplicate_key_tells_categories_and_companies_apart():
    key = duplicate_key("91350100M000100Y43", "financing", "Loan due")
    assert key != duplicate_key("91350100M000100Y43", "tax", "Loan due")
    assert key != duplicate_key("91440300MA5FXT4K8N", "financing", "Loan due")


def test_new_appeal_stores_the_duplicate_key_and_is_open(book):
    doc = new_appeal(submitted(title="  LOAN due while staff cannot return"), book)
    assert doc["dup_key"] == duplicate_key("91350100M000100Y43", "financing", "Loan due while staff cannot return")
    assert doc["open"] is True
    assert doc["status"] == S.submitted


# ---------------------------------------------------------------- the company's choice of department


def test_a_department_the_company_chose_leads_alone(book):
    doc = admitted(book, department="commerce")
    assert doc["lead"] == "commerce" and doc["cohandlers"] == [] and doc["rule_id"] is None
    assert doc["routing_explanation"][0].startswith("the company chose commerce")


def test_the_chosen_department_declining_hands_the_appeal_to_the_rules_and_counts_as_no_decline(book):
    doc = admitted(book, department="commerce")
    out = act(doc, book, ActionKind.decline, guidance="Loans are the finance office's.")
    after = apply(doc, out)
    # The rules route it as if no department had been chosen: nanshan-finance leads, nanshan-tax co-handles.
    assert (after["lead"], after["cohandlers"], after["rule_id"]) == (LEAD, [COHANDLER], "financing-tax")
    assert after["declined_by"] == [] and after["chosen_declined"] is True
    assert lifecycle_types(out) == [EventType.appeal_declined, EventType.appeal_rerouted]
    assert sorted(assignments(out)) == sorted(
        [(f"dept.{LEAD}.v1", LEAD, "lead"), (f"dept.{COHANDLER}.v1", COHANDLER, "cohandler")]
    )
    # The rules' lead declining is the first decline in a row, not the second: its pointer is followed.
    again = apply(after, act(after, book, ActionKind.decline, guidance="Tax's.", target_department=COHANDLER))
    assert again["declined_by"] == [LEAD] and again["lead"] == COHANDLER


def test_the_chosen_department_accepting_keeps_the_appeal(book):
    doc = admitted(book, department="commerce")
    after = apply(doc, act(doc, book, ActionKind.accept))
    assert after["lead"] == "commerce" and after["status"] == S.accepted.value
