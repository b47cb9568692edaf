"""Business metrics of docs/domain.md read from the all-time counts, so a restart neither loses nor doubles them."""

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from services.stats.answers import OUTCOMES as ANSWERS
from services.stats.appeals import RESOLUTION_BUCKETS
from services.stats.buckets import parts
from services.stats.supervision import FIGURES


class BusinessMetrics(Collector):
    """Serves the latest snapshot of the `t` bucket; `update` replaces the snapshot."""

    def __init__(self, departments: list[str]) -> None:
        self.departments = departments
        self.snapshot: dict[str, int] | None = None

    @classmethod
    def register(cls, registry: CollectorRegistry, departments: list[str]) -> "BusinessMetrics":
        collector = cls(departments)
        registry.register(collector)
        return collector

    def update(self, totals: dict[str, int]) -> None:
        self.snapshot = dict(totals)

    def describe(self) -> list[Metric]:
        # Described up front so the registry knows the names without reading the database.
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        if self.snapshot is not None:
            yield from self._families(self.snapshot)

    def _families(self, totals: dict[str, int]) -> Iterator[Metric]:
        submitted = CounterMetricFamily(
            "appeals_submitted", "Appeals submitted", labels=["channel", "category", "size_band"]
        )
        routed = CounterMetricFamily(
            "appeals_routed", "Appeals routed to a lead department", labels=["department", "sla_profile"]
        )
        declined = CounterMetricFamily("appeals_declined", "Appeals declined as out of scope", labels=["department"])
        resolved = CounterMetricFamily("appeals_resolved", "Appeals resolved", labels=["department", "category"])
        families = {"submitted": submitted, "routed": routed, "declined": declined, "resolved": resolved}
        open_now = {d: 0 for d in self.departments}
        assigned = {d: 0 for d in self.departments}
        # Every department's figures from the first scrape, at 0 until an act: a panel or `increase()` over a quiet
        # day reads 0, not "no data". Labels are the configured codes alone: 33 departments x 16 figures today.
        supervision = {(d, f): 0 for d in self.departments for f in FIGURES}
        histograms: dict[str, list[int]] = {}
        sums: dict[str, int] = {}
        for name, value in totals.items():
            kind, *labels = parts(name)
            # A name of another shape (a counter of a later version) is left out, never a failed scrape.
            if kind in families and len(labels) == len(families[kind]._labelnames):
                families[kind].add_metric(labels, value)
            elif kind == "open" and len(labels) == 1:
                open_now[labels[0]] = value
            elif kind == "assigned" and len(labels) == 1:
                assigned[labels[0]] = value
            elif kind in FIGURES and len(labels) == 1:
                supervision[(labels[0], kind)] = value
            elif kind == "resolution_seconds" and len(labels) == 2 and labels[1].isdigit():
                index = min(int(labels[1]), len(RESOLUTION_BUCKETS))
                histograms.setdefault(labels[0], [0] * (len(RESOLUTION_BUCKETS) + 1))[index] += value
            elif kind == "resolution_seconds_sum" and len(labels) == 1:
                sums[labels[0]] = value
        yield from families.values()
        gauge = GaugeMetricFamily("appeals_open", "Appeals open now, by lead department", labels=["department"])
        for dept, value in sorted(open_now.items()):
            gauge.add_metric([dept], value)
        yield gauge
        leads = CounterMetricFamily(
            "appeals_assigned",
            "Lead assignments, by the department made lead (routing, rerouting after a decline, transfer; an "
            "overruled send-back returns the appeal on its earlier assignment, no new one): the send-back rate's "
            "denominator",
            labels=["department"],
        )
        for dept, value in sorted(assigned.items()):
            leads.add_metric([dept], value)
        yield leads
        acts = CounterMetricFamily(
            "appeals_supervision",
            "The coordinating office's supervision acts, by the department they concern (the lead that asked, "
            "declined, was urged or held to account by the urging ladder; the co-handler whose contribution clock "
            "was met or breached, when it ended) and figure "
            f"({', '.join(FIGURES)})",
            labels=["department", "figure"],
        )
        for (dept, figure), value in sorted(supervision.items()):
            acts.add_metric([dept, figure], value)
        yield acts
        histogram = HistogramMetricFamily(
            "appeal_resolution_seconds", "Time from submission to resolution", labels=["category"]
        )
        for category, counts in sorted(histograms.items()):
            cumulative, buckets = 0, []
            for le, n in zip([*map(str, RESOLUTION_BUCKETS), "+Inf"], counts, strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            histogram.add_metric([category], buckets, sums.get(category, 0))
        yield histogram


class ScorecardMetrics(Collector):
    """This month's scorecard, as `update` last gave it: each department's score, and its answers by outcome.

    Gauges: an answer stops counting when a later round of its appeal is answered, and a redo when the office finds
    its round's cause outside the department, so these figures can fall. Labels are the configured department codes
    and the five outcomes: 33 departments x 5 today.
    """

    def __init__(self, departments: list[str]) -> None:
        self.departments = departments
        self.snapshot: dict[str, Any] | None = None

    @classmethod
    def register(cls, registry: CollectorRegistry, departments: list[str]) -> "ScorecardMetrics":
        collector = cls(departments)
        registry.register(collector)
        return collector

    def update(self, card: dict[str, Any]) -> None:
        self.snapshot = card

    def describe(self) -> list[Metric]:
        return list(self._families({"departments": []}))

    def collect(self) -> Iterator[Metric]:
        if self.snapshot is not None:
            yield from self._families(self.snapshot)

    def _families(self, card: dict[str, Any]) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "appeals_scorecard_score",
            "This month's scorecard score (city time), by department; none for a department with nothing to score",
            labels=["department"],
        )
        answers = GaugeMetricFamily(
            "appeals_scorecard_answers",
            "This month's answers counted for the scorecard (city time), by the department answered for and outcome "
            f"({', '.join(ANSWERS)}): each appeal's last round's answer, in the month it was given",
            labels=["department", "outcome"],
        )
        redos = GaugeMetricFamily(
            "appeals_scorecard_redos",
            "This month's redos (重办) ordered (city time), by department",
            labels=["department"],
        )
        rows = {row["department"]: row for row in card["departments"]}
        for dept in self.departments:
            row = rows.get(dept)
            if row is not None and row["score"] is not None:
                score.add_metric([dept], row["score"])
            for outcome in ANSWERS:
                answers.add_metric([dept, outcome], row[outcome] if row else 0)
            redos.add_metric([dept], row["redos"] if row else 0)
        yield score
        yield answers
        yield redos
