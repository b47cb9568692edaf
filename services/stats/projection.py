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
when it was made, a clock when it started, an answer when it was given. Each
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

from typing import Any

from libs.envelopes import CloudEvent, reports_of
from libs.kinds import EventType
from services.stats.appeals import NO_LIST, RESOLUTION_BUCKETS, RESOLVED, appeal_counts, fold_appeal
from services.stats.buckets import (
    TOTALS,
    Counts,
    counter,
    cover,
    day_of,
    day_span,
    difference,
    hour_of,
    parts,
    sketch_key,
    sketch_value,
    total,
    with_days,
)
from services.stats.clocks import clock_counts, clock_key, clock_outcome, fold_clock, is_clock, set_live_due
from services.stats.supervision import (
    CONTRIBUTION,
    CONTRIBUTION_FIGURES,
    FIGURE_GROUPS,
    FIGURES,
    SUPERVISION,
    URGING_LEVELS,
    Act,
)

# The fold's names as they were before it was split by job, for the tests and the bench that still read them here;
# stats' own modules import from where each now lives.
__all__ = [
    "CONTRIBUTION",
    "CONTRIBUTION_FIGURES",
    "FIGURES",
    "FIGURE_GROUPS",
    "NO_LIST",
    "RESOLUTION_BUCKETS",
    "RESOLVED",
    "SUPERVISION",
    "TOTALS",
    "URGING_LEVELS",
    "Act",
    "Counts",
    "appeal_counts",
    "clock_counts",
    "clock_key",
    "clock_outcome",
    "counter",
    "counts",
    "cover",
    "day_of",
    "day_span",
    "difference",
    "entity_of",
    "fold",
    "hour_of",
    "new_document",
    "parts",
    "record",
    "set_live_due",
    "sketch_key",
    "sketch_value",
    "total",
    "with_days",
]


def entity_of(event: CloudEvent[Any]) -> tuple[str, str]:
    """(collection, id) of the document an event is folded into: its appeal's."""
    return "appeals", event.data.appeal_id


def new_document(entity_id: str) -> dict[str, Any]:
    """An empty appeal document."""
    return {"_id": entity_id, "version": 0, "applied": [], "deltas": {}}


def fold(doc: dict[str, Any], event: CloudEvent[Any]) -> None:
    """Apply one event to its appeal's document, in place."""
    if is_clock(event):
        clocks = doc.setdefault("clocks", {})
        fold_clock(clocks.setdefault(clock_key(event.data.appeal_id, event.data.clock_id), {}), event)
        set_live_due(doc)
    else:
        fold_appeal(doc, event)


def counts(doc: dict[str, Any]) -> Counts:
    """What a document contributes to the buckets: the appeal's counts and its clocks'."""
    return total([appeal_counts(doc), *(clock_counts(clock) for clock in doc.get("clocks", {}).values())])


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
    if is_clock(event):
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
