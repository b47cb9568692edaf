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
import sys
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from libs.events import parse_event
from libs.kafka import Delivered
from libs.logging import configure_logging
from libs.mongo import make_client
from services.stats import service
from services.stats.handlers import PROJECTED_TOPICS
from services.stats.settings import StatsSettings

MAX_ROUNDS = 3
MAX_QUIET = 10
_EPOCH, _FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


async def rebuild(settings: StatsSettings, database: str, batch_size: int = 2000) -> dict[str, Any]:
    """Drop `database`, replay the topics until caught up with their ends; returns what was done."""
    client = make_client(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="appeals-stats-rebuild")
    started = time.monotonic()
    tz = ZoneInfo(settings.timezone)
    await consumer.start()
    try:
        await client.drop_database(database)
        db = client[database]
        await service.ensure_indexes(db)
        await service.prepare_days(db, tz, datetime.now(UTC))
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for topic in PROJECTED_TOPICS
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        replayed = skipped = quiet = rounds = 0
        target = await consumer.end_offsets(partitions)
        while True:
            fetched = await consumer.getmany(*partitions, timeout_ms=1000, max_records=batch_size)
            batch = []
            for records in fetched.values():
                for record in records:
                    try:
                        batch.append(Delivered(record.topic, record.partition, record.offset,
                                               parse_event(record.value)))
                    except (ValidationError, ValueError):
                        skipped += 1  # the live consumer sent it to the .dlq already
            if batch:
                await service.project(db, batch, tz)
                replayed += len(batch)
            quiet = 0 if fetched else quiet + 1
            positions = {tp: await consumer.position(tp) for tp in partitions}
            # On the embedded Tansu a fetch may return part of a partition with a matching high
            # watermark, so the ends come from ListOffsets; asked again once reached, a few rounds
            # at most so live traffic cannot keep the replay going, and given up on after
            # MAX_QUIET empty fetches, for an end that no fetch reaches.
            if all(positions[tp] >= target[tp] for tp in partitions):
                rounds += 1
                target = await consumer.end_offsets(partitions)
                if rounds > MAX_ROUNDS or all(positions[tp] >= target[tp] for tp in partitions):
                    break
            elif quiet >= MAX_QUIET:
                behind = {f"{tp.topic}:{tp.partition}": target[tp] - positions[tp] for tp in partitions
                          if positions[tp] < target[tp]}
                print(f"stopping: no records come although ListOffsets says more: {behind}", file=sys.stderr)
                break
        totals = service.add_up(await service.hourly(db, "h:", _EPOCH, _FAR))
        return {"database": database, "events": replayed, "skipped": skipped, "appeals": totals.get("n", 0),
                "resolved": totals.get("resolved", 0), "seconds": round(time.monotonic() - started, 1)}
    finally:
        await consumer.stop()
        await client.close()


def main(argv: list[str]) -> None:
    """Command line of `python -m services.stats rebuild`."""
    settings = StatsSettings()
    parser = argparse.ArgumentParser(prog="python -m services.stats rebuild", description=__doc__)
    parser.add_argument("--database", default=settings.mongodb_database,
                        help="Database to rebuild into (default: stats' own; stop stats first).")
    args = parser.parse_args(argv)
    configure_logging("stats", settings.log_level)
    result = asyncio.run(rebuild(settings, args.database))
    print(" ".join(f"{k}={v}" for k, v in result.items()))


