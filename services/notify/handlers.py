"""Notify's consumer: every event that someone must hear about.

The service functions are imported by name, not by module: a test replaces them here, where the handlers look
them up, whichever module of notify holds them.
"""

from libs.contract import consumer
from libs.envelopes import (
    AppealContactErasedEvent,
    AppealContactEvent,
    AppealFiledEvent,
    AppealLifecycleEvent,
    AppealSubmittedEvent,
    CompanyMessageEvent,
    EnterpriseEvent,
    SlaClockEvent,
    SlaReportedEvent,
    unpacked,
)
from libs.kafka.consuming import subscribe
from services.notify.copies import remember_companies
from services.notify.messages import send_messages
from services.notify.planning import plan_events
from services.notify.runtime import NotifyRuntime


def register(runtime: NotifyRuntime) -> None:
    """Subscribe notify's handlers on the runtime's broker."""

    async def on_event(
        events: list[
            AppealSubmittedEvent
            | AppealFiledEvent
            | AppealContactEvent
            | AppealContactErasedEvent
            | AppealLifecycleEvent
            | SlaClockEvent
            | SlaReportedEvent
        ],
    ) -> None:
        """Keep and erase contacts; record the notifications appeal, lifecycle and SLA events owe (the dispatcher
        sends them)."""
        await plan_events(
            runtime.db,
            runtime.book,
            unpacked(events),
            runtime.clock.now(),
            runtime.settings.status_url,
            runtime.memory,
            runtime.ready,
        )

    async def on_enterprises(events: list[EnterpriseEvent]) -> None:
        """Keep each company's liaison, the registry's latest word on it."""
        await remember_companies(runtime.db, events)

    async def on_messages(events: list[CompanyMessageEvent]) -> None:
        """Send one-time codes and lost links by SMS at once: they are no use later."""
        await send_messages(runtime.db, runtime.senders, runtime.settings, runtime.book, events, runtime.clock.now())

    subscribe(runtime.broker, runtime.settings, consumer("notify", "event"), on_event)
    subscribe(runtime.broker, runtime.settings, consumer("notify", "messages"), on_messages)
    subscribe(runtime.broker, runtime.settings, consumer("notify", "enterprises"), on_enterprises)
