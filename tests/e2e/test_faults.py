"""Faults on the running stack: the database stopped and restarted on the same data; intake killed mid-run."""

import asyncio
import time

import httpx
import pytest

from libs.contract import consumer, dead_letter_topic
from tests.helpers import appeal_body, assert_routed_once, fresh_stack, read_topic

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Intake and router on a MongoDB that keeps its data on disk, so it can be stopped and started again."""
    s = fresh_stack(tmp_path_factory, "fault-stack", mongo_storage=None, only=("intake", "router"))
    yield s
    s.stop()


def post(stack, body) -> httpx.Response:
    return httpx.post(
        stack.url("intake") + "/v1/appeals", json=body, headers={"X-Api-Key": stack.keys["channel:web"]}, timeout=30
    )


def post_until_accepted(stack, body, timeout=90.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        r = post(stack, body)
        if r.status_code == 202:
            return r.json()["appeal_id"]
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        assert time.monotonic() < deadline, "intake never came back"
        time.sleep(1)


async def test_database_stopped_then_restarted_on_the_same_data_loses_and_doubles_nothing(stack):
    before = [post_until_accepted(stack, appeal_body()) for _ in range(10)]
    stack.stop_databases()
    during = appeal_body()
    refused = post(stack, during)
    assert refused.status_code == 503, "no 202 without the write"
    assert refused.headers["content-type"] == "application/problem+json" and refused.headers["retry-after"]
    await asyncio.sleep(3)  # router's consumers meet the dead database too, and must not commit past it
    stack.start_databases()
    retried = post_until_accepted(stack, during)
    assert post_until_accepted(stack, during) == retried, "the retry made one appeal"
    after = [post_until_accepted(stack, appeal_body()) for _ in range(10)]
    await assert_routed_once(stack.kafka_access(), before + [retried] + after, timeout=120)
    # An unreachable database is an outage, never a record's fault: the records waited, none was set aside.
    for topic in (*consumer("intake", "lifecycle").topics, *consumer("router", "submitted").topics):
        assert not await read_topic(stack.kafka_access(), dead_letter_topic(topic), lambda e: True, timeout=1), topic
    for name in ("intake", "router"):
        assert "dead-lettered" not in (stack.data_dir / f"{name}.log").read_text(), name


async def test_intake_killed_mid_run_every_accepted_appeal_is_routed_once(stack):
    bodies = [appeal_body() for _ in range(40)]
    accepted = {}
    for n, body in enumerate(bodies):
        if n == 15:
            stack.kill_service("intake")
            stack.start_service("intake")
            stack.wait_ready("intake")
        accepted[body["channel_ref"]] = post_until_accepted(stack, body)
    # A client that saw no answer retries: the same channel_ref gives the same appeal.
    for body in bodies[:20]:
        assert post_until_accepted(stack, body) == accepted[body["channel_ref"]]
    await assert_routed_once(stack.kafka_access(), list(accepted.values()), timeout=120)
