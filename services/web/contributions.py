"""Co-handlers' contributions (协办意见) as the workbench shows them (docs/domain.md, "Supervision"): each
co-handler's `contribution` clock, the part it sends the lead (a note and https links), and the links a clerk types
one per line. Pure: the pages pass in router's answers; router decides who may contribute."""

from typing import Any

from pydantic import TypeAdapter, ValidationError

from libs.links import Attachment
from services.web.supervision import moment

CLOCK = "contribution"
# Statuses router takes `contribute` from (services/router/lifecycle.py, ALLOWED_FROM): a part may come after the
# lead resolved.
CONTRIBUTE_FROM = ("routed", "accepted", "info_requested", "resolved", "reopened")
MAX_LINKS = 20  # router's ActionIn.attachments
MAX_NOTE = 4000  # router's ActionIn.note
_LINK: TypeAdapter[str] = TypeAdapter(Attachment)


def safe_link(value: Any) -> bool:
    """Whether a link may be shown as one a clerk opens: the check intake and router make at the door (https, a
    host, no credentials, no spaces or control characters). Anything else is shown as text."""
    if not isinstance(value, str):
        return False
    try:
        _LINK.validate_python(value)
    except ValidationError:
        return False
    return True


def links_of(typed: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The links a clerk typed one per line (blank lines left out), and each bad one with its line number."""
    links: list[str] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(typed.splitlines(), start=1):
        link = line.strip()
        if not link:
            continue
        if safe_link(link):
            links.append(link)
        else:
            bad.append((number, link))
    return links, bad


def role(appeal: dict[str, Any], department: str) -> str:
    """`lead`, `cohandler` (a department among the co-handlers that does not lead it), or `other` (the office)."""
    if department and department == appeal.get("lead"):
        return "lead"
    if department in (appeal.get("cohandlers") or []):
        return "cohandler"
    return "other"


def clock_of(appeal: dict[str, Any], department: str) -> dict[str, Any] | None:
    """`department`'s contribution clock (its latest run), as router shows it; None before sla reported it."""
    runs = [d for d in appeal.get("deadlines") or [] if d["clock"] == CLOCK and d.get("department") == department]
    return max(runs, key=lambda d: moment(d["started_at"]), default=None)


def view(appeal: dict[str, Any], department: str) -> dict[str, Any] | None:
    """What the appeal's page shows of contributions to a clerk of `department`: a co-handler its own clock and the
    form; the lead (and the office) each co-handler's clock; everyone the parts so far. None when the appeal has
    no co-handler and no part."""
    kind = role(appeal, department)
    cohandlers = [c for c in appeal.get("cohandlers") or [] if c != appeal.get("lead")]
    parts = appeal.get("contributions") or []
    if kind != "cohandler" and not cohandlers and not parts:
        return None
    clocks = [{"department": c, "deadline": clock_of(appeal, c)} for c in cohandlers]
    return {
        "role": kind,
        "own": clock_of(appeal, department) if kind == "cohandler" else None,
        "clocks": [] if kind == "cohandler" else clocks,
        "parts": parts,
        "may_contribute": kind == "cohandler" and appeal.get("status") in CONTRIBUTE_FROM,
    }


def due_for(appeal: dict[str, Any], department: str) -> dict[str, Any] | None:
    """A co-handler's worklist row: its contribution clock while it awaits the part (running or breached)."""
    if role(appeal, department) != "cohandler":
        return None
    clock = clock_of(appeal, department)
    if clock is None or clock["state"] not in ("running", "breached") or not clock.get("due_at"):
        return None
    return {"due_at": clock["due_at"], "late": bool(clock.get("overdue")), "state": clock["state"]}
