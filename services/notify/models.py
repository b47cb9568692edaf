"""Notify's request and response bodies."""

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from libs.mailboxes import MAILBOX_SCHEMA, mailbox
from libs.phones import PHONE_SCHEMA, e164
from services.notify.targets import WEBHOOK_URL


class QuietHours(BaseModel):
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["22:00"])
    end: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["08:00"])


_WEBHOOK_URL = re.compile(WEBHOOK_URL)


class Subscription(BaseModel):
    """How a member of staff wants to be told; every field optional."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "webhook_url": "https://dept.example.org/appeals-hook",
                    "webhook_secret": "a-long-random-secret",
                    "email": "head@example.org",
                    "quiet_hours": {"start": "22:00", "end": "08:00"},
                    "language": "zh",
                }
            ]
        },
    )

    webhook_url: str | None = Field(
        default=None,
        max_length=500,
        description="Where each notification is posted: https to a public address, or http or https into a network "
        "the operators allow (403 otherwise, said again at every delivery). A name that does not resolve yet is "
        "taken: each delivery resolves it.",
        json_schema_extra={"pattern": WEBHOOK_URL},
    )
    webhook_secret: str | None = Field(
        default=None, min_length=16, max_length=200, description="Signs each webhook body (HMAC-SHA256)."
    )
    email: Annotated[str | None, AfterValidator(mailbox)] = Field(
        default=None, max_length=254, json_schema_extra=MAILBOX_SCHEMA
    )
    phone: Annotated[str | None, AfterValidator(lambda raw: None if raw is None else e164(raw))] = Field(
        default=None, max_length=32, json_schema_extra=PHONE_SCHEMA
    )
    wechat_openid: str | None = Field(default=None, max_length=64)
    quiet_hours: QuietHours | None = Field(default=None, description="Non-urgent messages wait until the end.")
    language: str = Field(default="zh", pattern=r"^(zh|en)$")

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _webhook_scheme(cls, value: Any) -> Any:
        """The form of the URL (`WEBHOOK_URL`), saying what is wrong with another scheme. Only the form here: where
        it leads is checked by the view, resolved as a delivery resolves it."""
        if isinstance(value, str) and not value[:8].lower().startswith(("https://", "http://")):
            raise ValueError("must be an https URL")
        if isinstance(value, str) and not _WEBHOOK_URL.fullmatch(value):
            raise ValueError("must name a host (a name or an IPv4 address), a port in 0-65535 if any, no user name")
        return value


class SubscriptionView(Subscription):
    recipient: str
    webhook_secret: str | None = Field(default=None, description="Never shown; '***' when set.")


class DeliveryView(BaseModel):
    """One notification: no message body or full address is shown."""

    notification_id: str
    event_type: str
    recipient: str
    audience: str
    channel: str
    to: str = Field(description="Masked address.", examples=["138****8000"])
    status: str = Field(examples=["delivered"], description="held, pending, retrying, delivered or failed")
    attempts: int
    subject: str
    created_at: datetime
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None
