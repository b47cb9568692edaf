"""SLA's periodic work: fire due thresholds, finish stale outboxes, recount running clocks."""

from datetime import timedelta

from libs.app import Runtime
from services.sla import service


def start(runtime: Runtime) -> None:
    """Schedule the sla jobs on the runtime."""
    settings, metrics = runtime.settings, runtime.metrics

    lookahead = timedelta(seconds=settings.lookahead_seconds)

    async def fire() -> None:
        # Keep going while clocks come back, so a backlog drains without waiting a tick.
        while True:
            fired = await service.fire_due(runtime.db, runtime.broker, runtime.book, runtime.clock,
                                           settings.fire_batch, lookahead)
            for f in fired:
                metrics.fire_lag.observe(max(f.lag, 0.0))
                if f.level == 100:
                    metrics.breaches.labels(f.department, f.clock).inc()
                else:
                    metrics.warnings.labels(f.department, f.clock, str(f.level)).inc()
            if not fired:
                return

    async def sweep() -> None:
        now = runtime.clock.now()
        await service.release_expired_claims(runtime.db, now)
        await service.flush_stale_outboxes(runtime.db, runtime.broker, now)

    async def recount() -> None:
        for clock, count in (await service.running_counts(runtime.db)).items():
            metrics.running.labels(clock).set(count)

    runtime.every(settings.tick_seconds, fire, "sla-fire")
    runtime.every(2.0, sweep, "sla-outbox-sweep")
    runtime.every(settings.gauge_seconds, recount, "sla-recount", run_first=True)
