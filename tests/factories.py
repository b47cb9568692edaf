"""Test data in one place: what the services answer (an appeal and its deadlines as router shows them), fakes of the
services behind web, and a browser on web (a clerk signed in to the workbench, a company holding its link).

Each test module states only what differs from these; the times are hours from `NOW`, taken once at import.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime.now(UTC).replace(microsecond=0)
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
LEAD, OFFICE = "nanshan-hrss", "coord"
# One key per department a test signs in as or acts for.
KEYS = {
    LEAD: "lead-department-key",
    OFFICE: "coordinating-office-key",
    "commerce": "commerce-department-key",
    "tax": "tax-department-key",
}
TOKEN = "the-status-token"


def at(hours: float) -> str:
    """`NOW` and `hours`, as router and intake write a time."""
    return (NOW + timedelta(hours=hours)).isoformat()


# What router answers.


def deadline(clock: str, state: str, due_hours: float | None, *, department: str = LEAD, **extra: Any) -> dict:
    """A deadline as router shows it (`libs.deadlines.Deadline`): due in `due_hours` (None while paused); seconds
    remaining only while it runs."""
    overdue = state == "breached" or (state == "running" and due_hours is not None and due_hours < 0)
    return {
        "clock": clock,
        "department": department,
        "state": state,
        "target": "72h",
        "started_at": at(-24),
        "due_at": at(due_hours) if due_hours is not None else None,
        "remaining_seconds": due_hours * 3600 if state == "running" and due_hours is not None else None,
        "overdue": overdue,
        "original_due_at": None,
        "clock_id": f"{APPEAL_ID}:{clock}:0",
        "urge_level": 1 if state == "breached" else None,
        **extra,
    }


def appeal_view(**extra: Any) -> dict[str, Any]:
    """An appeal as router shows it to a department (`AppealOut`): accepted by `LEAD`, its resolution clock running
    with 48 hours left."""
    return {
        "appeal_id": APPEAL_ID,
        "status": "accepted",
        "lead": LEAD,
        "cohandlers": [],
        "category": "labour",
        "district": "nanshan",
        "size_band": "small",
        "channel": "web",
        "flags": [],
        "lists": [],
        "declared_flags": [],
        "policies": [],
        "title": "节后员工无法返岗",
        "description": "订单交付困难。",
        "enterprise": {"uscc": "91440300MA5FXT4K8Y", "name": "蓝海科技", "employees": 25, "industry": "互联网"},
        "contact": {"name": "李伟", "phone": "+8613800138000"},
        "submitted_at": at(-30),
        "sequence": 3,
        "deadlines": [deadline("resolution", "running", 48)],
        "timeline": [{"type": "appeal.accepted.v1", "status": "accepted", "time": at(-20), "department": LEAD}],
        "extensions": [],
        "contributions": [],
        "urgings": [],
        "redo_count": 0,
        "redo_due_at": None,
        "visit": None,
        **extra,
    }
