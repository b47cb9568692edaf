"""Stats' consumer: every topic that tells what happened to an appeal, projected in batches."""

from functools import partial

from libs.contract import consumer
from libs.envelopes import (
    AppealFiledEvent,
    AppealLifecycleEvent,
    AppealSubmittedEvent,
    CompanyFeedbackEvent,
    CompanyInfoProvidedEvent,
    NotificationOutcomeEvent,
    SlaClockEvent,
    SlaReportedEvent,
)
from libs.kafka.access import KafkaAccess
from libs.kafka.consuming import subscribe
from libs.kafka_admin import first_records
from services.stats import service
from services.stats.runtime import StatsRuntime

PROJECTED = consumer("stats", "project")
Projected = (
    AppealSubmittedEvent
    | AppealFiledEvent
    | AppealLifecycleEvent
    | SlaClockEvent
    | SlaReportedEvent
    | CompanyInfoProvidedEvent
    | CompanyFeedbackEvent
    | NotificationOutcomeEvent
)


def register(runtime: StatsRuntime) -> None:
    """Subscribe stats' handler on the runtime's broker."""

    firsts = partial(first_records, KafkaAccess.of(runtime.settings))

    async def on_project(events: list[Projected]) -> None:
        """Count submissions, transitions, clocks, company answers and deliveries, each once."""
        await service.project(runtime.db, [service.Delivered.of(e) for e in events], runtime.tz, firsts)

    subscribe(runtime.broker, runtime.settings, PROJECTED, on_project, max_records=runtime.settings.batch_size)
