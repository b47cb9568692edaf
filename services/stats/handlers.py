"""Stats' consumer: every topic that tells what happened to an appeal, projected in batches."""

from functools import partial

from libs.app import Runtime
from libs.kafka import Delivered, first_records, subscribe_batch
from libs.topics import APPEALS_COMPANY, APPEALS_LIFECYCLE, APPEALS_SUBMITTED, NOTIFY_DELIVERIES, SLA_EVENTS
from services.stats import service

PROJECTED_TOPICS = (APPEALS_SUBMITTED, APPEALS_LIFECYCLE, SLA_EVENTS, APPEALS_COMPANY, NOTIFY_DELIVERIES)


def register(runtime: Runtime) -> None:
    """Subscribe stats' handler on the runtime's broker."""

    firsts = partial(first_records, runtime.settings.kafka_bootstrap_servers)

    async def on_project(batch: list[Delivered]) -> None:
        """Count submissions, transitions, clocks, company answers and deliveries, each once."""
        await service.project(runtime.db, batch, runtime.tz, firsts)

    subscribe_batch(runtime.broker, runtime.settings, PROJECTED_TOPICS, on_project,
                    max_records=runtime.settings.batch_size)
