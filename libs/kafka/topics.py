"""The platform's topics on a cluster, as the contract has them: created with their partitions and settings, and
their settings kept, changed one by one so that a setting an operator added stays.

`python -m libs.kafka topics` (libs/kafka_admin.py) and the embedded stack run it as the admin principal.
"""

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from libs.contract import PARTITIONS, partitions_for, topic_config
from libs.kafka.access import KafkaAccess, access_of

log = logging.getLogger(__name__)

# Below three copies, requiring more than one in sync would stop every write while one broker is away.
MIN_COPIES_FOR_QUORUM = 3


def partitions_setting() -> int:
    """Partitions per topic for topics created now: KAFKA_PARTITIONS, else the contract's default."""
    value = os.environ.get("KAFKA_PARTITIONS", "").strip() or str(PARTITIONS)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"KAFKA_PARTITIONS must be a whole number of at least 1, not {value!r}")
    return int(value)


def topic_settings(name: str, replication: int) -> dict[str, str]:
    """The settings a topic is created and kept with: its contract entry's and, with three copies or more,
    `min.insync.replicas` one fewer than the copies: acks=all then means at least two copies while one broker may
    be away. With fewer copies the broker's own default (1) stands."""
    settings = dict(topic_config(name))
    if replication >= MIN_COPIES_FOR_QUORUM:
        settings["min.insync.replicas"] = str(replication - 1)
    return settings


async def ensure_topics(
    kafka: KafkaAccess | str, topics: Iterable[str], partitions: int = PARTITIONS, replication: int = 1
) -> None:
    """Create the topics that do not exist yet; give every one the settings of its contract entry.

    Existing topics keep their partitions (adding some would move keys to other
    partitions and break the order of an appeal's events) and their replication;
    their settings are aligned for the copies they have.
    """
    access = access_of(kafka)
    admin = AIOKafkaAdminClient(**access.client_options())
    await admin.start()
    try:
        wanted = list(dict.fromkeys(topics))
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                partitions_for(name, partitions),
                replication,
                topic_configs=topic_settings(name, replication),
            )
            for name in wanted
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            failed = {
                name: message or code for name, code, message in response.topic_errors if code not in (0, 36)
            }  # 36: created meanwhile by another start
            if failed:
                raise RuntimeError(f"Kafka refused to create topics: {failed}")
            await _until_led(admin, [topic.name for topic in missing])
        present = [name for name in wanted if name in existing]
        if present:
            described = {t["topic"]: t["partitions"] for t in await admin.describe_topics(present)}
            copies = {name: len(parts[0]["replicas"]) if parts else replication for name, parts in described.items()}
            await asyncio.to_thread(_align, access, {name: topic_settings(name, copies[name]) for name in present})
            counts = {name: len(parts) for name, parts in described.items()}
            if other := {name: n for name, n in counts.items() if n != partitions_for(name, partitions)}:
                log.warning(
                    "these topics keep the partitions they were created with; docs/scaling.md says how to move",
                    extra={"topics": other, "asked": partitions},
                )
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0) -> None:
    """Wait until every partition of the new `topics` has a leader, so the first client to use them finds them."""
    async with asyncio.timeout(timeout):
        while True:
            described = await admin.describe_topics(topics)
            if all(
                t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)


def _align(access: KafkaAccess, wanted: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Set each topic's settings of `wanted` that differ on the cluster, one by one (IncrementalAlterConfigs): a
    setting the contract does not name is left as an operator set it. Returns what was changed, by topic."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    client = AdminClient({**access.librdkafka(), "client.id": "appeals-topics"})
    described = client.describe_configs([ConfigResource(ResourceType.TOPIC, name) for name in wanted])
    changes: dict[str, dict[str, str]] = {}
    for resource, future in described.items():
        current = {key: entry.value for key, entry in future.result(timeout=30).items()}
        if differing := {k: v for k, v in wanted[resource.name].items() if current.get(k) != v}:
            changes[resource.name] = differing
    if changes:
        resources = [
            ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in set_.items()
                ],
            )
            for name, set_ in changes.items()
        ]
        refused = {}
        for resource, future in client.incremental_alter_configs(resources).items():
            try:
                future.result(timeout=30)
            except Exception as exc:  # KafkaException: the broker's refusal, named with its topic below
                refused[resource.name] = str(exc)
        if refused:
            raise RuntimeError(f"Kafka refused to set topics' settings: {refused}")
        log.info("topic settings aligned with the contract", extra={"topics": sorted(changes)})
    return changes
