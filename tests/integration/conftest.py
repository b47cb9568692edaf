"""Intake and router running in this process against the real broker and database."""

from dataclasses import dataclass

import httpx
import pytest
from asgi_lifespan import LifespanManager

from libs.ids import new_id
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from tests.helpers import MovableClock


@dataclass
class Platform:
    intake: httpx.AsyncClient
    router: httpx.AsyncClient
    keys: dict[str, str]
    bootstrap: str
    router_runtime: object
    intake_runtime: object
    clock: MovableClock

    def key(self, scope: str) -> dict[str, str]:
        return {"X-Api-Key": self.keys[scope]}


@pytest.fixture(scope="session")
async def platform(real_servers, demo_keys):
    """Intake and router apps sharing one event loop, each with its own database."""
    keys, key_file = demo_keys
    run = new_id().lower()
    common = {
        "kafka_bootstrap_servers": real_servers.bootstrap,
        "mongodb_uri": real_servers.mongodb_uri,
        "api_keys_file": key_file,
        "environment": "test",
        "status_token_secret": "integration-test-status-token-secret-0123456789",
    }
    clock = MovableClock()
    intake_app = create_intake(
        IntakeSettings(**common, mongodb_database=f"intake_{run}", consumer_group=f"intake-{run}")
    )
    router_app = create_router(
        RouterSettings(
            **{k: v for k, v in common.items() if k != "status_token_secret"},
            mongodb_database=f"router_{run}",
            consumer_group=f"router-{run}",
            sweep_interval_seconds=0.3,
        ),
        clock=clock,
    )
    async with (
        LifespanManager(intake_app, startup_timeout=60),
        LifespanManager(router_app, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(intake_app), base_url="http://intake") as intake,
        httpx.AsyncClient(transport=httpx.ASGITransport(router_app), base_url="http://router") as router,
    ):
        yield Platform(
            intake, router, keys, real_servers.bootstrap, router_app.state.runtime, intake_app.state.runtime, clock
        )
