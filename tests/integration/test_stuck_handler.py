"""A handler stuck on an await is cancelled and its message retried, on the real broker."""

import asyncio
import logging
import traceback
from typing import ClassVar

import pytest
from faststream.kafka import KafkaBroker

from libs.contract import Consumer
from libs.envelopes import ActionRejectedEvent, AssignmentCreatedEvent, AssignmentWithdrawnEvent, SlaAlertEvent
from libs.events import ActionRejected
from libs.ids import new_id
from libs.kafka.consuming import subscribe
from libs.kafka.publishing import encode, make_event
from libs.kafka.topics import ensure_topics
from libs.kinds import EventType
from libs.settings import ServiceSettings

# What a department's topic carries: the handler here reads one, as a department's own system would.
OnDepartmentTopic = AssignmentCreatedEvent | AssignmentWithdrawnEvent | ActionRejectedEvent | SlaAlertEvent


class StuckSettings(ServiceSettings):
    service_name: ClassVar[str] = "stuck"


def an_event():
    data = ActionRejected(appeal_id=new_id(), department="finance", action="accept", status=409, detail="test")
    return make_event("appeals/router", EventType.action_rejected, data.appeal_id, data)


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
async def test_a_handler_waiting_past_its_limit_is_cancelled_logged_and_retried(real_servers, batched, caplog):
    topic = f"dept.stuck-{new_id().lower()}.v1"
    await ensure_topics(real_servers.bootstrap, [topic], partitions=1)
    settings = StuckSettings(
        kafka_bootstrap_servers=real_servers.bootstrap,
        handler_timeout_seconds=1,
        consumer_group=f"stuck-{new_id().lower()}",
    )
    event = an_event()
    calls: list[str] = []
    done = asyncio.Event()
    never = asyncio.Event()

    async def handle(ids: list[str]) -> None:
        if event.id not in ids:
            return
        calls.append(event.id)
        if len(calls) == 1:
            await never.wait()  # the first delivery hangs, as on a reply that never comes
        done.set()

    broker = KafkaBroker(real_servers.bootstrap)
    reader = Consumer("stuck", "test", (topic,), "reads a department topic", batch=batched)
    if batched:

        async def on_stuck(events: list[OnDepartmentTopic]) -> None:
            await handle([e.id for e in events])
    else:

        async def on_stuck(event: OnDepartmentTopic) -> None:
            await handle([event.id])

    subscribe(broker, settings, reader, on_stuck)
    with caplog.at_level(logging.WARNING, logger="libs.kafka"):
        async with broker:
            await broker.start()
            await broker.publish(encode(event), topic=topic, key=event.subject.encode())
            await asyncio.wait_for(done.wait(), 60)
    assert calls == [event.id, event.id], "cancelled after its limit, then delivered again"
    stuck = [r for r in caplog.records if "retried" in r.getMessage() and r.exc_info]
    assert stuck, "the cancelled handler is logged"
    trace = "".join(traceback.format_exception(*stuck[0].exc_info))
    assert "TimeoutError" in trace and "never.wait()" in trace, "the log says where it waited"
