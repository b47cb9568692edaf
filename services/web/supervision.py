"""Supervision as the workbench shows it (docs/domain.md, "Supervision"): the lead's send-back window (退单), its
transfer requests (转办) and the office's answer, the office's review of a send-back, and the urgings (催办/督办) a
department received. Pure: the pages pass in router's answers, the configuration and the time."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.calendars import Calendars, parse_target
from libs.config import City, SlaConfig

URGED = "appeal.urged.v1"
TRANSFER_REQUESTED = "appeal.transfer_requested.v1"
TRANSFER_REFUSED = "appeal.transfer_refused.v1"
# Statuses each action starts from, as router takes them (services/router/lifecycle.py, ALLOWED_FROM): the pages
# offer a form only where router may take it, and show router's refusal for the rest.
DECLINE_FROM = ("routed",)
TRANSFER_FROM = ("routed", "accepted", "reopened")
REQUEST_TRANSFER_FROM = ("routed", "accepted", "info_requested", "reopened")
URGE_FROM = ("routed", "accepted", "info_requested", "reopened")


@dataclass(frozen=True)
class Window:
    """Whether the lead may still decline or transfer on its own, and until when (None: no end known or none)."""

    open: bool
    closes_at: datetime | None = None
    overruled: bool = False


def window_closes(appeal: dict[str, Any], *, window: str, sla: SlaConfig, calendars: Calendars, city: City) -> datetime:
    """When the lead's send-back window closes: its scope target (or the configured duration) after it was assigned
    the appeal, on its calendar. The same reckoning as router's `supervision.window_end` (a drift test holds them
    together); router has the last word, and its refusal is shown."""
    target = parse_target(sla.profile(appeal.get("sla_profile")).scope if window == "scope" else window)
    calendar = calendars.of_department(city, appeal["lead"])
    return calendar.add(target, datetime.fromisoformat(appeal["assigned_at"]), calendar.budget(target))


def overruled_here(appeal: dict[str, Any]) -> bool:
    """The office overruled the lead's own decline and the appeal has stayed with it since: the lead can no longer
    decline or transfer it on its own. (An overrule gives the appeal back with its first assignment, before the
    review; a later move to the same department assigns it anew, after.)"""
    sent = appeal.get("send_back") or {}
    return (
        sent.get("state") == "overruled"
        and sent.get("declined_by") == appeal.get("lead")
        and bool(appeal.get("assigned_at") and sent.get("decided_at"))
        and datetime.fromisoformat(appeal["assigned_at"]) <= datetime.fromisoformat(sent["decided_at"])
    )


def send_back_window(
    appeal: dict[str, Any], now: datetime, *, office: str, window: str, sla: SlaConfig, calendars: Calendars, city: City
) -> Window:
    """The lead's send-back window now. The office, the city's fallback, is held to none; an appeal assigned before
    router kept the instant has no known end, so the forms stay and router decides."""
    if appeal.get("lead") == office:
        return Window(open=True)
    if overruled_here(appeal):
        return Window(open=False, overruled=True)
    if not appeal.get("assigned_at") or not appeal.get("lead"):
        return Window(open=True)
    closes = window_closes(appeal, window=window, sla=sla, calendars=calendars, city=city)
    return Window(open=now < closes, closes_at=closes)


def urgings(appeal: dict[str, Any], department: str) -> list[dict[str, Any]]:
    """The office's urgings by hand of `department` while it led the appeal, oldest first (the timeline's)."""
    return [e for e in appeal.get("timeline") or [] if e.get("type") == URGED and e.get("department") == department]


def urge_level(appeal: dict[str, Any], department: str) -> int | None:
    """The urging ladder's level `department`'s clocks reached (1 the breach, 2 催办, 3 督办): each deadline's
    `urge_level` where router gives it, else 1 for a clock of its that is overdue; None when none is."""
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
