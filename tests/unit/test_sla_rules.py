"""The clock table (services/sla/rules.py), row by row: what each lifecycle event does to which clock."""

from datetime import timedelta

import pytest

from libs.events import DATA_MODELS, AppealChanged
from libs.kinds import AppealStatus, ClockKind, EventType
from services.sla.rules import Apply, Extend, Start, steps
from tests.unit.test_stats import T0, changed

K = ClockKind
E = EventType
UNTIL = T0 + timedelta(days=3)


def event(type_: EventType, **extra):
    return changed(type_, AppealStatus.routed, 2, T0, department="futian-tax", **extra).data


@pytest.mark.parametrize(
    "type_, extra, expected",
    [
        (
            E.appeal_routed,
            {},
            [
                Start(K.resolution, "futian-tax", origin="submission", only_if_none_alive=True),
                Start(K.scope, "futian-tax"),
                Start(K.response, "futian-tax"),
            ],
        ),
        (
            E.appeal_routed,
            {"cohandlers": ["customs", "nanshan-tax"]},
            [
                Start(K.resolution, "futian-tax", origin="submission", only_if_none_alive=True),
                Start(K.scope, "futian-tax"),
                Start(K.response, "futian-tax"),
                Start(K.contribution, "customs", on_joining=True),
                Start(K.contribution, "nanshan-tax", on_joining=True),
            ],
        ),
        (E.appeal_declined, {}, [Apply("stop", (K.scope,), department="futian-tax")]),
        (
            E.appeal_rerouted,
            {"previous_department": "nanshan-tax"},
            [
                Apply("stop", (K.scope,), department="nanshan-tax"),
                Apply("cancel", (K.response,), department="nanshan-tax"),
                Apply("reassign", (K.resolution,), to="futian-tax"),
                Apply("cancel", (K.contribution,), department="futian-tax"),
                Start(K.scope, "futian-tax"),
                Start(K.response, "futian-tax"),
            ],
        ),
        (
            E.appeal_transferred,
            {"previous_department": "nanshan-tax"},
            [
                Apply("stop", (K.scope,), department="nanshan-tax"),
                Apply("cancel", (K.response,), department="nanshan-tax"),
                Apply("reassign", (K.resolution,), to="futian-tax"),
                Apply("cancel", (K.contribution,), department="futian-tax"),
                Start(K.scope, "futian-tax"),
                Start(K.response, "futian-tax"),
            ],
        ),
        (E.appeal_accepted, {}, [Apply("stop", (K.scope,))]),
        (
            E.appeal_accepted,
            {"note": "We will call on Monday."},
            [Apply("stop", (K.scope,)), Apply("stop", (K.response,))],
        ),
        (E.appeal_info_requested, {}, [Apply("stop", (K.scope, K.response)), Apply("pause", (K.resolution,))]),
        (E.appeal_info_provided, {}, [Apply("resume", (K.resolution,))]),
        (E.appeal_resolved, {}, [Apply("stop", (K.scope, K.response, K.resolution))]),
        (E.appeal_reopened, {}, [Start(K.resolution, "futian-tax")]),
        # A redo (重办) runs the redo's target, config/assessment.yaml.
        (E.appeal_reopened, {"redo": True}, [Start(K.resolution, "futian-tax", redo=True)]),
        (E.appeal_closed, {}, [Apply("cancel")]),
        (E.appeal_rejected, {}, [Apply("cancel")]),
        (E.appeal_cohandler_added, {}, [Apply("retarget", (K.response,))]),
        (
            E.appeal_cohandler_added,
            {"cohandlers": ["customs", "nanshan-tax"]},
            [
                Apply("retarget", (K.response,)),
                Start(K.contribution, "customs", on_joining=True),
                Start(K.contribution, "nanshan-tax", on_joining=True),
            ],
        ),
        (
            E.appeal_contributed,
            {"actor": "customs", "note": "the duty rate", "attachments": ["https://customs.example/rate.pdf"]},
            [Apply("stop", (K.contribution,), department="customs")],
        ),
        (E.appeal_contributed, {"note": "whose?"}, []),
        (E.appeal_confirmed, {}, []),
        (E.appeal_extension_requested, {"due_at": UNTIL, "previous_due_at": T0}, []),
        (E.appeal_extension_approved, {"due_at": UNTIL, "previous_due_at": T0}, [Extend(K.resolution, UNTIL)]),
        (E.appeal_extension_rejected, {"due_at": UNTIL, "previous_due_at": T0, "note": "not needed"}, []),
        (E.appeal_transfer_requested, {"target_department": "customs", "reason": "a customs valuation"}, []),
        (E.appeal_transfer_refused, {"target_department": "customs", "note": "yours"}, []),
        (E.appeal_decline_confirmed, {"note": "the decline stands"}, []),
        (E.appeal_urged, {"note": "answer by Friday"}, []),
        (
            E.appeal_decline_overruled,
            {"previous_department": "customs", "since": T0 - timedelta(hours=5)},
            [
                Apply("cancel", (K.scope, K.response), department="customs"),
                Apply("reassign", (K.resolution,), to="futian-tax"),
                Apply("cancel", (K.contribution,), department="futian-tax"),
                Start(K.response, "futian-tax", origin="assignment"),
            ],
        ),
        (
            # A co-handler made the lead: its contribution clock is cancelled, the others' left as they are.
            E.appeal_transferred,
            {"previous_department": "nanshan-tax", "cohandlers": ["customs"]},
            [
                Apply("stop", (K.scope,), department="nanshan-tax"),
                Apply("cancel", (K.response,), department="nanshan-tax"),
                Apply("reassign", (K.resolution,), to="futian-tax"),
                Apply("cancel", (K.contribution,), department="futian-tax"),
                Start(K.scope, "futian-tax"),
                Start(K.response, "futian-tax"),
                Start(K.contribution, "customs", on_joining=True),
            ],
        ),
        (
            # A co-handler named twice, or the lead among them, gets no second clock nor the lead one.
            E.appeal_cohandler_added,
            {"cohandlers": ["customs", "futian-tax", "customs"]},
            [Apply("retarget", (K.response,)), Start(K.contribution, "customs", on_joining=True)],
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_lifecycle_event_takes_its_steps_on_the_clocks(type_, extra, expected):
    assert steps(type_, event(type_, **extra)) == expected


def test_only_the_events_that_move_no_deadline_leave_the_clocks_alone():
    # A lifecycle event new to the contract fails here until someone says what it does to the clocks.
    lifecycle = [t for t, model in DATA_MODELS.items() if model is AppealChanged]
    assert [t for t in lifecycle if not steps(t, event(t, actor="customs"))] == [
        E.appeal_confirmed,  # the company's confirmation: the clocks stopped at the resolution
        E.appeal_extension_requested,  # only the office's approval moves the due time
        E.appeal_extension_rejected,
        E.appeal_transfer_requested,  # asked: the lead keeps the appeal and its clocks until the office grants it
        E.appeal_transfer_refused,
        E.appeal_decline_confirmed,  # the send-back stands: the reroute already moved the clocks
        E.appeal_urged,  # urging by hand is counted, and presses the lead's clocks without changing them
        E.appeal_visit_due,  # a return visit follows a resolution: the lead's clocks stopped there
        E.appeal_visited,  # an attempt; its redo or close is an event of its own
    ]
