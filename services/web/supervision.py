"""Supervision as the workbench shows it (docs/domain.md, "Supervision"): the lead's send-back window (退单), its
transfer requests (转办) and the office's answer, the office's review of a send-back, and the urgings (催办/督办) a
department received. Pure: the pages pass in router's answers and the time; router reckons the window."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TRANSFER_REQUESTED = "appeal.transfer_requested.v1"
TRANSFER_REFUSED = "appeal.transfer_refused.v1"
# Statuses each action starts from, as router takes them (services/router/lifecycle.py, ALLOWED_FROM): the pages
# offer a form only where router may take it, and show router's refusal for the rest.
DECLINE_FROM = ("routed",)
TRANSFER_FROM = ("routed", "accepted", "reopened")
REQUEST_TRANSFER_FROM = ("routed", "accepted", "info_requested", "reopened")
URGE_FROM = ("routed", "accepted", "info_requested", "reopened")
ADD_COHANDLER_FROM = ("routed", "accepted", "info_requested", "reopened")


def moment(value: str) -> datetime:
    """A time from router's JSON; one without a zone is UTC, as router keeps it."""
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """Whether the lead may still decline or transfer on its own, and until when (None: no end known or none)."""

    open: bool
    closes_at: datetime | None = None
    overruled: bool = False


def overruled_here(appeal: dict[str, Any]) -> bool:
    """The office overruled the lead's own decline and the appeal has stayed with it since: the lead can no longer
    decline or transfer it on its own. (An overrule gives the appeal back with its first assignment, before the
    review; a later move to the same department assigns it anew, after.)"""
    sent = appeal.get("send_back") or {}
    return (
        sent.get("state") == "overruled"
        and sent.get("declined_by") == appeal.get("lead")
        and bool(appeal.get("assigned_at") and sent.get("decided_at"))
        and moment(appeal["assigned_at"]) <= moment(sent["decided_at"])
    )


def send_back_window(appeal: dict[str, Any], now: datetime) -> Window:
    """The lead's send-back window now, as router reckons it (`send_back_closes_at`: already closed at the office's
    overrule). No end from router (the coordinating office leads, the city's fallback held to none; or an appeal
    assigned before windows) leaves the forms open, and router decides."""
    closes = appeal.get("send_back_closes_at")
    end = moment(closes) if closes else None
    if overruled_here(appeal):
        return Window(open=False, closes_at=end, overruled=True)
    if end is None:
        return Window(open=True)
    return Window(open=now < end, closes_at=end)


def urgings(appeal: dict[str, Any], department: str) -> list[dict[str, Any]]:
    """The office's urgings by hand (router's `urgings`, oldest first) that pressed `department`: they press the
    lead, so a co-handler has none, and the lead only those since it was assigned the appeal (an earlier lead's
    stay theirs), less any made while a send-back of its own had the appeal elsewhere before the office returned
    it."""
    if not department or appeal.get("lead") != department:
        return []
    assigned = moment(appeal["assigned_at"]) if appeal.get("assigned_at") else None
    sent = appeal.get("send_back") or {}
    away = (
        (moment(sent["at"]), moment(sent["decided_at"]))
        if sent.get("state") == "overruled" and sent.get("declined_by") == department and sent.get("decided_at")
        else None
    )
    mine = []
    for urging in appeal.get("urgings") or []:
        at = moment(urging["at"])
        if assigned is not None and at < assigned:
            continue
        if away is not None and away[0] <= at < away[1]:
            continue
        mine.append(urging)
    return mine


def urge_level(appeal: dict[str, Any], department: str) -> int | None:
    """The urging ladder's level `department`'s clocks reached: each deadline's `urge_level` as router gives it
    (1 the breach, 2 催办, 3 督办); a clock past its due time that sla has not yet reported breached counts as 1.
    None when none is."""
    mine = [d for d in appeal.get("deadlines") or [] if d.get("department") == department]
    levels = [d.get("urge_level") or (1 if d.get("overdue") else 0) for d in mine]
    return max(levels, default=0) or None


def urged(appeal: dict[str, Any], department: str) -> dict[str, Any]:
    """What a department's worklist row and appeal page say of its urging: how often the office urged it by hand,
    the latest urging, the ladder's level, and whether to mark it ("urged by the office": by hand, or the ladder
    past the breach, where the office's head is told)."""
    by_hand = urgings(appeal, department)
    level = urge_level(appeal, department)
    return {
        "count": len(by_hand),
        "latest": by_hand[-1] if by_hand else None,
        "level": level,
        "marked": bool(by_hand) or (level or 0) >= 2,
    }


def transfer_refused(appeal: dict[str, Any], department: str) -> dict[str, Any] | None:
    """The office's refusal of `department`'s latest transfer request (its comment is the entry's note), unless the
    department asked again since. A granted request moves the appeal away: its page is then another's."""
    answer = None
    for entry in appeal.get("timeline") or []:
        if entry.get("type") == TRANSFER_REQUESTED and entry.get("actor") == department:
            answer = None
        elif entry.get("type") == TRANSFER_REFUSED and entry.get("department") == department:
            answer = entry
    return answer if not appeal.get("transfer_request") else None


def send_back_for(appeal: dict[str, Any], department: str) -> dict[str, Any] | None:
    """The latest send-back as `department` reads it: `declined` when it sent the appeal back (it sees the appeal
    again only once the office overruled it), `received` when the appeal came to it by that decline."""
    sent = appeal.get("send_back")
    if not sent:
        return None
    if sent.get("declined_by") == department:
        return {**sent, "role": "declined"}
    if sent.get("to") == department:
        return {**sent, "role": "received"}
    return None
