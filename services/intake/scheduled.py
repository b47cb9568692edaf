"""Intake's scheduled work: at start, publish what a crashed intake stored but never published."""

from datetime import timedelta

from services.intake import service
from services.intake.runtime import IntakeRuntime


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
