"""Intake settings, from INTAKE_* environment variables."""

from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field
from pydantic_settings import SettingsConfigDict

from libs.settings import DEV_SECRET, ServiceSettings


def _seconds_if_a_number(value: Any) -> Any:
    """An environment variable is text: "15" means 15 seconds, as a number would."""
    return float(value) if isinstance(value, str) and value.replace(".", "", 1).isdigit() else value


class IntakeSettings(ServiceSettings):
    service_name: ClassVar[str] = "intake"
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")

    http_port: int = 8001
    public_base_url: str = Field(default="", description="Base of status_url; defaults to this server.")
    status_token_secret: str = Field(default=DEV_SECRET, description="Signs status tokens given to companies.")
    follow_url: str = Field(
        default="http://127.0.0.1:8007/appeals/{appeal_id}?token={token}",
        description="The company's page of its appeal (web) that notify's messages link; {appeal_id} and {token} "
        "are filled in. Empty: messages link no page.",
    )
    codes_per_phone_per_minute: int = Field(default=1, ge=1, description="One-time codes a phone may ask for.")
    codes_per_phone_per_hour: int = Field(default=5, ge=1)
    codes_per_address_per_hour: int = Field(default=20, ge=1, description="... and a client address.")
    submissions_per_phone_per_hour: int = Field(
        default=10, ge=1, description="Appeals a public form (a request naming X-Client-Address) may send per phone."
    )
    submissions_per_address_per_hour: int = Field(default=30, ge=1, description="... and per client address.")
    publish_timeout_seconds: float = Field(
        default=5.0, description="How long a submission waits for the broker before answering 503."
    )
    retry_after_seconds: int = 5
    contact_retention: Annotated[timedelta, BeforeValidator(_seconds_if_a_number)] = Field(
        default=timedelta(days=180),
        gt=timedelta(0),
        description="How long after an appeal closes its contact is kept (seconds, or ISO 8601 such as P180D); "
        "then it is erased from every service and from appeals.contacts.v1 (docs/privacy.md).",
    )
    erasure_check_seconds: float = Field(
        default=3600.0, gt=0, description="How often contacts whose retention ended are looked for and erased."
    )
    shed_backlog_records: int = Field(
        default=5000,
        ge=0,
        description="Records a watched consumer group has not read yet (its lag over every topic it reads) above "
        "which intake answers submissions 503 with Retry-After instead of accepting more; 0 never sheds.",
    )
    shed_groups: list[str] = Field(
        default=["router.submitted", "sla.lifecycle", "notify.event"],
        description="The groups whose backlog is watched: routing, the SLA clocks, the company's acknowledgement. "
        "stats is not among them: its figures catch up, and appeals are not refused to keep a dashboard current.",
    )
    shed_check_seconds: float = Field(default=2.0, gt=0, description="How often the backlog is asked of the broker.")
    open311_jurisdiction_id: str = Field(default="shenzhen", description="Open311 jurisdiction_id this serves.")
    open311_contact: str = Field(
        default="Enterprise appeals platform operators, via the 12345 hotline",
        description="Contact line of the Open311 discovery document.",
    )
    stranded_window_minutes: float = Field(
        default=60,
        description="At start, pending appeals submitted this far back are published again, in case "
        "an intake died between storing and publishing one.",
    )
