"""What the coordinating office's supervision counts (docs/domain.md, "Supervision"), as plain functions.

Supervision is counted by acts (`FIGURES`): each act is kept on its appeal's
document (the urging ladder's levels on their clock's) and counts once, in its own
hour, against the department it concerns, in the hour buckets and in the all-time
totals behind `appeals_supervision_total`. A co-handler's contribution clock is a
clock like the lead's, counted by its outcome in the hour it started; its end, met
or breached, also adds to the all-time totals behind the contribution figures.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from libs.events import AppealChanged
from libs.kinds import ClockKind, EventType


def _lead(doc: dict[str, Any], data: AppealChanged) -> str | None:
    return data.department


def _sent_back(doc: dict[str, Any], data: AppealChanged) -> str | None:
    return doc.get("sent_back")


class Act(NamedTuple):
    """One kind of supervision act: the figure it adds to, and who it is counted against (the appeal's document
    as it was before the event, and the event's data)."""

    figure: str
    concerns: Callable[[dict[str, Any], AppealChanged], str | None] = _lead


# The coordinating office's supervision (docs/domain.md, "Supervision") recorded by lifecycle events that change
# neither the lead nor an assignment: each counts against the lead that asked or was acted on, which the event names
# in `department`. A confirmed send-back names the appeal's lead now, so it counts against the department that sent
# the appeal back, as the appeal's last send-back recorded it.
SUPERVISION: dict[str, Act] = {
    EventType.appeal_extension_requested: Act("extensions_requested"),
    EventType.appeal_extension_approved: Act("extensions_approved"),
    EventType.appeal_extension_rejected: Act("extensions_rejected"),
    EventType.appeal_transfer_requested: Act("transfers_requested"),
    EventType.appeal_transfer_refused: Act("transfers_refused"),
    EventType.appeal_decline_confirmed: Act("send_backs_confirmed", _sent_back),
    EventType.appeal_urged: Act("urgings_by_hand"),
}
# The urging ladder's levels (sla.urged.v1's urge_level; level 1 is the breach itself), once per clock and level.
URGING_LEVELS = (1, 2, 3)
# A co-handler's contribution clock (协办), by how it ended: met (its part came in time) or breached (late or
# missing); a cancelled one is neither. The department figures read them from the clocks started in the period
# (`clock|<co-handler>|contribution|<outcome>`); these names are their all-time totals, behind the metric.
CONTRIBUTION = ClockKind.contribution.value
CONTRIBUTION_FIGURES = {"met": "contributions_on_time", "breached": "contributions_late"}
# Every supervision figure, by subject: the department figures, the daily report and the metric's `figure` label.
# Besides `SUPERVISION`'s, a send-back or a chosen department's decline (appeal.declined.v1 by `chosen`), an
# overruled send-back and a granted transfer are acts of events that also move the appeal (`moving_acts`), the
# urging levels are kept on their clocks, and the contributions are the outcomes of the co-handlers' clocks.
FIGURE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("extensions", ("extensions_requested", "extensions_approved", "extensions_rejected")),
    ("send_backs", ("send_backs", "send_backs_overruled", "send_backs_confirmed", "chosen_declines")),
    ("transfers", ("transfers_requested", "transfers_granted", "transfers_refused")),
    ("urgings", ("urgings_by_hand", *(f"urgings_level_{level}" for level in URGING_LEVELS))),
    ("contributions", tuple(CONTRIBUTION_FIGURES.values())),
)
FIGURES: tuple[str, ...] = tuple(figure for _, figures in FIGURE_GROUPS for figure in figures)


def moving_acts(doc: dict[str, Any], type_: str, data: AppealChanged) -> list[tuple[str, str | None]]:
    """The supervision acts of a lifecycle event that also moves the appeal, as (figure, department counted against).

    A decline is a send-back (退单) of the department that declined (`department`; `target_department` is where
    the appeal went) unless the company had chosen that department (`chosen`): then it is routing's first step,
    counted apart. A decline without `chosen` was written before router marked a chosen department's decline on
    its event, and counts as a send-back. An overrule gives the appeal back to the department that declined
    (`department`), whose send-back still counts. A transfer the lead did not make itself, while its request to
    the office was pending, is the office granting it (by grant_transfer, or moving the appeal as the city's
    dispatcher): it counts against the department that asked (`previous_department`), and is an assignment of the
    new lead like any. The office moving an appeal nobody asked it to move grants nothing.
    """
    if type_ == EventType.appeal_declined:
        return [("chosen_declines" if data.chosen else "send_backs", data.department)]
    if type_ == EventType.appeal_decline_overruled:
        return [("send_backs_overruled", data.department)]
    if (
        type_ == EventType.appeal_transferred
        and data.actor
        and data.previous_department
        and data.actor != data.previous_department
        and _transfer_pending(doc, data.previous_department)
    ):
        return [("transfers_granted", data.previous_department)]
    return []


_TRANSFER_ANSWERS = ("transfers_requested", "transfers_refused", "transfers_granted")


def _transfer_pending(doc: dict[str, Any], asker: str) -> bool:
    """`asker` leads the appeal and asked the office for a transfer, neither refused nor granted yet: its latest
    request is later than its latest answer, and the appeal has not moved since (the lead's assignment predates
    the request). Read from the acts the document keeps, so a request folded by an earlier version counts too."""
    last = next((a for a in reversed(doc.get("acts", [])) if a["d"] == asker and a["f"] in _TRANSFER_ANSWERS), None)
    assignments = doc.get("assignments", [])
    return (
        last is not None
        and last["f"] == "transfers_requested"
        and bool(assignments)
        and assignments[-1]["d"] == asker
        and assignments[-1]["at"] <= last["at"]
    )


def fold_act(doc: dict[str, Any], act: Act, data: AppealChanged, at: datetime) -> None:
    # Kept one per event (`record` folds an event once). An act never changes who leads: an extension decided after
    # a transfer names the department that asked, which must not count as a new assignment or become the lead.
    add_act(doc, act.figure, act.concerns(doc, data), at)
    if data.sequence > doc.get("sequence", 0):
        doc.update(sequence=data.sequence, status=data.status.value)


def add_act(doc: dict[str, Any], figure: str, concerned: str | None, at: datetime) -> None:
    if concerned:
        doc.setdefault("acts", []).append({"f": figure, "d": concerned, "at": at})


def urge(doc: dict[str, Any], level: int, department: str, at: datetime) -> None:
    """The urging ladder reached `level` on this clock (1: its breach), against the department it held to account.

    Once per clock and level, whatever the event's id: a copy fired again after a crash counts once, at the
    earliest time any copy names, so the figure is the same in whatever order the copies are read.
    """
    urged = doc.setdefault("urged", {})
    kept = urged.get(str(level))
    if kept is None or at < kept["at"]:
        urged[str(level)] = {"d": department, "at": at}
