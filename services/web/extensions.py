"""Extensions (延期) as the workbench shows them: the due time a clerk types, the state of each request, and where
the office's queue row stands against its clocks. Pure: the pages pass in router's answers and the time."""

from datetime import datetime
from typing import Any

from services.web.pages import LOCAL

# Statuses in which the lead may ask: the resolution clock runs (router decides the rest and says why not).
ASKING_STATUSES = ("routed", "accepted", "reopened")
LAPSED = "lapsed"


def until_of(typed: str) -> datetime | None:
    """The new due time a clerk typed in a `datetime-local` field, read in the city's time zone; None if it is no
    date and time. A time typed with its own offset keeps it."""
    try:
        moment = datetime.fromisoformat(typed.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=LOCAL) if moment.tzinfo is None else moment


def local_input(at: str | None) -> str:
    """A time as a `datetime-local` field holds it, in the city's zone: '2026-03-04T17:05'."""
    return datetime.fromisoformat(at).astimezone(LOCAL).strftime("%Y-%m-%dT%H:%M") if at else ""


def state_of(extension: dict[str, Any], now: datetime) -> str:
    """pending, approved, rejected, or lapsed: router keeps a request it never heard answered as pending, and it
    lapses at the due time it was asked against."""
    if extension["state"] == "pending" and datetime.fromisoformat(extension["previous_due_at"]) <= now:
        return LAPSED
    return str(extension["state"])


def pending(extensions: list[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    """The request awaiting the office, if the latest one still does."""
    latest = extensions[-1] if extensions else None
    return latest if latest is not None and state_of(latest, now) == "pending" else None


def current_resolution(deadlines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The appeal's current resolution clock: the latest run (a reopening starts a new one), which an extension
    moves and names by its `clock_id`."""
    runs = [d for d in deadlines if d["clock"] == "resolution"]
    return max(runs, key=lambda d: datetime.fromisoformat(d["started_at"]), default=None)


def resolution_due(deadlines: list[dict[str, Any]]) -> str | None:
    """The current resolution clock's due time while it runs."""
    current = current_resolution(deadlines)
    return current["due_at"] if current and current["state"] == "running" and current.get("due_at") else None


def extended_already(appeal: dict[str, Any], per_clock: int) -> bool:
    """Whether the current resolution clock has had the approvals it may have: those naming its `clock_id`. A clock
    router does not name yet counts none (router refuses a request past the limit, and says so)."""
    current = current_resolution(appeal.get("deadlines", []))
    clock_id = current.get("clock_id") if current else None
    if not clock_id:
        return False
    granted = [x for x in appeal.get("extensions") or [] if x["state"] == "approved" and x.get("clock_id") == clock_id]
    return len(granted) >= per_clock


def may_ask(appeal: dict[str, Any], department: str, now: datetime, per_clock: int) -> bool:
    """Whether the appeal's page offers its lead the request form: the appeal awaits its resolution, nothing is
    pending and the clock may still be extended. Router decides the rest (the clock runs, the limit) and its
    refusal is shown."""
    return (
        appeal.get("lead") == department
        and appeal.get("status") in ASKING_STATUSES
        and pending(appeal.get("extensions") or [], now) is None
        and not extended_already(appeal, per_clock)
    )


def standing(row: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Where a queue row stands against its clocks: how long overdue (negative seconds) when the queue says it is,
    else the soonest running due time; with the clock and the due time. None when no clock runs."""
    deadlines = row.get("deadlines") or []
    late = [d for d in deadlines if d.get("overdue") and d.get("due_at")]
    if "overdue" in row.get("states", []) and late:
        chosen = min(late, key=lambda d: datetime.fromisoformat(d["due_at"]))
    else:
        running = [d for d in deadlines if d["state"] == "running" and d.get("due_at")]
        if not running:
            return None
        chosen = min(running, key=lambda d: datetime.fromisoformat(d["due_at"]))
    due = datetime.fromisoformat(chosen["due_at"])
    return {"clock": chosen["clock"], "due_at": chosen["due_at"], "seconds": (due - now).total_seconds()}
