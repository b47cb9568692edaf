"""Intake's consumers: the status read model follows the lifecycle and the SLA clocks."""

from libs.contract import consumer
from libs.envelopes import AppealLifecycleEvent, SlaClockEvent, SlaReportedEvent, unpacked
from libs.kafka.consuming import subscribe
from services.intake import read_model
from services.intake.runtime import IntakeRuntime


def register(runtime: IntakeRuntime) -> None:
    """Subscribe intake's handlers on the runtime's broker."""

    async def on_lifecycle(events: list[AppealLifecycleEvent]) -> None:
        """Keep each appeal's status and timeline for companies and channels."""
        await read_model.apply_lifecycle(runtime.db, events)

    async def on_clocks(events: list[SlaClockEvent | SlaReportedEvent]) -> None:
        """Keep each appeal's deadlines, so the company sees when to expect an answer."""
        await read_model.apply_clocks(runtime.db, unpacked(events))

    subscribe(runtime.broker, runtime.settings, consumer("intake", "lifecycle"), on_lifecycle)
    subscribe(runtime.broker, runtime.settings, consumer("intake", "clocks"), on_clocks)
