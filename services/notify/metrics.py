"""Notify business metrics (DOMAIN.md names and labels)."""

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
