"""Notify's periodic work: send what is due, retry, release held messages, plan early events, adopt old records."""

from services.notify import adopt, dispatch, planning
from services.notify.runtime import NotifyRuntime


def start(runtime: NotifyRuntime) -> None:
    """Schedule notify's jobs on the runtime."""
    settings, metrics = runtime.settings, runtime.metrics

    def count(o: dispatch.AttemptResult) -> None:
        metrics.notifications.labels(o.channel, o.audience, o.outcome).inc()

    async def send() -> None:
        while await dispatch.dispatch(
            runtime.db,
            runtime.broker,
            runtime.senders,
            settings,
            runtime.clock.now(),
            on_outcome=count,
            ready=runtime.ready,
        ):
            pass

    async def waiting() -> None:
        await planning.plan_waiting(runtime.db, runtime.book, runtime.clock.now(), settings.status_url, runtime.memory)

    async def sweep() -> None:
        now = runtime.clock.now()
        await dispatch.release_expired_claims(runtime.db, now)
        await adopt.flush_stale_outboxes(runtime.db, runtime.broker, now)
        await adopt.adopt_records(runtime.db, runtime.memory, now)

    runtime.every(settings.tick_seconds, send, "notify-send")
    runtime.every(1.0, waiting, "notify-waiting")
    runtime.every(5.0, sweep, "notify-sweep")
