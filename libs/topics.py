"""Kafka topic names: the one place they are spelled."""

APPEALS_SUBMITTED = "appeals.submitted.v1"
APPEALS_LIFECYCLE = "appeals.lifecycle.v1"
APPEALS_ACTIONS = "appeals.actions.v1"
APPEALS_COMPANY = "appeals.company.v1"
SLA_EVENTS = "sla.events.v1"
NOTIFY_DELIVERIES = "notify.deliveries.v1"

PLATFORM_TOPICS = (
    APPEALS_SUBMITTED,
    APPEALS_LIFECYCLE,
    APPEALS_ACTIONS,
    APPEALS_COMPANY,
    SLA_EVENTS,
    NOTIFY_DELIVERIES,
)


# Every topic keeps its events for good: stats must be rebuildable from them, and a department
# system that was away for weeks still finds its assignments.
TOPIC_CONFIG = {"retention.ms": "-1"}


def department_topic(code: str) -> str:
    """The topic a department's own systems consume."""
    return f"dept.{code}.v1"


def dead_letter_topic(topic: str) -> str:
    """Where a consumer of `topic` puts what it cannot parse or validate."""
    return f"{topic}.dlq"


def all_topics(department_codes: list[str]) -> list[str]:
    """Every topic the platform uses: its own, one per department, and the dead-letter topics."""
    return [*PLATFORM_TOPICS, *(department_topic(c) for c in department_codes),
            *(dead_letter_topic(t) for t in PLATFORM_TOPICS)]
