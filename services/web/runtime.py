"""What web's pages share in one process: settings, the city's names, the APIs, the session sealer."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from libs.auth import KeyStore
from libs.config import (
    AssessmentConfig,
    Catalogue,
    City,
    SupervisionConfig,
    load_assessment,
    load_catalogue,
    load_city,
    load_supervision,
)
from services.web.session import Sealer
from services.web.settings import WebSettings
from services.web.upstream import Upstream


@dataclass
class WebRuntime:
    """Web has no database and no broker: only the APIs of intake, router and stats behind it, and the key file."""

    settings: WebSettings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    city: City = field(init=False)
    catalogue: Catalogue = field(init=False)
    supervision: SupervisionConfig = field(init=False)  # what the pages say of extensions' limits
    assessment: AssessmentConfig = field(init=False)  # what the pages say of return visits and redos
    sealer: Sealer = field(init=False)
    upstream: Upstream = field(init=False)
    keys: KeyStore = field(init=False)  # the platform's key file: which keys are a department's

    def __post_init__(self) -> None:
        self.city = load_city(self.settings.config_dir)
        self.catalogue = load_catalogue(self.settings.config_dir)
        self.supervision = load_supervision(self.settings.config_dir, self.city)
        self.assessment = load_assessment(self.settings.config_dir, self.city)
        self.sealer = Sealer(self.settings.session_secret)
        self.keys = KeyStore.from_file(self.settings.api_keys_file)
        self.upstream = Upstream(
            self.settings.intake_url,
            self.settings.router_url,
            self.settings.stats_url,
            self.settings.channel_key.get_secret_value(),
            self.settings.upstream_timeout_seconds,
        )


async def get_web_runtime(request: Request) -> WebRuntime:
    """FastAPI dependency: web's runtime."""
    runtime: WebRuntime = request.app.state.runtime
    return runtime


WebRuntimeDep = Annotated[WebRuntime, Depends(get_web_runtime)]
