"""The embedded Kafka's users: a log formatted before users existed gets them and keeps its records; a department
added later gets its user and ACLs at the next start."""

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack import servers
from devstack.stack import Stack
from libs.contract import department_actions_topic
from libs.kafka.topics import ensure_topics
from libs.kafka_admin import department_principal, ensure_principals
from tests.helpers import answered_anonymously


async def first_value(access, topic: str) -> bytes:
    consumer = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(30):
            while True:
                if records := (await consumer.getmany(tp, timeout_ms=500)).get(tp):
                    return records[0].value
    finally:
        await consumer.stop()


async def test_a_log_formatted_without_users_gets_them_and_keeps_its_records(tmp_path):
    stack = Stack.on_free_ports(tmp_path)
    plain = servers.start_kafka(stack.kafka_port, stack.kafka_controller_port, tmp_path / "kafka", tmp_path / "k.log")
    try:
        await ensure_topics(stack.bootstrap, ["kept.v1"], partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await producer.start()
        await producer.send_and_wait("kept.v1", b"written before users existed")
        await producer.stop()
    finally:
        servers.stop(plain)
    codes = ["tax"]
    assert not stack.load_kafka_passwords(codes), "no credentials yet: the log was formatted without users"
    await asyncio.to_thread(stack.start_kafka, True)
    try:
        assert not answered_anonymously(stack.kafka_port, "metadata")
        assert await first_value(stack.kafka_access(), "kept.v1") == b"written before users existed"
        # A department the city adds later: its user at the next start, and only its topics.
        stack.kafka_passwords.update(servers.kafka_passwords([department_principal("customs")]))
        await ensure_topics(stack.kafka_access(), [department_actions_topic("customs")])
        users = {u: p for u, p in stack.kafka_passwords.items() if u != "controller"}
        assert await ensure_principals(stack.kafka_access(), users, [*codes, "customs"]) == 1
        customs = stack.kafka_access(department_principal("customs"))
        producer = AIOKafkaProducer(**customs.client_options(), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(department_actions_topic("customs"), b"{}")
        finally:
            await producer.stop()
        assert await ensure_principals(stack.kafka_access(), users, [*codes, "customs"]) == 0, "each user once"
    finally:
        servers.stop(stack.kafka)
