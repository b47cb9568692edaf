"""Web settings, from WEB_* environment variables."""

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from libs.settings import DEV_SECRET, ServiceSettings


class WebSettings(ServiceSettings):
    service_name: ClassVar[str] = "web"
    model_config = SettingsConfigDict(env_prefix="WEB_", extra="ignore")

    http_port: int = 8007
    intake_url: str = Field(default="http://127.0.0.1:8001", description="Intake's API, as web reaches it.")
    router_url: str = Field(default="http://127.0.0.1:8002", description="Router's API, as web reaches it.")
    stats_url: str = Field(
        default="http://127.0.0.1:8005",
        description="Stats' API, as web reaches it: the workbench reads the month's scorecard there with the "
        "clerk's department key.",
    )
    channel_key: SecretStr = Field(
        default=SecretStr(""), description="The `channel:web` API key: the portal submits with it; never shown."
    )
    session_secret: str = Field(
        default=DEV_SECRET, description="Seals the clerks' session cookies and the forms' CSRF tokens."
    )
    session_hours: float = Field(default=8.0, gt=0, description="A clerk signs in again after this long.")
    idle_minutes: float = Field(default=30.0, gt=0, description="... or after this long without a request.")
    upstream_timeout_seconds: float = Field(default=10.0, gt=0, description="How long a page waits for an API.")
