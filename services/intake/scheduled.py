"""Intake's scheduled work: publish what a crashed intake stored but never published; forget spent limits."""

from datetime import timedelta

from services.intake import codes, service
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

    async def forget_old_windows() -> None:
        await codes.forget_old_windows(runtime.db, runtime.clock.now())

    runtime.every(600, forget_old_windows, "intake-forget-windows")
