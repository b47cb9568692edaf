"""SLA business metrics (names and labels are part of the contract, docs/domain.md)."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class SlaMetrics:
    warnings: Counter
    breaches: Counter
    running: Gauge
    fire_lag: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> "SlaMetrics":
        return cls(
            warnings=Counter(
                "sla_warnings_total", "SLA warnings fired", ["department", "clock", "level"], registry=registry
            ),
            breaches=Counter("sla_breaches_total", "SLA breaches fired", ["department", "clock"], registry=registry),
            running=Gauge("sla_clocks_running", "Clocks currently running", ["clock"], registry=registry),
            fire_lag=Histogram(
                "sla_fire_lag_seconds",
                "How late a warning, breach or urging level fired after its due time",
                buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60),
                registry=registry,
            ),
        )
