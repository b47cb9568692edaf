"""What stats counts, as plain functions (docs/domain.md, "Statistics").

Every event is folded into the document of the appeal it is about; an SLA clock
is kept in its appeal's document too (`clocks`), so the events of one appeal in a
batch cost one write. What a document counts is a pure function of the document
(`appeal_counts`, and `clock_counts` of each of its clocks), so the effect of an
event on the pre-aggregated buckets is the difference of the counts before and after it.
Live consumption and a replay from the beginning therefore end with the same
figures whatever the order of topics, and an event already folded changes nothing.

Buckets are hours in UTC (`h:2026-03-03T14`: counts, `l:...`: latency sketches)
plus one all-time document `t` behind the Prometheus metrics. A cohort is
counted in the hour its work arrived: an appeal at submission, an assignment
when it was made, a clock when it started, feedback when it was given. Each
hour also adds into the bucket of the local day its UTC start falls on
(`hd:2026-03-04`, `ld:...`, in stats' time zone), so a report over whole days
reads one bucket per day instead of 24 (`day_of`, `cover`).

The coordinating office's supervision is counted by acts (`FIGURES`): each act
is kept on its appeal's document (the urging ladder's levels on their clock's)
and counts once, in its own hour, against the department it concerns, in the
hour buckets and in the all-time totals behind `appeals_supervision_total`.
A co-handler's contribution clock is a clock like the lead's, counted by its
outcome in the hour it started; its end, met or breached, also adds to the
all-time totals behind the contribution figures of `appeals_supervision_total`.
An appeal has any number of clocks: each run of each kind is kept apart under
its own id (`clock_key`), several contribution clocks (one per co-handler) too.
"""

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from libs.events import (
    AppealChanged,
    AppealFiled,
    AppealStatus,
    ClockKind,
    ClockState,
    CloudEvent,
    EventType,
    reports_of,
)

Counts = dict[str, dict[str, int]]

# A counter's name is its parts joined by '|', and it is a MongoDB field name: a dot would nest it, a leading '$'
# is refused, and a '|' inside a part would split it wrongly when read. Each part is percent-encoded for those (and
# for '%' itself), which leaves every name made of configured codes as it always was, so older buckets still read.
_RESERVED = str.maketrans({"%": "%25", ".": "%2E", "$": "%24", "|": "%7C", "\x00": "%00"})

S = AppealStatus
OPEN = {S.submitted, S.routed, S.accepted, S.declined, S.rerouted, S.transferred, S.info_requested, S.reopened}
RESOLVED = {S.resolved, S.confirmed, S.closed}
# A department's substantive answer to the company: it asked for information, resolved, or declined with guidance.
ANSWERS = {EventType.appeal_info_requested, EventType.appeal_resolved, EventType.appeal_declined}
NO_LIST = "none"
SATISFIED = 4
TOTALS = "t"
# Prometheus buckets of appeal_resolution_seconds: 1 h, 6 h, 12 h, 1 d, 2 d, 3 d, 7 d, 14 d, 30 d.
RESOLUTION_BUCKETS = (3600.0, 21600.0, 43200.0, 86400.0, 172800.0, 259200.0, 604800.0, 1209600.0, 2592000.0)
# Latency sketch: logarithmic bins with 1 % relative accuracy (the DDSketch mapping).
_GAMMA = (1 + 0.01) / (1 - 0.01)
_LOG_GAMMA = math.log(_GAMMA)
HOUR = timedelta(hours=1)


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
# overruled send-back and a granted transfer are acts of events that also move the appeal (`_moving_acts`), the
# urging levels are kept on their clocks, and the contributions are the outcomes of the co-handlers' clocks.
FIGURE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("extensions", ("extensions_requested", "extensions_approved", "extensions_rejected")),
    ("send_backs", ("send_backs", "send_backs_overruled", "send_backs_confirmed", "chosen_declines")),
    ("transfers", ("transfers_requested", "transfers_granted", "transfers_refused")),
    ("urgings", ("urgings_by_hand", *(f"urgings_level_{level}" for level in URGING_LEVELS))),
    ("contributions", tuple(CONTRIBUTION_FIGURES.values())),
)
FIGURES: tuple[str, ...] = tuple(figure for _, figures in FIGURE_GROUPS for figure in figures)


@lru_cache(maxsize=16384)
def counter(*parts: object) -> str:
    """A counter's name from its parts, each encoded so that no value can nest, break or split the name."""
    return "|".join(str(part).translate(_RESERVED) for part in parts)


def parts(name: str) -> list[str]:
    """The parts of a counter's name, decoded: the inverse of `counter`."""
    return [unquote(part) if "%" in part else part for part in name.split("|")]


def hour_of(at: datetime) -> str:
    """The hour bucket's name part: '2026-03-03T14' in UTC."""
    # Cached: an appeal's counts are taken before and after each of its events, from the same instants.
    return at.astimezone(UTC).isoformat()[:13]


@lru_cache(maxsize=8192)
def day_span(day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """[start, end) in UTC of a local day that can have a day bucket, or None.

    Only a day made of whole UTC hours, each starting on that day, has one: its
    midnights fall on UTC hours and local time runs forward through it. Where the
    offset is not whole hours (Asia/Kolkata; Australia/Lord_Howe outside summer
    time; any zone's local mean time) an hour straddles local midnight, so those
    days have no bucket and are always read hour by hour. Daylight saving days in
    whole-hour zones have one, of 23 or 25 hours.
    """
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    if end <= start or any(at.minute or at.second or at.microsecond for at in (start, end)):
        return None
    hours = (end - start) // HOUR
    if any((start + i * HOUR).astimezone(tz).date() != day for i in range(hours)):
        return None
    return start, end


@lru_cache(maxsize=65536)
def day_of(bucket: str, tz: ZoneInfo) -> str | None:
    """The day bucket an hour bucket adds into ('h:2026-03-03T16' -> 'hd:2026-03-04' in Shanghai), or None."""
    kind, _, hour = bucket.partition(":")
    if kind not in ("h", "l"):
        return None
    at = datetime.fromisoformat(hour + ":00+00:00")
    day = at.astimezone(tz).date()
    span = day_span(day, tz)
    # An hour of this date outside its span (local time stepping back across midnight) stays hourly only.
    return f"{kind}d:{day.isoformat()}" if span and span[0] <= at < span[1] else None


def with_days(delta: Counts, tz: ZoneInfo) -> Counts:
    """`delta` plus the same changes added into the day buckets of its hours."""
    out = {bucket: dict(fields) for bucket, fields in delta.items()}
    for bucket, fields in delta.items():
        day = day_of(bucket, tz)
        if day is None:
            continue
        target = out.setdefault(day, {})
        for name, n in fields.items():
            target[name] = target.get(name, 0) + n
    return out


def cover(start: datetime, end: datetime, tz: ZoneInfo, since: date | None) -> tuple[list[str], list[str]]:
    """(days, hours): name parts of the day and hour buckets holding exactly the hours of [start, end).

    The hours are those `hour_of(start)` <= hour < `hour_of(end)`, as an hourly
    read takes them. A day is used only when all of its span lies in them and it
    is not before `since` (the first day whose bucket holds every hour; None: none does).
    """
    at = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    stop = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    days: list[str] = []
    hours: list[str] = []
    while at < stop:
        day = at.astimezone(tz).date()
        span = day_span(day, tz) if since is not None and day >= since else None
        if span and span[0] == at and span[1] <= stop:
            days.append(day.isoformat())
            at = span[1]
        else:
            hours.append(hour_of(at))
            at += HOUR
    return days, hours


def sketch_key(seconds: float) -> int:
    """The logarithmic bin holding `seconds` (anything under a second counts as one)."""
    return math.ceil(math.log(max(seconds, 1.0)) / _LOG_GAMMA)


def sketch_value(key: int) -> float:
    """The representative value of bin `key`, within 1 % of every value in it."""
    return 2 * _GAMMA**key / (_GAMMA + 1)


def entity_of(event: CloudEvent[Any]) -> tuple[str, str]:
    """(collection, id) of the document an event is folded into: its appeal's."""
    return "appeals", event.data.appeal_id


def new_document(entity_id: str) -> dict[str, Any]:
    """An empty appeal document."""
    return {"_id": entity_id, "version": 0, "applied": [], "deltas": {}}


def clock_key(appeal_id: str, clock_id: str) -> str:
    """Where an appeal's document keeps a clock: `scope:1` for clock `<appeal>:scope:1`."""
    return clock_id.removeprefix(f"{appeal_id}:").translate(_RESERVED)


def fold(doc: dict[str, Any], event: CloudEvent[Any]) -> None:
    """Apply one event to its appeal's document, in place."""
    if _is_clock(event):
        clocks = doc.setdefault("clocks", {})
        _fold_clock(clocks.setdefault(clock_key(event.data.appeal_id, event.data.clock_id), {}), event)
        set_live_due(doc)
    else:
        _fold_appeal(doc, event)


def set_live_due(doc: dict[str, Any]) -> None:
    """Keep `live_due`, the earliest due time of the appeal's clocks running unbreached (the index behind
    "running past due"), absent when none runs so."""
    dues = [c["live_due"] for c in doc.get("clocks", {}).values() if "live_due" in c]
    if dues:
        doc["live_due"] = min(dues)
    else:
        doc.pop("live_due", None)


def counts(doc: dict[str, Any]) -> Counts:
    """What a document contributes to the buckets: the appeal's counts and its clocks'."""
    return total([appeal_counts(doc), *(clock_counts(clock) for clock in doc.get("clocks", {}).values())])


def difference(after: Counts, before: Counts) -> Counts:
    """after - before, leaving out what did not change."""
    out: Counts = {}
    for bucket in after.keys() | before.keys():
        a, b = after.get(bucket, {}), before.get(bucket, {})
        changed = {f: a.get(f, 0) - b.get(f, 0) for f in a.keys() | b.keys() if a.get(f, 0) != b.get(f, 0)}
        if changed:
            out[bucket] = changed
    return out


def record(doc: dict[str, Any], event: CloudEvent[Any]) -> Counts | None:
    """Fold `event` once: the change it makes to the buckets, or None if it was folded before.

    An `sla.reported.v2` folds each of its reports once, by the report's id: one read on
    `sla.events.v1` as well counts once.
    """
    if event.type == EventType.sla_reported:
        deltas = [delta for report in reports_of(event) if (delta := record(doc, report)) is not None]
        return total(deltas) if deltas else None
    if event.id in doc["applied"]:
        return None
    if _is_clock(event):
        # A clock event changes that clock alone: the rest of the document counts the same before and after.
        key = clock_key(event.data.appeal_id, event.data.clock_id)
        before = clock_counts(doc.get("clocks", {}).get(key, {}))
        fold(doc, event)
        after = clock_counts(doc["clocks"][key])
    else:
        before = counts(doc)
        fold(doc, event)
        after = counts(doc)
    doc["applied"].append(event.id)
    return difference(after, before)


def total(deltas: list[Counts]) -> Counts:
    """The sum of several counts or changes, leaving out what sums to nothing."""
    out: Counts = {}
    for delta in deltas:
        for bucket, fields in delta.items():
            into = out.setdefault(bucket, {})
            for name, n in fields.items():
                into[name] = into.get(name, 0) + n
    kept = {bucket: {name: n for name, n in fields.items() if n} for bucket, fields in out.items()}
    return {bucket: fields for bucket, fields in kept.items() if fields}


def _is_clock(event: CloudEvent[Any]) -> bool:
    return event.type.startswith("sla.")


def _ms(at: datetime) -> datetime:
    """`at` as MongoDB stores it (milliseconds), so counts from a reloaded document match."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _fold_appeal(doc: dict[str, Any], event: CloudEvent[Any]) -> None:
    data, at = event.data, _ms(event.time)
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
        submitted_at=_ms(data.submitted_at),
        category=data.category.value,
        size_band=data.size_band,
        channel=data.channel.value,
        district=district,
    )


def _fold_lifecycle(doc: dict[str, Any], type_: str, data: AppealChanged, at: datetime) -> None:
    act = SUPERVISION.get(type_)
    if act:
        _fold_act(doc, act, data, at)
        return
    for figure, concerned in _moving_acts(doc, type_, data):
        _add_act(doc, figure, concerned, at)
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
    if type_ in (EventType.appeal_confirmed, EventType.appeal_reopened) and data.satisfaction is not None:
        doc.setdefault("feedback", []).append({"at": at, "d": data.department, "s": data.satisfaction})
    if data.sequence > doc.get("sequence", 0):
        doc.update(
            sequence=data.sequence,
            status=data.status.value,
            department=None if data.status == S.rejected else data.department,
        )


def _moving_acts(doc: dict[str, Any], type_: str, data: AppealChanged) -> list[tuple[str, str | None]]:
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
    assignments.append({"d": back, "at": _ms(since) if since else at, "responded": None})


def _fold_act(doc: dict[str, Any], act: Act, data: AppealChanged, at: datetime) -> None:
    # Kept one per event (`record` folds an event once). An act never changes who leads: an extension decided after
    # a transfer names the department that asked, which must not count as a new assignment or become the lead.
    _add_act(doc, act.figure, act.concerns(doc, data), at)
    if data.sequence > doc.get("sequence", 0):
        doc.update(sequence=data.sequence, status=data.status.value)


def _add_act(doc: dict[str, Any], figure: str, concerned: str | None, at: datetime) -> None:
    if concerned:
        doc.setdefault("acts", []).append({"f": figure, "d": concerned, "at": at})


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
    for fb in doc.get("feedback", []):
        bucket = out["h:" + hour_of(fb["at"])]
        bucket[counter("feedback", fb["d"])] += 1
        if fb["s"] >= SATISFIED:
            bucket[counter("satisfied", fb["d"])] += 1
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


_CLOCK_STATES = {
    EventType.sla_started: "running",
    EventType.sla_resumed: "running",
    EventType.sla_paused: "paused",
    EventType.sla_met: "met",
    EventType.sla_cancelled: "cancelled",
}


# The events that set a clock's due time; sla recomputes it on each of them (none while paused).
_DUE_SETTERS = {EventType.sla_started, EventType.sla_resumed, EventType.sla_paused, EventType.sla_extended}


def _fold_clock(doc: dict[str, Any], event: CloudEvent[Any]) -> None:
    data = event.data
    # A start read after a later event of its run says less than that event did: a replay may read a run's start on
    # sla.events.v1 after its extension on sla.events.v2, and must not put back the due time the extension moved.
    late_start = event.type == EventType.sla_started and "state" in doc
    doc.update(clock=data.clock.value, department=data.department, started_at=_ms(data.started_at))
    if event.type == EventType.sla_breached:
        doc["breached"] = True
    state = _CLOCK_STATES.get(EventType(event.type))
    if state and not late_start:
        doc["state"] = state
    if event.type == EventType.sla_extended:
        # An extension neither starts nor stops a clock; read before its run's start, it stands in for it.
        doc.setdefault("state", "paused" if data.state == ClockState.paused else "running")
    if event.type in _DUE_SETTERS and not late_start:
        doc["due_at"] = data.due_at and _ms(data.due_at)
    level = {EventType.sla_breached: 1, EventType.sla_urged: data.urge_level}.get(EventType(event.type))
    if level:
        _urged(doc, level, data.department, _ms(data.fired_at or event.time))
    # Present only while the clock runs unbreached: the index behind "running past due".
    if doc.get("state") == "running" and not doc.get("breached") and doc.get("due_at"):
        doc["live_due"] = doc["due_at"]
    else:
        doc.pop("live_due", None)


def _urged(doc: dict[str, Any], level: int, department: str, at: datetime) -> None:
    """The urging ladder reached `level` on this clock (1: its breach), against the department it held to account.

    Once per clock and level, whatever the event's id: a copy fired again after a crash counts once, at the
    earliest time any copy names, so the figure is the same in whatever order the copies are read.
    """
    urged = doc.setdefault("urged", {})
    kept = urged.get(str(level))
    if kept is None or at < kept["at"]:
        urged[str(level)] = {"d": department, "at": at}


def clock_outcome(doc: dict[str, Any]) -> str:
    """met, breached, live (running or paused, not yet breached) or cancelled."""
    if doc.get("breached"):
        return "breached"
    return {"met": "met", "cancelled": "cancelled"}.get(doc.get("state", "running"), "live")


def clock_counts(doc: dict[str, Any]) -> Counts:
    """What one clock counts: its outcome, in the hour it started, against its department; and the urging levels it
    reached, each in the hour it fired, against the department it held to account then. A contribution clock met or
    breached also adds to its co-handler's all-time contributions on time or late: neither outcome changes after
    (a breach stands when the part comes late or the clock is cancelled; sla cancels no met clock), so those totals
    never fall."""
    if "started_at" not in doc:
        return {}
    out: Counts = defaultdict(lambda: defaultdict(int))
    outcome = clock_outcome(doc)
    out["h:" + hour_of(doc["started_at"])][counter("clock", doc["department"], doc["clock"], outcome)] += 1
    if doc["clock"] == CONTRIBUTION and outcome in CONTRIBUTION_FIGURES:
        out[TOTALS][counter(CONTRIBUTION_FIGURES[outcome], doc["department"])] += 1
    # The urging ladder's levels are supervision acts: each in the hour it fired, and in the all-time totals.
    for level, urged in doc.get("urged", {}).items():
        name = counter(f"urgings_level_{level}", urged["d"])
        out["h:" + hour_of(urged["at"])][name] += 1
        out[TOTALS][name] += 1
    return {b: dict(f) for b, f in out.items()}
