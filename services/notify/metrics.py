"""Notify business metrics (names and labels as docs/domain.md lists them)."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class NotifyMetrics:
    notifications: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> "NotifyMetrics":
        return cls(
            notifications=Counter(
                "notifications_total",
                "Notification attempts by outcome",
                ["channel", "audience", "outcome"],
                registry=registry,
            )
        )
