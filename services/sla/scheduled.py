"""SLA's periodic work: fire due thresholds and urging levels, finish stale outboxes, recount running clocks."""

import logging
from datetime import timedelta

from services.sla import service
from services.sla.runtime import SlaRuntime

log = logging.getLogger(__name__)

# Most passes claimed and not yet finished at once.
PASSES_IN_FLIGHT = 4


def start(runtime: SlaRuntime) -> None:
    """Schedule the sla jobs on the runtime."""
    settings, metrics = runtime.settings, runtime.metrics

    lookahead = timedelta(seconds=settings.lookahead_seconds)
    # Passes still running (waiting for their instants, or recording what they fired): token -> clocks held.
    passes: dict[str, int] = {}

    async def fire_pass(claimed: service.Claimed) -> None:
        try:
            fired = await service.fire_claimed(runtime.db, runtime.broker, runtime.book, runtime.clock, claimed)
        except Exception:
            # Its claims expire and a later pass fires the clocks, under the same event ids.
            log.exception("a firing pass failed", extra={"claimed": len(claimed.docs)})
            return
        finally:
            del passes[claimed.token]
        for f in fired:
            metrics.fire_lag.observe(max(f.lag, 0.0))
            if f.urge:
                continue  # counted from sla.urged.v1 by stats (docs/domain.md, "Supervision")
            if f.level == 100:
                metrics.breaches.labels(f.department, f.clock).inc()
            else:
                metrics.warnings.labels(f.department, f.clock, str(f.level)).inc()

    async def fire() -> None:
        # Claiming runs every tick while earlier passes still wait or write, so a pass recording its
        # results never makes the next clocks late; a full claim means a backlog, so claim again at once.
        while len(passes) < PASSES_IN_FLIGHT:
            claimed = await service.claim_due(
                runtime.db, runtime.clock, settings.fire_batch, lookahead, skip=sum(passes.values())
            )
            if not claimed.docs:
                return
            passes[claimed.token] = len(claimed.docs)
            runtime.spawn(fire_pass(claimed), "sla-fire-pass")
            if len(claimed.docs) < settings.fire_batch:
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
