"""What an appeal counts apart from its clocks: its fold and its counts, as plain functions.

A cohort is counted in the hour its work arrived: an appeal at submission, an
assignment when it was made; an answer when it was given and a redo when it was
ordered (services/stats/answers.py); a supervision act in its own hour
(services/stats/supervision.py).
"""

from collections import defaultdict
from datetime import datetime
from typing import Any

from libs.envelopes import CloudEvent
from libs.events import AppealChanged, AppealFiled
from libs.kinds import AppealStatus, EventType
from services.stats.answers import answer_counts, fold_answers
from services.stats.buckets import TOTALS, Counts, counter, hour_of, ms, sketch_key
from services.stats.supervision import SUPERVISION, add_act, fold_act, moving_acts

S = AppealStatus
OPEN = {S.submitted, S.routed, S.accepted, S.declined, S.rerouted, S.transferred, S.info_requested, S.reopened}
RESOLVED = {S.resolved, S.confirmed, S.closed}
# A department's substantive answer to the company: it asked for information, resolved, or declined with guidance.
ANSWERS = {EventType.appeal_info_requested, EventType.appeal_resolved, EventType.appeal_declined}
NO_LIST = "none"
# Prometheus buckets of appeal_resolution_seconds: 1 h, 6 h, 12 h, 1 d, 2 d, 3 d, 7 d, 14 d, 30 d.
RESOLUTION_BUCKETS = (3600.0, 21600.0, 43200.0, 86400.0, 172800.0, 259200.0, 604800.0, 1209600.0, 2592000.0)


def fold_appeal(doc: dict[str, Any], event: CloudEvent[Any]) -> None:
    data, at = event.data, ms(event.time)
    if event.type in (EventType.appeal_submitted, EventType.appeal_submitted_v2):
        _set_facts(doc, data)
    elif isinstance(data, AppealChanged):
        _set_facts(doc, data)
        _fold_lifecycle(doc, event.type, data, at)
    elif event.type in (EventType.company_info_provided, EventType.company_feedback):
        doc.setdefault("company", []).append({"at": at, "kind": event.type.split(".")[1]})
    elif event.type in (EventType.notification_delivered, EventType.notification_failed):
        outcome = "delivered" if event.type == EventType.notification_delivered else "failed"
        notes = doc.setdefault("notifications", [])
        if all(n["id"] != data.notification_id for n in notes):
            notes.append({"id": data.notification_id, "at": at, "channel": data.channel, "outcome": outcome})


def _set_facts(doc: dict[str, Any], data: AppealFiled | AppealChanged) -> None:
    if isinstance(data, AppealFiled):
        district = data.enterprise.district
        doc["uscc"] = data.enterprise.uscc
    else:
        district = data.district
        # Router stamps the lists the company was on at submission; they never change afterwards.
        doc["lists"] = sorted(data.lists)
    doc.update(
        submitted_at=ms(data.submitted_at),
        category=data.category.value,
        size_band=data.size_band,
        channel=data.channel.value,
        district=district,
    )


def _fold_lifecycle(doc: dict[str, Any], type_: str, data: AppealChanged, at: datetime) -> None:
    act = SUPERVISION.get(type_)
    if act:
        fold_act(doc, act, data, at)
        return
    for figure, concerned in moving_acts(doc, type_, data):
        add_act(doc, figure, concerned, at)
    if type_ == EventType.appeal_declined and not data.chosen and data.department:
        # What a later confirmation of this send-back counts against (its event names the lead it stood with).
        doc["sent_back"] = data.department
    assignments = doc.setdefault("assignments", [])
    if type_ == EventType.appeal_decline_overruled and data.department:
        _return(assignments, data.department, data.since, at)
    elif (
        data.department
        and data.status not in (S.rejected, S.closed)
        and (not assignments or assignments[-1]["d"] != data.department)
    ):
        assignments.append({"d": data.department, "at": at, "responded": None})
    lead = assignments[-1] if assignments else None
    tally = doc.setdefault("tally", {})
    if type_ == EventType.appeal_routed:
        key = counter("routed", data.department, data.sla_profile or "none")
        tally[key] = tally.get(key, 0) + 1
    if type_ == EventType.appeal_declined:
        key = counter("declined", data.department)
        tally[key] = tally.get(key, 0) + 1
    answered = type_ in (EventType.appeal_info_requested, EventType.appeal_resolved) or (
        type_ == EventType.appeal_accepted and bool(data.note)
    )
    if type_ in ANSWERS:
        doc["answered"] = True
    if answered and lead and lead["responded"] is None:
        lead["responded"] = at
    if type_ == EventType.appeal_resolved:
        seconds = max(int((at - doc["submitted_at"]).total_seconds()), 0)
        doc["resolution"] = {"d": data.department, "at": at, "seconds": seconds, "kept": True}
        key = counter("resolved", data.department, data.category)
        tally[key] = tally.get(key, 0) + 1
        doc.setdefault("resolution_times", []).append(seconds)
    if type_ == EventType.appeal_reopened and doc.get("resolution"):
        doc["resolution"]["kept"] = False
    fold_answers(doc, type_, data, at)
    if data.sequence > doc.get("sequence", 0):
        doc.update(
            sequence=data.sequence,
            status=data.status.value,
            department=None if data.status == S.rejected else data.department,
        )


def _return(assignments: list[dict[str, Any]], back: str, since: datetime | None, at: datetime) -> None:
    """An overruled send-back returns the appeal to the department that declined it on the assignment it had: no
    new one. That assignment leads again (moved last, where the lead's is kept), in the hour it was made, its first
    response still counted from it; the withdrawn lead's assignment stays counted, like any lead's the appeal left.
    """
    for i in range(len(assignments) - 1, -1, -1):
        if assignments[i]["d"] == back:
            assignments.append(assignments.pop(i))
            return
    # The assignment was never read (the events before it were lost): it counts now, from when it was made.
    assignments.append({"d": back, "at": ms(since) if since else at, "responded": None})


def appeal_counts(doc: dict[str, Any]) -> Counts:
    """What one appeal counts: its submission cohort, its assignments, feedback, totals."""
    out: Counts = defaultdict(lambda: defaultdict(int))
    totals = out[TOTALS]
    status = S(doc.get("status", S.submitted))
    if "submitted_at" in doc:
        hour = out["h:" + hour_of(doc["submitted_at"])]
        lead = doc.get("department") or "unassigned"
        hour["n"] += 1
        for dim in ("category", "size_band", "channel", "district"):
            hour[counter(dim, doc[dim])] += 1
        hour[counter("status", status.value)] += 1
        hour[counter("department", lead)] += 1
        for listed in doc.get("lists") or [NO_LIST]:
            hour[counter("list", listed)] += 1
        if status in RESOLVED:
            hour["resolved"] += 1
        totals[counter("submitted", doc["channel"], doc["category"], doc["size_band"])] += 1
        if status in OPEN:
            totals[counter("open", lead)] += 1
    resolution = doc.get("resolution")
    assignments = doc.get("assignments", [])
    for i, a in enumerate(assignments):
        bucket = out["h:" + hour_of(a["at"])]
        bucket[counter("assigned", a["d"])] += 1
        # Behind appeals_assigned_total, the send-back rate's denominator: an assignment is never taken back, so the
        # counter never falls.
        totals[counter("assigned", a["d"])] += 1
        if (
            i == len(assignments) - 1
            and status in RESOLVED
            and resolution
            and resolution["kept"]
            and resolution["d"] == a["d"]
        ):
            bucket[counter("resolved", a["d"])] += 1
        if a["responded"] is not None:
            seconds = (a["responded"] - a["at"]).total_seconds()
            out["l:" + hour_of(a["at"])][counter("first_response", a["d"], sketch_key(seconds))] += 1
    if resolution and "submitted_at" in doc:
        key = sketch_key(resolution["seconds"])
        out["l:" + hour_of(doc["submitted_at"])][counter("resolution", resolution["d"], key)] += 1
    answer_counts(doc, out)
    for c in doc.get("company", []):
        out["h:" + hour_of(c["at"])][counter("company", c["kind"])] += 1
    for n in doc.get("notifications", []):
        out["h:" + hour_of(n["at"])][counter("notification", n["channel"], n["outcome"])] += 1
    for act in doc.get("acts", []):
        name = counter(act["f"], act["d"])
        out["h:" + hour_of(act["at"])][name] += 1
        totals[name] += 1
    for key, n in doc.get("tally", {}).items():
        totals[key] += n
    category = doc.get("category", "other")
    for seconds in doc.get("resolution_times", []):
        index = next((i for i, le in enumerate(RESOLUTION_BUCKETS) if seconds <= le), len(RESOLUTION_BUCKETS))
        totals[counter("resolution_seconds", category, index)] += 1
        totals[counter("resolution_seconds_sum", category)] += seconds
    return {b: dict(f) for b, f in out.items() if f}
