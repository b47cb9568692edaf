"""Intake's scheduled work: publish what a crashed intake stored but never published; forget spent limits;
erase contacts whose retention ended; measure the backlogs that decide whether submissions are shed."""

import asyncio
import logging
import time
from datetime import timedelta

from libs.kafka.access import KafkaAccess
from libs.kafka_admin import GroupLag
from services.intake import codes, service
from services.intake.runtime import IntakeRuntime

log = logging.getLogger(__name__)


def start(runtime: IntakeRuntime) -> None:
    """Schedule the intake jobs on the runtime."""
    settings = runtime.settings
    # Records this process submits are newer than this, and it publishes them itself.
    started = runtime.clock.now()

    async def publish_stranded() -> None:
        await service.publish_stranded(
            runtime.db,
            runtime.broker,
            started - timedelta(minutes=settings.stranded_window_minutes),
            started,
            settings.publish_timeout_seconds,
        )

    runtime.once(publish_stranded, "intake-stranded")

    async def forget_old_windows() -> None:
        await codes.forget_old_windows(runtime.db, runtime.clock.now())

    runtime.every(600, forget_old_windows, "intake-forget-windows")

    async def erase_due() -> None:
        await runtime.eraser.erase_due(runtime.db, runtime.clock.now(), settings.contact_retention)

    runtime.every(settings.erasure_check_seconds, erase_due, "intake-erase-contacts", run_first=True)

    if settings.shed_backlog_records:
        runtime.spawn(_measure_backlog(runtime), "intake-backlog")


async def _measure_backlog(runtime: IntakeRuntime) -> None:
    """Ask the broker for each watched group's backlog every few seconds; an unanswered ask leaves no measure."""
    settings = runtime.settings
    lag = GroupLag(KafkaAccess.of(settings))
    try:
        while True:
            for group in settings.shed_groups:
                try:
                    records = await lag.records(group)
                except Exception as exc:
                    log.warning("a backlog could not be measured", extra={"group": group, "error": repr(exc)})
                    records = None
                runtime.backlogs.setdefault(group, service.Backlog()).measured(records, time.monotonic())
            await asyncio.sleep(settings.shed_check_seconds)
    finally:
        await lag.stop()
