"""The building blocks of every decision on an appeal: the outcome (`Transition`), the events it owes, and the
department timeline. `lifecycle.py` (departments and the company) and `office.py` (the coordinating office) decide
with them; `service.py` stores and publishes the outcome.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.contract import APPEALS_LIFECYCLE, department_topic
from libs.events import (
    AppealChanged,
    AppealSummary,
    AssignmentCreated,
    AssignmentWithdrawn,
    DepartmentAction,
    PolicyRef,
)
from libs.kinds import AppealStatus, EventType, lifecycle_type
from libs.outbox import Emit

S = AppealStatus
# Every event router publishes carries this source; router knows its own echoes by it.
SOURCE = "appeals/router"


class ActionError(Exception):
    """An action that cannot be applied; `status` follows HTTP (403, 404, 409, 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Transition:
    set: dict[str, Any] = field(default_factory=dict)
    emits: list[Emit] = field(default_factory=list)


# The timeline a department reads keeps this many entries of an appeal, the latest.
TIMELINE_KEPT = 200


def timeline(out: Transition, now: datetime) -> list[dict[str, Any]]:
    """What the departments' timeline shows of an outcome: each lifecycle event, who caused it and why."""
    entries = []
    for emit in out.emits:
        data = emit.data
        if emit.topic != APPEALS_LIFECYCLE or not isinstance(data, AppealChanged):
            continue
        entry: dict[str, Any] = {"type": emit.type, "status": data.status.value, "time": now}
        for name in (
            "department",
            "previous_department",
            "actor",
            "clerk",
            "note",
            "guidance",
            "resolution",
            "reason",
            "due_at",
            "target_department",
            "attachments",
        ):
            if getattr(data, name):
                entry[name] = getattr(data, name)
        if data.policy_refs:
            entry["policy_refs"] = data.policy_refs
        entries.append(entry)
    return entries


def _changed(doc: dict[str, Any], status: AppealStatus, sequence: int, **extra: Any) -> AppealChanged:
    return AppealChanged(
        appeal_id=doc["_id"],
        status=status,
        sequence=sequence,
        department=extra.pop("department", doc.get("lead")),
        cohandlers=extra.pop("cohandlers", doc.get("cohandlers", [])),
        category=doc["category"],
        channel=doc["channel"],
        district=doc["district"],
        size_band=doc["size_band"],
        flags=doc.get("flags", []),
        lists=doc.get("lists", []),
        declared_flags=doc.get("declared_flags", []),
        sla_profile=doc.get("sla_profile"),
        policy_available=doc.get("policy_available", False),
        rule_id=doc.get("rule_id"),
        policies=[PolicyRef(**p) for p in doc.get("policies", [])],
        submitted_at=doc["submitted_at"],
        **extra,
    )


def announce(
    doc: dict[str, Any], out: Transition, status: AppealStatus, type_: str | None = None, **extra: Any
) -> None:
    sequence = out.set.get("sequence", doc.get("sequence", 0)) + 1
    out.set["sequence"] = sequence
    out.emits.append(Emit(APPEALS_LIFECYCLE, type_ or lifecycle_type(status), _changed(doc, status, sequence, **extra)))


def summary_of(doc: dict[str, Any]) -> AppealSummary:
    return AppealSummary(
        category=doc["category"],
        title=doc["title"],
        description=doc["description"],
        enterprise=doc["enterprise"],
        contact=doc["contact"],
        channel=doc["channel"],
        flags=doc.get("flags", []),
        lists=doc.get("lists", []),
        declared_flags=doc.get("declared_flags", []),
        phone_verified=doc.get("phone_verified"),
        attachments=doc.get("attachments", []),
        submitted_at=doc["submitted_at"],
    )


def assign(doc: dict[str, Any], out: Transition, department: str, role: str, lead: str, cohandlers: list[str]) -> None:
    out.emits.append(
        Emit(
            department_topic(department),
            EventType.assignment_created,
            AssignmentCreated(
                appeal_id=doc["_id"],
                department=department,
                role=role,
                lead_department=lead,
                cohandlers=cohandlers,
                rule_id=doc.get("rule_id"),
                policies=[PolicyRef(**p) for p in doc.get("policies", [])],
                sla_profile=doc["sla_profile"],
                appeal=summary_of(doc),
            ),
        )
    )


def withdraw(doc: dict[str, Any], out: Transition, department: str, reason: str, to: str | None) -> None:
    out.emits.append(
        Emit(
            department_topic(department),
            EventType.assignment_withdrawn,
            AssignmentWithdrawn(appeal_id=doc["_id"], department=department, reason=reason, to_department=to),
        )
    )


def common(action: DepartmentAction) -> dict[str, Any]:
    return {"actor": action.department, "clerk": action.clerk, "note": action.note, "policy_refs": action.policy_refs}


def move(doc: dict[str, Any], action: DepartmentAction, target: str, now: datetime) -> Transition:
    """Transfer the appeal to `target` (the lead's transfer, or the office granting one)."""
    cohandlers = [c for c in doc.get("cohandlers", []) if c != target]
    out = Transition(
        set={
            "lead": target,
            "cohandlers": cohandlers,
            "status": S.routed.value,
            "declined_by": [],
            "assigned_at": now,
            "overruled_for": None,
            "transfer_request": None,
        }
    )
    after = {**doc, "lead": target, "cohandlers": cohandlers}
    announce(after, out, S.routed, EventType.appeal_transferred, previous_department=doc["lead"], **common(action))
    withdraw(doc, out, doc["lead"], "transferred", target)
    assign(after, out, target, "lead", target, cohandlers)
    return out
