"""Kafka as the platform runs it: topic settings changed one by one, never wiping an operator's; a quorum of copies
behind acks=all on a cluster of three or more; producers that write a resent batch once."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from devstack.stack import Stack
from libs.contract import APPEALS_SUBMITTED_V2, PERSONAL_RETENTION
from libs.ids import new_id
from libs.kafka.access import DURABLE_WRITES, KafkaAccess
from libs.kafka.topics import ensure_topics, topic_settings
from libs.kafka_admin import ensure_principals


@pytest.mark.parametrize(
    ("replication", "quorum"),
    [(1, None), (2, None), (3, "2"), (5, "4")],
)
def test_min_insync_replicas_is_one_fewer_than_the_copies_from_three_copies_on(replication, quorum):
    settings = topic_settings(APPEALS_SUBMITTED_V2, replication)
    assert settings.get("min.insync.replicas") == quorum
    assert settings["retention.ms"] == "-1", "the contract's own settings stay"


def settings_of(bootstrap: str, topic: str) -> dict[str, str]:
    client = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = client.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    return {key: entry.value for key, entry in future.result(timeout=30).items()}


def set_by_hand(bootstrap: str, topic: str, **values: str) -> None:
    """What an operator does with kafka-configs --alter --add-config: one setting, the others left."""
    client = AdminClient({"bootstrap.servers": bootstrap})
    entries = [
        ConfigEntry(key.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
        for key, value in values.items()
    ]
    (future,) = client.incremental_alter_configs(
        [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)]
    ).values()
    future.result(timeout=30)


async def test_a_topic_s_settings_come_back_to_the_contract_and_an_operator_s_own_setting_stays(real_servers):
    topic = f"settings-{new_id().lower()}.dlq"  # a dead-letter topic: the contract keeps it as long as contacts
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    contract = PERSONAL_RETENTION["retention.ms"]
    assert settings_of(real_servers.bootstrap, topic)["retention.ms"] == contract
    # An operator raises the largest record and, by mistake, shortens the retention.
    set_by_hand(real_servers.bootstrap, topic, max_message_bytes="2000000", retention_ms="1000")
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    after = settings_of(real_servers.bootstrap, topic)
    assert after["retention.ms"] == contract, "the contract's setting comes back"
    assert after["max.message.bytes"] == "2000000", "a setting the contract does not name is left as set"


async def records(access: KafkaAccess, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        got: list[bytes] = []
        async with asyncio.timeout(30):
            while await consumer.position(tp) < end:
                got += [r.value for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])]
        return got
    finally:
        await consumer.stop()


async def test_a_service_s_producer_is_idempotent_on_kafka_with_users_and_a_resent_batch_is_written_once(tmp_path):
    """The embedded Kafka (4.4) with its users and ACLs: intake's principal starts an idempotent producer (the broker
    gives it a producer id without a cluster ACL), and a batch sent again under the same producer id and sequence
    number, as after an answer lost on the way back, is acknowledged without being written a second time."""
    stack = Stack.on_free_ports(tmp_path)
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    had_users = stack.load_kafka_passwords([])
    await asyncio.to_thread(stack.start_kafka, not had_users)
    try:
        await ensure_topics(stack.kafka_access(), [APPEALS_SUBMITTED_V2], partitions=1)
        users = {user: password for user, password in stack.kafka_passwords.items() if user != "controller"}
        await ensure_principals(stack.kafka_access(), users, [])
        intake = stack.kafka_access("intake")
        producer = AIOKafkaProducer(**intake.producer_options("appeals-intake-test"))
        assert DURABLE_WRITES == {"acks": "all", "enable_idempotence": True}
        await producer.start()
        try:
            tp = TopicPartition(APPEALS_SUBMITTED_V2, 0)
            first = await producer.send_and_wait(APPEALS_SUBMITTED_V2, b"first", partition=0)
            assert producer._txn_manager is not None and producer._txn_manager.producer_id >= 0
            # The next batch goes out with the first one's sequence number: to the broker, the same batch again.
            producer._txn_manager._sequence_numbers[tp] = 0
            again = await producer.send_and_wait(APPEALS_SUBMITTED_V2, b"sent again", partition=0)
        finally:
            await producer.stop()
        assert again.offset == first.offset
        assert await records(stack.kafka_access(), APPEALS_SUBMITTED_V2) == [b"first"]
    finally:
        stack.stop()
