"""The clock fold (services/sla/fold.py), row by row: one lifecycle event on an appeal's stored clocks.

Like `tests/unit/test_sla_rules.py` for `rules.steps`, with the clocks carried out: each
row routes an appeal to `finance` (default calendar, `policy_24h`: scope 6h, response 3wd,
resolution 24h) and folds the row's events in, then names every clock as
(kind, generation, department, state) and the events the last one owed.
"""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.contract import SLA_EVENTS, department_topic
from libs.envelopes import CloudEvent
from libs.events import AppealChanged, SlaClockChanged
from libs.kafka.publishing import make_event
from libs.kinds import AppealStatus, Category, Channel, EventType
from libs.mongo import as_stored
from libs.outbox import Emit
from services.sla import clocks
from services.sla.app import load_book
from services.sla.fold import SlaBook, fold, new_appeal

CONFIG = Path(__file__).resolve().parents[2] / "config"
SH = ZoneInfo("Asia/Shanghai")
APPEAL = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
LEAD, OTHER = "finance", "tax"
E = EventType
# Submitted Mon 2 March 2026 09:40, routed at 10:00.
SUBMITTED = datetime(2026, 3, 2, 9, 40, tzinfo=SH)
T0 = datetime(2026, 3, 2, 10, tzinfo=SH)
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def book() -> SlaBook:
    return load_book(CONFIG)


def lifecycle(type_: str, seq: int, at: datetime, department: str = LEAD, **extra: Any) -> CloudEvent[AppealChanged]:
    data = AppealChanged(
        appeal_id=APPEAL,
        status=AppealStatus.routed,  # sla reads the event's type, never the status
        sequence=seq,
        department=department,
        category=Category.financing,
        channel=Channel.wechat,
        district="futian",
        size_band="micro",
        submitted_at=SUBMITTED,
        sla_profile="policy_24h",
        **extra,
    )
    return make_event("appeals/router", type_, APPEAL, data, traceparent=TRACE, time=at)


def routed(seq: int = 1, at: datetime = T0, department: str = LEAD) -> CloudEvent[AppealChanged]:
    return lifecycle(E.appeal_routed, seq, at, department)


def run(book: SlaBook, *events: CloudEvent[AppealChanged]) -> tuple[dict[str, Any], list[list[Emit]]]:
    """Fold `events` in turn from a new appeal, as service.apply_lifecycle does; the events each one owed."""
    doc, owed = new_appeal(APPEAL), []
    for event in events:
        doc, emits = fold(book, event, doc, event.time)
        owed.append(emits)
    return doc, owed


def clock_states(doc: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    return sorted((c["clock"], c["generation"], c["department"], c["state"]) for c in doc["clocks"])


def the(doc: dict[str, Any], kind: str, generation: int = 1) -> dict[str, Any]:
    return next(c for c in doc["clocks"] if c["clock"] == kind and c["generation"] == generation)


def owed(emits: list[Emit]) -> list[tuple[str, str, str]]:
    reports = [(e.type, SlaClockChanged.model_validate(e.data)) for e in emits]
    return sorted((type_, data.clock, data.department) for type_, data in reports)


# The lead asks to move the resolution clock from Tue 3 March 09:40 to Fri 6 March 18:00.
UNTIL = datetime(2026, 3, 6, 18, tzinfo=SH)
EXTENSION = {"due_at": UNTIL, "previous_due_at": SUBMITTED + timedelta(hours=24), "reason": "an expert's report"}
ROUTED = [("resolution", 1, LEAD, "running"), ("response", 1, LEAD, "running"), ("scope", 1, LEAD, "running")]
H = timedelta(hours=1)
# The lead sends the appeal back (退单) and it is rerouted to the other department, for the office to review.
SENT_BACK = [(E.appeal_declined, {}), (E.appeal_rerouted, {"department": OTHER, "previous_department": LEAD})]


@pytest.mark.parametrize(
    "then, clocks_after, last_owed",
    [
        pytest.param(
            [],
            ROUTED,
            [(E.sla_started, "resolution", LEAD), (E.sla_started, "response", LEAD), (E.sla_started, "scope", LEAD)],
            id="routed starts three clocks",
        ),
        pytest.param(
            [(E.appeal_routed, {})],
            [*ROUTED[:1], ("response", 1, LEAD, "running"), ("response", 2, LEAD, "running")]
            + [("scope", 1, LEAD, "running"), ("scope", 2, LEAD, "running")],
            [(E.sla_started, "response", LEAD), (E.sla_started, "scope", LEAD)],
            id="routed again starts no second resolution",
        ),
        pytest.param(
            [(E.appeal_declined, {})],
            [*ROUTED[:2], ("scope", 1, LEAD, "met")],
            [(E.sla_met, "scope", LEAD)],
            id="decline stops scope",
        ),
        pytest.param(
            [(E.appeal_declined, {"department": OTHER})],
            ROUTED,
            [],
            id="decline by another department stops nothing of the lead",
        ),
        *(
            pytest.param(
                [(type_, {"department": OTHER, "previous_department": LEAD})],
                [("resolution", 1, OTHER, "running"), ("response", 1, LEAD, "cancelled")]
                + [("response", 2, OTHER, "running"), ("scope", 1, LEAD, "met"), ("scope", 2, OTHER, "running")],
                [
                    (E.sla_cancelled, "response", LEAD),
                    (E.sla_met, "scope", LEAD),
                    (E.sla_started, "response", OTHER),
                    (E.sla_started, "scope", OTHER),
                ],
                id=f"{type_.value} moves the clocks",
            )
            for type_ in (E.appeal_transferred, E.appeal_rerouted)
        ),
        pytest.param(
            [(E.appeal_accepted, {})],
            [*ROUTED[:2], ("scope", 1, LEAD, "met")],
            [(E.sla_met, "scope", LEAD)],
            id="accepted meets scope",
        ),
        pytest.param(
            [(E.appeal_accepted, {"note": "We call on Monday."})],
            [ROUTED[0], ("response", 1, LEAD, "met"), ("scope", 1, LEAD, "met")],
            [(E.sla_met, "response", LEAD), (E.sla_met, "scope", LEAD)],
            id="accepted with a plan meets response too",
        ),
        pytest.param(
            [(E.appeal_info_requested, {})],
            [("resolution", 1, LEAD, "paused"), ("response", 1, LEAD, "met"), ("scope", 1, LEAD, "met")],
            [(E.sla_met, "response", LEAD), (E.sla_met, "scope", LEAD), (E.sla_paused, "resolution", LEAD)],
            id="info requested pauses resolution",
        ),
        pytest.param(
            [(E.appeal_info_requested, {}), (E.appeal_info_provided, {})],
            [("resolution", 1, LEAD, "running"), ("response", 1, LEAD, "met"), ("scope", 1, LEAD, "met")],
            [(E.sla_resumed, "resolution", LEAD)],
            id="info provided resumes resolution",
        ),
        pytest.param(
            [(E.appeal_resolved, {})],
            [("resolution", 1, LEAD, "met"), ("response", 1, LEAD, "met"), ("scope", 1, LEAD, "met")],
            [(E.sla_met, kind, LEAD) for kind in ("resolution", "response", "scope")],
            id="resolved meets every clock",
        ),
        *(
            pytest.param(
                [(type_, {})],
                [(kind, 1, LEAD, "cancelled") for kind in ("resolution", "response", "scope")],
                [(E.sla_cancelled, kind, LEAD) for kind in ("resolution", "response", "scope")],
                id=f"{type_.value} cancels every clock",
            )
            for type_ in (E.appeal_closed, E.appeal_rejected)
        ),
        pytest.param(
            [(E.appeal_resolved, {}), (E.appeal_reopened, {})],
            [("resolution", 1, LEAD, "met"), ("resolution", 2, LEAD, "running")]
            + [("response", 1, LEAD, "met"), ("scope", 1, LEAD, "met")],
            [(E.sla_started, "resolution", LEAD)],
            id="reopened starts a new resolution",
        ),
        pytest.param([(E.appeal_cohandler_added, {})], ROUTED, [], id="co-handler retargets response silently"),
        pytest.param([(E.appeal_confirmed, {})], ROUTED, [], id="confirmed changes nothing"),
        *(
            pytest.param([(type_, EXTENSION)], ROUTED, [], id=f"{type_.value} changes nothing")
            for type_ in (E.appeal_extension_requested, E.appeal_extension_rejected)
        ),
        pytest.param(
            [(E.appeal_extension_approved, EXTENSION)],
            ROUTED,
            [(E.sla_extended, "resolution", LEAD)],
            id="extension approved extends resolution",
        ),
        *(
            pytest.param([(type_, extra)], ROUTED, [], id=f"{type_.value} changes nothing")
            for type_, extra in (
                (E.appeal_transfer_requested, {"target_department": OTHER, "reason": "a tax matter"}),
                (E.appeal_transfer_refused, {"target_department": OTHER, "note": "yours"}),
                (E.appeal_decline_confirmed, {"note": "the decline stands"}),
                (E.appeal_urged, {"note": "answer by Friday"}),
            )
        ),
        pytest.param(
            [*SENT_BACK, (E.appeal_decline_overruled, {"previous_department": OTHER, "since": T0})],
            [("resolution", 1, LEAD, "running"), ("response", 1, LEAD, "cancelled")]
            + [("response", 2, OTHER, "cancelled"), ("response", 3, LEAD, "running")]
            + [("scope", 1, LEAD, "met"), ("scope", 2, OTHER, "cancelled")],
            [(E.sla_cancelled, kind, OTHER) for kind in ("response", "scope")] + [(E.sla_started, "response", LEAD)],
            id="decline overruled returns the clocks to the declining department",
        ),
    ],
)
def test_each_lifecycle_event_on_a_routed_appeal(book, then, clocks_after, last_owed):
    events = [routed()] + [lifecycle(t, seq, T0 + seq * H, **extra) for seq, (t, extra) in enumerate(then, 2)]
    doc, emitted = run(book, *events)
    assert clock_states(doc) == clocks_after
    assert owed(emitted[-1]) == last_owed
    assert doc["sequence"] == len(events)


def test_routed_runs_resolution_from_submission_and_the_others_from_routing(book):
    event = routed()
    doc, _ = run(book, event)
    assert the(doc, "resolution")["started_at"] == SUBMITTED and the(doc, "resolution")["due_at"] == SUBMITTED + 24 * H
    assert the(doc, "scope")["started_at"] == T0 and the(doc, "scope")["due_at"] == T0 + 6 * H
    assert the(doc, "response")["target"] == "3wd" and the(doc, "response")["due_at"] == T0 + timedelta(days=3)
    assert doc["generation"] == {"resolution": 1, "scope": 1, "response": 1}
    # The trace travels with the clock to its timer.
    assert {c["traceparent"] for c in doc["clocks"]} == {event.traceparent}


def test_transfer_keeps_the_resolution_clock_and_its_due_time(book):
    doc, _ = run(book, routed())
    due = the(doc, "resolution")["due_at"]
    doc, _ = run(book, routed(), lifecycle(E.appeal_transferred, 2, T0 + H, OTHER, previous_department=LEAD))
    assert the(doc, "resolution")["_id"] == clocks.clock_id(APPEAL, "resolution", 1)
    assert the(doc, "resolution")["due_at"] == due and the(doc, "resolution")["department"] == OTHER


def test_info_provided_pushes_the_resolution_due_time_by_the_pause(book):
    doc, _ = run(
        book,
        routed(),
        lifecycle(E.appeal_info_requested, 2, T0 + H),
        lifecycle(E.appeal_info_provided, 3, T0 + 4 * H),
    )
    assert the(doc, "resolution")["due_at"] == SUBMITTED + 27 * H


def test_cohandler_gives_the_response_clock_the_cohandled_target(book):
    doc, _ = run(book, routed(), lifecycle(E.appeal_cohandler_added, 2, T0 + H, cohandlers=[OTHER]))
    assert the(doc, "response")["target"] == "5wd"
    assert the(doc, "response")["due_at"] == datetime(2026, 3, 9, 10, tzinfo=SH)


def test_a_breached_clock_resolved_late_stays_breached_and_records_its_end(book):
    doc, _ = run(book, routed())
    resolution = the(doc, "resolution")
    calendar = book.calendars.named(resolution["calendar"])
    late = SUBMITTED + 25 * H
    doc["clocks"] = [
        {**c, **clocks.fire(c, calendar, late, book.ladder).set} if c is resolution else c for c in doc["clocks"]
    ]
    assert the(doc, "resolution")["next_urge"] == 2
    doc, emits = fold(book, lifecycle(E.appeal_resolved, 2, late + H), doc, late + H)
    assert the(doc, "resolution")["state"] == "breached" and the(doc, "resolution")["ended_at"] == late + H
    assert "resolution" not in {e.data.clock for e in emits}, "the breach was reported; no met follows"
    assert the(doc, "resolution")["next_fire_at"] is None, "answered: no urging level is owed any more"


@pytest.mark.parametrize("seq", [1, 2], ids=["replayed", "older"])
def test_a_replayed_or_older_sequence_changes_nothing(book, seq):
    doc, _ = run(book, routed(), lifecycle(E.appeal_accepted, 2, T0 + H))
    again, emits = fold(book, lifecycle(E.appeal_resolved, seq, T0 + 2 * H), doc, T0 + 2 * H)
    assert again is doc and emits == []


def test_the_fold_leaves_the_stored_document_as_it_was(book):
    doc, _ = run(book, routed())
    stored = as_stored(doc)
    snapshot = as_stored(stored)
    after, _ = fold(book, lifecycle(E.appeal_resolved, 2, T0 + H), stored, T0 + H)
    assert stored == snapshot and after["clocks"] != stored["clocks"]


def test_a_run_an_earlier_version_started_apart_from_the_sequence_is_not_started_again(book):
    doc, _ = run(book, routed())
    # The clocks are there but the sequence is not: the document an earlier version's adoption leaves.
    adopted = {**doc, "sequence": 0, "generation": {}}
    after, emits = fold(book, routed(), adopted, T0)
    assert clock_states(after) == ROUTED and emits == []


# ---------------------------------------------------------------- extension (延期)


def approved(seq: int, at: datetime, **extra: Any) -> CloudEvent[AppealChanged]:
    return lifecycle(E.appeal_extension_approved, seq, at, **{**EXTENSION, "note": "granted", **extra})


def test_an_approval_moves_the_resolution_clock_to_until_and_nothing_else(book):
    first = routed()
    before, _ = run(book, first)
    doc, emitted = run(book, first, approved(2, T0 + H))
    resolution = the(doc, "resolution")
    assert resolution["due_at"] == UNTIL and resolution["original_due_at"] == SUBMITTED + 24 * H
    assert resolution["next_level"] == 50 and resolution["budget"] == (UNTIL - SUBMITTED).total_seconds()
    assert [c for c in doc["clocks"] if c["clock"] != "resolution"] == [
        c for c in before["clocks"] if c["clock"] != "resolution"
    ]
    (extended,) = emitted[-1]
    assert extended.data.due_at == UNTIL and extended.data.original_due_at == SUBMITTED + 24 * H


def test_a_replayed_approval_changes_nothing(book):
    doc, _ = run(book, routed(), approved(2, T0 + H))
    again, emits = fold(book, approved(2, T0 + 2 * H, due_at=UNTIL + 24 * H), doc, T0 + 2 * H)
    assert again is doc and emits == []


def test_the_extension_moves_with_the_appeal_on_transfer(book):
    doc, _ = run(
        book,
        routed(),
        approved(2, T0 + H),
        lifecycle(E.appeal_transferred, 3, T0 + 2 * H, OTHER, previous_department=LEAD),
    )
    resolution = the(doc, "resolution")
    assert resolution["department"] == OTHER
    assert resolution["due_at"] == UNTIL and resolution["original_due_at"] == SUBMITTED + 24 * H


def test_an_approval_while_the_company_owes_information_leaves_the_paused_clock(book):
    doc, _ = run(book, routed(), lifecycle(E.appeal_info_requested, 2, T0 + H))
    after, emits = fold(book, approved(3, T0 + 2 * H), doc, T0 + 2 * H)
    assert after["clocks"] == doc["clocks"] and emits == [] and after["sequence"] == 3


def test_an_approval_after_a_reopening_extends_the_new_run_only(book):
    doc, _ = run(
        book,
        routed(),
        lifecycle(E.appeal_resolved, 2, T0 + H),
        lifecycle(E.appeal_reopened, 3, T0 + 2 * H),
        approved(4, T0 + 3 * H),
    )
    assert "original_due_at" not in the(doc, "resolution", 1)
    assert the(doc, "resolution", 2)["due_at"] == UNTIL
    assert the(doc, "resolution", 2)["original_due_at"] == T0 + 26 * H


@pytest.mark.parametrize("due_at", [None, UNTIL.replace(tzinfo=None)], ids=["no due time", "no zone"])
def test_an_approval_without_a_zoned_due_time_moves_nothing_and_says_so(book, caplog, due_at):
    doc, _ = run(book, routed())
    after, emits = fold(book, approved(2, T0 + H, due_at=due_at), doc, T0 + H)
    assert after["clocks"] == doc["clocks"] and emits == []
    assert [r.levelname for r in caplog.records if r.name == "services.sla.fold"] == ["WARNING"]


# ---------------------------------------------------------------- an overruled send-back (退单)


def sent_back(book: SlaBook, *later: CloudEvent[AppealChanged]) -> tuple[dict[str, Any], list[list[Emit]]]:
    """Routed to the lead at T0, declined and rerouted to the other department at T0 + 1 h, then `later`."""
    return run(
        book,
        routed(),
        lifecycle(E.appeal_declined, 2, T0 + H),
        lifecycle(E.appeal_rerouted, 3, T0 + H, OTHER, previous_department=LEAD),
        *later,
    )


def overruled(seq: int, at: datetime, **extra: Any) -> CloudEvent[AppealChanged]:
    return lifecycle(E.appeal_decline_overruled, seq, at, LEAD, previous_department=OTHER, note="yours", **extra)


def test_an_overrule_runs_the_returning_departments_response_from_its_first_assignment(book):
    doc, emitted = sent_back(book, overruled(4, T0 + 3 * H, since=T0))
    response = the(doc, "response", 3)
    # 3wd from Mon 2 March 10:00, as when it was first assigned: due Thu 5 March 10:00, not Thu 13:00.
    assert response["started_at"] == T0 and response["due_at"] == datetime(2026, 3, 5, 10, tzinfo=SH)
    assert response["department"] == LEAD and response["target"] == "3wd"
    (started,) = [e for e in emitted[-1] if e.type == E.sla_started]
    assert started.data.started_at == T0 and started.data.due_at == response["due_at"]
    # Its scope clock stays met at its decline: no new run.
    assert doc["generation"] == {"resolution": 1, "scope": 2, "response": 3}
    assert the(doc, "scope")["state"] == "met" and the(doc, "scope")["ended_at"] == T0 + H


def test_an_overrule_without_since_runs_the_response_from_the_overrule(book):
    doc, _ = sent_back(book, overruled(4, T0 + 3 * H))
    assert the(doc, "response", 3)["started_at"] == T0 + 3 * H


def test_an_overrule_gives_the_resolution_clock_back_with_its_due_time(book):
    before = the(sent_back(book)[0], "resolution")
    doc, _ = sent_back(book, overruled(4, T0 + 3 * H, since=T0))
    after = the(doc, "resolution")
    assert before["department"] == OTHER and after["department"] == LEAD
    assert after["_id"] == before["_id"] and after["due_at"] == before["due_at"] == SUBMITTED + 24 * H


def test_an_overrule_leaves_what_the_withdrawn_department_answered_and_cancels_the_rest(book):
    # It accepted (scope met) before the office overruled: the met clock stays met, the response is cancelled.
    doc, _ = sent_back(book, lifecycle(E.appeal_accepted, 4, T0 + 2 * H, OTHER), overruled(5, T0 + 3 * H, since=T0))
    assert the(doc, "scope", 2)["state"] == "met" and the(doc, "response", 2)["state"] == "cancelled"


def test_a_withdrawn_departments_breach_stands_and_ends_at_the_overrule(book):
    doc, _ = sent_back(book)
    scope = the(doc, "scope", 2)  # the other department's 6 h, due T0 + 7 h
    late = T0 + 8 * H
    calendar = book.calendars.named(scope["calendar"])
    doc["clocks"] = [
        {**c, **clocks.fire(c, calendar, late, book.ladder).set} if c is scope else c for c in doc["clocks"]
    ]
    assert the(doc, "scope", 2)["next_urge"] == 2, "breached, it climbs the urging ladder"
    doc, emits = fold(book, overruled(4, late + H, since=T0), doc, late + H)
    breached = the(doc, "scope", 2)
    assert breached["state"] == "breached" and breached["ended_at"] == late + H
    assert breached["next_fire_at"] is None and breached["next_urge"] is None, "withdrawn: it is urged no more"
    assert owed(emits) == [(E.sla_cancelled, "response", OTHER), (E.sla_started, "response", LEAD)]


# ---------------------------------------------------------------- co-handlers' contribution clocks

# Two co-handlers: `tax` on the default calendar, `nanshan-tax` on Nanshan's (08:30-12:00, 13:30-18:00).
CO = "nanshan-tax"
LEAD_RUNNING = [("resolution", 1, LEAD, "running"), ("response", 1, LEAD, "running"), ("scope", 1, LEAD, "running")]
# 3wd from Mon 2 March 10:00 on either calendar: Thu 5 March 10:00.
CONTRIBUTION_DUE = datetime(2026, 3, 5, 10, tzinfo=SH)


def cohandled(*later: CloudEvent[AppealChanged], cohandlers: tuple[str, ...] = (OTHER, CO)) -> list[Any]:
    """Routed to the lead with `cohandlers` at T0, then `later`: the events, in order."""
    return [lifecycle(E.appeal_routed, 1, T0, cohandlers=list(cohandlers)), *later]


def contributed(seq: int, at: datetime, by: str) -> CloudEvent[AppealChanged]:
    return lifecycle(E.appeal_contributed, seq, at, actor=by, note="our part", cohandlers=[OTHER, CO])


def contributions(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Each co-handler's contribution clocks' states, oldest first."""
    found: dict[str, list[str]] = {}
    for c in sorted(doc["clocks"], key=lambda c: c["generation"]):
        if c["clock"] == "contribution":
            found.setdefault(c["department"], []).append(c["state"])
    return found


def fired(book: SlaBook, doc: dict[str, Any], kind: str, department: str, now: datetime) -> list[Emit]:
    """Fire the thresholds and urging levels of `department`'s `kind` clock reached by `now`, as the scheduler
    does (the document changed in place); the events owed."""
    clock = next(c for c in doc["clocks"] if c["clock"] == kind and c["department"] == department)
    change = clocks.fire(clock, book.calendars.named(clock["calendar"]), now, book.ladder)
    doc["clocks"] = [{**c, **change.set} if c is clock else c for c in doc["clocks"]]
    return change.emits


def test_routed_with_two_cohandlers_starts_one_contribution_clock_each_on_its_own_calendar(book):
    doc, emitted = run(book, *cohandled())
    assert clock_states(doc) == [("contribution", 1, OTHER, "running"), ("contribution", 2, CO, "running")] + [
        *LEAD_RUNNING
    ]
    tax, nanshan = the(doc, "contribution", 1), the(doc, "contribution", 2)
    assert {tax["_id"], nanshan["_id"]} == {clocks.clock_id(APPEAL, "contribution", g) for g in (1, 2)}
    assert (tax["calendar"], nanshan["calendar"]) == ("default", "nanshan")
    assert tax["target"] == nanshan["target"] == "3wd", "config/supervision.yaml, whatever the profile"
    assert tax["started_at"] == nanshan["started_at"] == T0
    assert tax["due_at"] == nanshan["due_at"] == CONTRIBUTION_DUE
    # The response clock of a co-handled appeal has the co-handled target; the contributions keep theirs.
    assert the(doc, "response")["target"] == "5wd"
    assert ("sla.started.v1", "contribution", OTHER) in owed(emitted[0])
    assert ("sla.started.v1", "contribution", CO) in owed(emitted[0])
    assert doc["generation"]["contribution"] == 2


def test_a_reroute_restarts_no_contribution_clock(book):
    # The lead declines and the appeal goes to `coord` with the same co-handlers; one of them had contributed.
    doc, emitted = run(
        book,
        *cohandled(
            contributed(2, T0 + H, OTHER),
            lifecycle(E.appeal_declined, 3, T0 + 2 * H),
            lifecycle(E.appeal_rerouted, 4, T0 + 2 * H, "coord", previous_department=LEAD, cohandlers=[OTHER, CO]),
        ),
    )
    assert contributions(doc) == {OTHER: ["met"], CO: ["running"]}
    assert "contribution" not in {e.data.clock for e in emitted[-1]}


def test_an_added_cohandler_gets_its_own_clock_from_joining_and_the_others_keep_theirs(book):
    added = lifecycle(E.appeal_cohandler_added, 2, T0 + 2 * H, actor=LEAD, cohandlers=[OTHER, CO])
    doc, emitted = run(book, *cohandled(added, cohandlers=(OTHER,)))
    assert contributions(doc) == {OTHER: ["running"], CO: ["running"]}
    joined = the(doc, "contribution", 2)
    assert joined["department"] == CO and joined["started_at"] == T0 + 2 * H
    # 3wd on Nanshan's calendar from Mon 12:00: Mon 13:30-18:00, Tue, Wed, then Thu 08:30-12:00.
    assert joined["due_at"] == datetime(2026, 3, 5, 12, tzinfo=SH)
    assert the(doc, "contribution", 1)["due_at"] == CONTRIBUTION_DUE
    assert owed(emitted[-1]) == [(E.sla_started, "contribution", CO)], "the response is retargeted silently"


def test_retargeting_the_response_leaves_the_contribution_clocks_alone(book):
    doc, _ = run(book, routed())
    doc, _ = fold(book, lifecycle(E.appeal_cohandler_added, 2, T0 + H, cohandlers=[OTHER]), doc, T0 + H)
    assert the(doc, "response")["target"] == "5wd" and the(doc, "contribution")["target"] == "3wd"
    # A second co-handler retargets the response again (already 5wd) and changes the first's clock in nothing.
    before = the(doc, "contribution")
    doc, _ = fold(book, lifecycle(E.appeal_cohandler_added, 3, T0 + 2 * H, cohandlers=[OTHER, CO]), doc, T0 + 2 * H)
    assert the(doc, "contribution") == before


def test_a_contribution_meets_only_the_contributors_clock_and_a_later_one_changes_nothing(book):
    doc, emitted = run(book, *cohandled(contributed(2, T0 + H, CO), contributed(3, T0 + 2 * H, CO)))
    assert contributions(doc) == {OTHER: ["running"], CO: ["met"]}
    assert [c for c in clock_states(doc) if c[0] != "contribution"] == LEAD_RUNNING
    assert owed(emitted[1]) == [(E.sla_met, "contribution", CO)]
    assert emitted[2] == [] and doc["sequence"] == 3
    assert the(doc, "contribution", 2)["ended_at"] == T0 + H


def test_resolving_leaves_the_contribution_clocks_running(book):
    doc, emitted = run(book, *cohandled(contributed(2, T0 + H, OTHER), lifecycle(E.appeal_resolved, 3, T0 + 2 * H)))
    assert [c for c in clock_states(doc) if c[0] != "contribution"] == [
        ("resolution", 1, LEAD, "met"),
        ("response", 1, LEAD, "met"),
        ("scope", 1, LEAD, "met"),
    ]
    assert contributions(doc) == {OTHER: ["met"], CO: ["running"]}
    assert "contribution" not in {e.data.clock for e in emitted[-1]}
    # A part that comes after the resolution still meets its clock.
    doc, emits = fold(book, contributed(4, T0 + 3 * H, CO), doc, T0 + 3 * H)
    assert contributions(doc) == {OTHER: ["met"], CO: ["met"]} and owed(emits) == [(E.sla_met, "contribution", CO)]


def test_a_missing_contribution_breaches_against_the_cohandler_and_climbs_the_ladder_on_its_topic(book):
    doc, _ = run(book, *cohandled(lifecycle(E.appeal_resolved, 2, T0 + H)))
    emits = fired(book, doc, "contribution", CO, CONTRIBUTION_DUE)
    assert sorted((e.topic, e.type, e.data.level) for e in emits) == sorted(
        (topic, type_, level)
        for topic in (SLA_EVENTS, department_topic(CO))
        for type_, level in ((E.sla_warning, 50), (E.sla_warning, 80), (E.sla_breached, 100))
    )
    assert {e.data.department for e in emits} == {CO} and {e.data.clock for e in emits} == {"contribution"}
    assert contributions(doc)[CO] == ["breached"] and the(doc, "contribution", 2)["next_urge"] == 2
    # Level 2 (催办) one working day after the breach, on Nanshan's calendar, to the co-handler's topic.
    urged = fired(book, doc, "contribution", CO, datetime(2026, 3, 6, 10, tzinfo=SH))
    assert sorted((e.topic, e.type, e.data.urge_level, e.data.department) for e in urged) == [
        (department_topic(CO), E.sla_urged, 2, CO),
        (SLA_EVENTS, E.sla_urged, 2, CO),
    ]
    # The late part answers it: the breach stands, urged no more; the lead's clocks were met at the resolution.
    late = datetime(2026, 3, 6, 11, tzinfo=SH)
    doc, emits = fold(book, contributed(3, late, CO), doc, late)
    answered = the(doc, "contribution", 2)
    assert answered["state"] == "breached" and answered["ended_at"] and answered["next_fire_at"] is None
    assert emits == [], "the breach was reported; no met follows"
    assert {c[3] for c in clock_states(doc) if c[0] != "contribution"} == {"met"}


def test_closing_cancels_a_contribution_not_yet_due_and_a_breach_stands(book):
    doc, _ = run(book, *cohandled(lifecycle(E.appeal_resolved, 2, T0 + H)))
    fired(book, doc, "contribution", OTHER, CONTRIBUTION_DUE)  # `tax` breaches Thu 10:00; Nanshan's is fired later
    doc, emits = fold(book, lifecycle(E.appeal_closed, 3, CONTRIBUTION_DUE - H), doc, CONTRIBUTION_DUE - H)
    assert contributions(doc) == {OTHER: ["breached"], CO: ["cancelled"]}
    assert owed(emits) == [(E.sla_cancelled, "contribution", CO)]
    assert the(doc, "contribution", 1)["ended_at"] == CONTRIBUTION_DUE - H


@pytest.mark.parametrize("type_", [E.appeal_transferred, E.appeal_rerouted])
def test_a_cohandler_made_the_lead_owes_no_contribution_any_more(book, type_):
    moved = lifecycle(type_, 2, T0 + H, OTHER, previous_department=LEAD, cohandlers=[CO])
    doc, emitted = run(book, *cohandled(moved))
    assert contributions(doc) == {OTHER: ["cancelled"], CO: ["running"]}
    assert (E.sla_cancelled, "contribution", OTHER) in owed(emitted[-1])
    assert ("scope", 2, OTHER, "running") in clock_states(doc), "it runs the lead's clocks now"


def test_a_cohandler_the_overrule_makes_the_lead_owes_no_contribution_any_more(book):
    # The lead sends the appeal back to `tax`, which adds the lead as a co-handler; the office overrules the
    # send-back: the declining department leads again and its contribution clock no longer applies.
    doc, emitted = run(
        book,
        routed(),
        lifecycle(E.appeal_declined, 2, T0 + H),
        lifecycle(E.appeal_rerouted, 3, T0 + H, OTHER, previous_department=LEAD),
        lifecycle(E.appeal_cohandler_added, 4, T0 + 2 * H, OTHER, cohandlers=[LEAD]),
        overruled(5, T0 + 3 * H, since=T0),
    )
    assert contributions(doc) == {LEAD: ["cancelled"]}
    assert (E.sla_cancelled, "contribution", LEAD) in owed(emitted[-1])


def test_a_department_that_left_and_joins_again_gets_a_new_clock(book):
    # `tax` becomes the lead (its clock cancelled), hands the appeal on to `coord`, and is added back.
    doc, _ = run(
        book,
        *cohandled(
            lifecycle(E.appeal_transferred, 2, T0 + H, OTHER, previous_department=LEAD, cohandlers=[CO]),
            lifecycle(E.appeal_transferred, 3, T0 + 2 * H, "coord", previous_department=OTHER, cohandlers=[CO]),
            lifecycle(E.appeal_cohandler_added, 4, T0 + 3 * H, "coord", cohandlers=[CO, OTHER]),
        ),
    )
    assert contributions(doc) == {OTHER: ["cancelled", "running"], CO: ["running"]}
    assert the(doc, "contribution", 3)["started_at"] == T0 + 3 * H


def test_reopening_leaves_the_contribution_clocks_alone(book):
    doc, emitted = run(
        book, *cohandled(lifecycle(E.appeal_resolved, 2, T0 + H), lifecycle(E.appeal_reopened, 3, T0 + 2 * H))
    )
    assert contributions(doc) == {OTHER: ["running"], CO: ["running"]}
    assert owed(emitted[-1]) == [(E.sla_started, "resolution", LEAD)]
