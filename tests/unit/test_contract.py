"""The Kafka contract's names are the wire: a renamed topic is another topic, a renamed group rereads everything."""

import pytest

from libs.contract import (
    CONSUMERS,
    DEPARTMENT_ACTIONS,
    DEPARTMENT_TOPIC,
    SERVICE_NAMES,
    TOPICS,
    all_topics,
    consumer,
    consumers_of,
    department_of,
    partitions_for,
    topic,
    topic_config,
)
from libs.envelopes import (
    AppealContactErasedEvent,
    AppealContactEvent,
    AppealFiledEvent,
    AppealLifecycleEvent,
    AppealSubmittedEvent,
    SlaClockEvent,
    SlaReportedEvent,
)
from libs.kafka.consuming import subscribe
from libs.kinds import EventType
from libs.settings import ServiceSettings


def test_topic_and_group_names_are_the_ones_running_in_production():
    assert [t.name for t in TOPICS] == [
        "appeals.submitted.v1",
        "appeals.submitted.v2",
        "appeals.contacts.v1",
        "appeals.lifecycle.v1",
        "appeals.actions.v1",
        "appeals.company.v1",
        "sla.events.v1",
        "sla.events.v2",
        "notify.deliveries.v1",
        "enterprises.v1",
        "company.messages.v1",
    ]
    assert [c.group for c in CONSUMERS] == [
        "intake.lifecycle",
        "intake.clocks",
        "router.submitted",
        "router.action",
        "router.company",
        "router.clocks",
        "sla.lifecycle",
        "notify.event",
        "notify.enterprises",
        "notify.messages",
        "stats.project",
    ]
    assert SERVICE_NAMES == ("intake", "router", "sla", "notify", "stats")


def test_every_consumer_reads_contract_topics_and_every_topic_has_a_reader():
    names = {t.name for t in TOPICS} | {DEPARTMENT_ACTIONS.name}
    for entry in CONSUMERS:
        assert set(entry.topics) <= names, entry.group
        assert entry.service in SERVICE_NAMES
    assert {t for c in CONSUMERS for t in c.topics} == names
    every = (*TOPICS, DEPARTMENT_TOPIC, DEPARTMENT_ACTIONS)
    assert all(set(t.producers) <= {*SERVICE_NAMES, "departments"} for t in every)


def test_every_event_type_has_one_home_topic_and_department_topics_carry_copies():
    homes = [t for entry in TOPICS for t in entry.carries]
    assert sorted(homes) == sorted(set(homes))
    assert set(EventType) == set(homes) | set(DEPARTMENT_TOPIC.carries)
    assert set(DEPARTMENT_TOPIC.carries) - set(homes) == {
        EventType.assignment_created,
        EventType.assignment_withdrawn,
        EventType.action_rejected,
    }


def test_topics_are_named_and_configured_from_the_table():
    assert topic("dept.nanshan-finance.v1") is DEPARTMENT_TOPIC
    assert topic("dept.nanshan-finance.actions.v1") is DEPARTMENT_ACTIONS
    assert department_of("dept.nanshan-finance.actions.v1") == department_of("dept.nanshan-finance.v1")
    assert department_of("dept.nanshan-finance.v1") == "nanshan-finance" and department_of("appeals.actions.v1") is None
    assert (
        partitions_for("dept.nanshan-finance.actions.v1", 24) == 1 and partitions_for("appeals.lifecycle.v1", 24) == 24
    )
    assert topic("appeals.lifecycle.v1.dlq") is None and topic("elsewhere") is None
    everything = all_topics(["nanshan-finance"])
    assert "dept.nanshan-finance.v1" in everything and "sla.events.v1.dlq" in everything
    assert "dept.nanshan-finance.actions.v1" in everything and "dept.nanshan-finance.actions.v1.dlq" in everything
    # Platform topics are kept for good and hold nothing personal. Codes and lost links are void in minutes;
    # what holds a contact that cannot be erased one by one (department topics, dead letters) goes with contacts.
    short = {"company.messages.v1", "company.messages.v1.dlq"}
    personal = {"dept.nanshan-finance.v1", *(name for name in everything if name.endswith(".dlq"))} - short
    day, half_year = str(24 * 3600 * 1000), str(180 * 24 * 3600 * 1000)
    assert all(topic_config(name)["retention.ms"] == "-1" for name in set(everything) - short - personal)
    assert {topic_config(name)["retention.ms"] for name in short} == {day}
    assert {topic_config(name)["retention.ms"] for name in personal} == {half_year}
    contacts = topic_config("appeals.contacts.v1")
    assert contacts["cleanup.policy"] == "compact" and contacts["max.compaction.lag.ms"] == day
    assert consumers_of("router") == tuple(c for c in CONSUMERS if c.service == "router")


class _Settings(ServiceSettings):
    pass


def test_a_handler_must_take_what_its_topics_carry():
    from faststream.kafka import KafkaBroker

    broker, settings = KafkaBroker("127.0.0.1:1"), _Settings()

    async def right(
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
        """Takes what notify.event reads."""

    async def narrow(events: list[AppealLifecycleEvent]) -> None:
        """Misses two of the topics."""

    async def single(event: AppealLifecycleEvent) -> None:
        """Not a batch."""

    subscribe(broker, settings, consumer("notify", "event"), right)
    with pytest.raises(TypeError, match="its topics carry"):
        subscribe(broker, settings, consumer("notify", "event"), narrow)
    with pytest.raises(TypeError, match="takes a batch"):
        subscribe(broker, settings, consumer("sla", "lifecycle"), single)
