"""Intake sheds submissions with 503 and Retry-After while routing is too far behind, on the real broker."""

import asyncio
import re

import httpx
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager

from libs.contract import APPEALS_SUBMITTED_V2
from libs.ids import new_id
from libs.kafka_admin import partitions_of
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.helpers import appeal_body, open311_form


async def commit_to_the_end(bootstrap: str, group: str) -> None:
    """Act as the watched group having read every new appeal so far."""
    partitions = await partitions_of(bootstrap, [APPEALS_SUBMITTED_V2])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def test_submissions_are_shed_while_routing_is_behind_and_accepted_once_it_catches_up(real_servers, demo_keys):
    keys, key_file = demo_keys
    run = new_id().lower()
    group = f"shed-{run}.submitted"
    await commit_to_the_end(real_servers.bootstrap, group)
    settings = IntakeSettings(
        kafka_bootstrap_servers=real_servers.bootstrap,
        mongodb_uri=real_servers.mongodb_uri,
        mongodb_database=f"intake_{run}",
        consumer_group=f"intake-{run}",
        api_keys_file=key_file,
        environment="test",
        status_token_secret="shedding-test-status-token-secret-0123456789",
        shed_backlog_records=2,
        shed_groups=[group],
        shed_check_seconds=0.2,
    )
    app = create_app(settings)
    wechat = {"X-Api-Key": keys["channel:wechat"]}
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://intake") as intake,
    ):
        accepted, shed = [], None
        for _ in range(40):  # nobody reads for the group: its backlog only grows
            body = appeal_body()
            r = await intake.post("/v1/appeals", json=body, headers=wechat)
            if r.status_code == 503:
                shed = (r, body)
                break
            assert r.status_code == 202, r.text
            accepted.append(r.json()["appeal_id"])
            await asyncio.sleep(0.1)
        assert shed is not None, "intake never shed while routing read nothing"
        r, body = shed
        assert len(accepted) >= 2, "shed before the backlog passed its limit"
        assert r.headers["content-type"] == "application/problem+json"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert f"{group} has" in r.json()["detail"]
        assert await app.state.runtime.db.appeals.count_documents({"channel_ref": body["channel_ref"]}) == 0

        # The Open311 facade sheds the same way.
        form = open311_form(1, api_key=keys["channel:hotline_12345"], jurisdiction_id="shenzhen")
        r311 = await intake.post("/open311/v2/requests.json", data=form)
        assert r311.status_code == 503, r311.text
        assert 1 <= int(r311.headers["Retry-After"]) <= 60

        # Routing catches up: the same submission is then accepted.
        await commit_to_the_end(real_servers.bootstrap, group)
        for _ in range(50):
            r = await intake.post("/v1/appeals", json=body, headers=wechat)
            if r.status_code != 503:
                break
            await asyncio.sleep(0.2)
        assert r.status_code == 202, r.text
        shed_count = re.search(r"^appeals_shed_total ([0-9.]+)$", (await intake.get("/metrics")).text, re.MULTILINE)
        assert shed_count and float(shed_count.group(1)) >= 2
