"""Rebuild the projections from zero by replaying every projected topic from its beginning.

`python -m services.stats rebuild --database stats_check` builds a second copy
while stats runs, to compare. Without `--database` it rebuilds stats' own
database: stop every stats replica first. The consumer group is left where it
was: when stats starts again it reads what the replay already counted, and the
projection's per-document event ids and per-bucket offsets make that a no-op.
The replay writes the day buckets of every day it sees, so a database that
predates them, or whose time zone changed, reads whole days from them again.
"""

import argparse
import asyncio
import logging
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from libs.config import load_city
from libs.contract import parse_event
from libs.kafka.access import KafkaAccess
from libs.kafka.consuming import failure_reason, is_outage
from libs.kafka_admin import first_records, partitions_of
from libs.logging import configure_logging
from libs.mongo import make_client
from services.stats import service
from services.stats.handlers import PROJECTED
from services.stats.runtime import city_zone
from services.stats.settings import StatsSettings

log = logging.getLogger(__name__)
_EPOCH, _FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


async def rebuild(settings: StatsSettings, database: str, batch_size: int = 2000) -> dict[str, Any]:
    """Drop `database`, replay the topics until caught up with their ends; returns what was done."""
    client = make_client(settings)
    consumer = AIOKafkaConsumer(
        **KafkaAccess.of(settings).client_options(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="appeals-stats-rebuild",
    )
    started = time.monotonic()
    tz = city_zone(settings, load_city(settings.config_dir))
    await consumer.start()
    try:
        await client.drop_database(database)
        db = client[database]
        await service.ensure_indexes(db)
        await service.prepare_days(db, tz, datetime.now(UTC))
        partitions = await partitions_of(KafkaAccess.of(settings), PROJECTED.topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        replayed = skipped = 0
        # Up to the ends as they are now: what comes later is live stats' to count (and counted once if both do).
        target = await consumer.end_offsets(partitions)
        firsts = partial(first_records, KafkaAccess.of(settings))
        while any([await consumer.position(tp) < target[tp] for tp in partitions]):
            fetched = await consumer.getmany(*partitions, timeout_ms=1000, max_records=batch_size)
            batch = []
            for records in fetched.values():
                for record in records:
                    try:
                        batch.append(
                            service.Delivered(
                                record.topic, record.partition, record.offset, parse_event(record.value, record.topic)
                            )
                        )
                    except (ValidationError, ValueError):
                        skipped += 1  # the live consumer sent it to the .dlq already
            if batch:
                replayed += len(batch)
                try:
                    await service.project(db, batch, tz, firsts)
                except Exception as exc:
                    if is_outage(exc):
                        raise
                    # One record the live consumer dead-lettered fails here too: count the rest without it.
                    for item in batch:
                        try:
                            await service.project(db, [item], tz, firsts)
                        except Exception as alone:
                            if is_outage(alone):
                                raise
                            log.warning("left out an event stats cannot count", extra={"reason": failure_reason(alone)})
                            skipped += 1
                            replayed -= 1
        totals = service.add_up(await service.hourly(db, "h:", _EPOCH, _FAR))
        return {
            "database": database,
            "events": replayed,
            "skipped": skipped,
            "appeals": totals.get("n", 0),
            "resolved": totals.get("resolved", 0),
            "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        await consumer.stop()
        await client.close()


def main(argv: list[str]) -> None:
    """Command line of `python -m services.stats rebuild`."""
    settings = StatsSettings()
    parser = argparse.ArgumentParser(prog="python -m services.stats rebuild", description=__doc__)
    parser.add_argument(
        "--database",
        default=settings.mongodb_database,
        help="Database to rebuild into (default: stats' own; stop stats first).",
    )
    args = parser.parse_args(argv)
    configure_logging("stats", settings.log_level)
    result = asyncio.run(rebuild(settings, args.database))
    print(" ".join(f"{k}={v}" for k, v in result.items()))
