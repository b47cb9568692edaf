"""Which lifecycle event starts, pauses, resumes, meets, cancels or extends which clock (docs/domain.md, "SLA clocks"
and "Supervision").

`steps(event)` is the whole table: a pure function from one lifecycle event to the
ordered steps it takes on the appeal's clocks. `services/sla/fold.py` carries the
steps out on the stored clocks with the functions of `clocks.py`.

Each appeal has three clocks of its lead: `scope` (has the department said whether the
matter is its own), `response` (a substantive answer) and `resolution` (the whole appeal);
and one `contribution` clock per co-handler (its part of the answer, to the lead), held
against the co-handler, started when it joins and met when it contributes.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from libs.events import AppealChanged
from libs.kinds import ClockKind, EventType

K = ClockKind
E = EventType

Verb = Literal["stop", "cancel", "pause", "resume", "reassign", "retarget"]
# When a new run starts counting: at the event, at the appeal's submission (the resolution clock's first run), or
# at the department's first assignment (`since`, an overruled send-back's return; the event's time without it).
Origin = Literal["event", "submission", "assignment"]


@dataclass(frozen=True)
class Start:
    """Start a new run of `kind` for `department`, counting from `origin`.

    `only_if_none_alive`: not while a run of `kind` is alive, whoever's (the resolution clock follows the lead).
    `on_joining`: not when `department` already has a run of `kind` that was not cancelled (alive, met or
    breached): a co-handler's contribution clock starts when it joins and never again while it co-handles,
    however often the appeal moves; one that left (its clock cancelled as it became the lead) and joins again
    starts anew.
    """

    kind: ClockKind
    department: str
    origin: Origin = "event"
    only_if_none_alive: bool = False
    on_joining: bool = False
    # A redo's resolution clock has the redo's target (重办), not the profile's.
    redo: bool = False


@dataclass(frozen=True)
class Apply:
    """Apply `verb` to the live clocks of `kinds` (all when None), of `department` only when given.

    `reassign` moves the clocks to `to`; `retarget` gives them the target for co-handled appeals.
    """

    verb: Verb
    kinds: tuple[ClockKind, ...] | None = None
    department: str | None = None
    to: str | None = None


@dataclass(frozen=True)
class Extend:
    """Move the due time of the current run of `kind` to `until` (an approved extension, 延期)."""

    kind: ClockKind
    until: datetime | None


Step = Start | Apply | Extend

# The lead's clocks: the answer to the company. A co-handler's `contribution` is its part, to the lead.
LEADS = (K.scope, K.response, K.resolution)


def joining(data: AppealChanged) -> list[Step]:
    """A contribution clock for each co-handler the event names that has none yet, on its own calendar.

    The event names every co-handler after it; the fold starts only those joining now (`Start.on_joining`).
    """
    cohandlers = [co for co in dict.fromkeys(data.cohandlers) if co != data.department]
    return [Start(K.contribution, co, on_joining=True) for co in cohandlers]


def steps(event_type: str, data: AppealChanged) -> list[Step]:
    """The steps one lifecycle event takes on its appeal's clocks, in order; none for the others."""
    dept = data.department or ""
    if event_type == E.appeal_routed:
        # The resolution clock runs from submission, and only once however often the appeal is routed.
        return [
            Start(K.resolution, dept, origin="submission", only_if_none_alive=True),
            Start(K.scope, dept),
            Start(K.response, dept),
            *joining(data),
        ]
    if event_type == E.appeal_declined:
        return [Apply("stop", (K.scope,), department=dept)]
    if event_type in (E.appeal_rerouted, E.appeal_transferred):
        # A co-handler made the lead owes no contribution any more: its clock is cancelled (a breach stands).
        # A chosen department's decline routes by the rules, which may bring co-handlers: they join now.
        old = data.previous_department
        return [
            Apply("stop", (K.scope,), department=old),
            Apply("cancel", (K.response,), department=old),
            Apply("reassign", (K.resolution,), to=dept),
            Apply("cancel", (K.contribution,), department=dept),
            Start(K.scope, dept),
            Start(K.response, dept),
            *joining(data),
        ]
    if event_type == E.appeal_decline_overruled:
        # The office returns the appeal to the department that declined it (`dept`, the lead again) and withdraws
        # the one it went to. The withdrawn department's clocks no longer apply and never count against it; one it
        # had already let breach keeps that breach, answered now (cancel records only its end, clocks.cancel), and
        # is urged no more. The returning department's scope clock stays met as its decline stopped it; its
        # response clock runs again from its first assignment, as if the send-back had not happened.
        withdrawn = data.previous_department
        return [
            Apply("cancel", (K.scope, K.response), department=withdrawn),
            Apply("reassign", (K.resolution,), to=dept),
            Apply("cancel", (K.contribution,), department=dept),
            Start(K.response, dept, origin="assignment"),
            *joining(data),
        ]
    if event_type == E.appeal_accepted:
        # Accepted with a plan (a note) is a substantive answer too.
        answered: list[Step] = [Apply("stop", (K.scope,))]
        return answered + [Apply("stop", (K.response,))] if data.note else answered
    if event_type == E.appeal_info_requested:
        return [Apply("stop", (K.scope, K.response)), Apply("pause", (K.resolution,))]
    if event_type == E.appeal_info_provided:
        return [Apply("resume", (K.resolution,))]
    if event_type == E.appeal_resolved:
        # The lead may resolve before every co-handler contributed: their clocks run on, and a missing
        # contribution breaches against the co-handler, never the lead.
        return [Apply("stop", LEADS)]
    if event_type == E.appeal_reopened:
        # A redo ordered by the office or by the company's "not resolved" runs the redo's target; a reopen from
        # before redos were counted ran the profile's.
        return [Start(K.resolution, dept, redo=bool(data.redo))]
    if event_type in (E.appeal_closed, E.appeal_rejected):
        # What is left no longer applies: a contribution not yet due is cancelled, not counted; a breach stands.
        return [Apply("cancel")]
    if event_type == E.appeal_cohandler_added:
        return [Apply("retarget", (K.response,)), *joining(data)]
    if event_type == E.appeal_contributed:
        # The contributing co-handler (the actor; the event's department is the lead) meets its clock; a later
        # contribution finds it met and changes nothing.
        return [Apply("stop", (K.contribution,), department=data.actor)] if data.actor else []
    if event_type == E.appeal_extension_approved:
        # Asking and refusing change no clock: only the office's approval moves the due time.
        return [Extend(K.resolution, data.due_at)]
    # The others move no deadline: the company's confirmation, an extension asked or refused, a transfer asked or
    # refused (one granted is an ordinary appeal.transferred.v1), a send-back the office lets stand, and the office
    # urging by hand (the ladder's own levels are sla's, fired from the breached clock).
    return []
