"""The delivery channels: signed webhooks, SMTP e-mail, and SMS / WeChat through HTTP providers."""

import hashlib
import hmac
import json
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

SIGNATURE_HEADER = "X-Appeals-Signature"
DELIVERY_HEADER = "X-Appeals-Delivery"


class DeliveryError(Exception):
    """An attempt failed; `permanent` ones are not retried."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    notification_id: str
    to: str
    subject: str
    body: str
    template: str
    language: str
    payload: dict[str, Any]
    secret: str | None = None


def sign(secret: str, body: bytes) -> str:
    """The signature header value for a webhook body: HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise DeliveryError(f"{what} answered {response.status_code}")
    if response.status_code >= 400:
        raise DeliveryError(f"{what} refused the message with {response.status_code}", permanent=True)


async def send_webhook(http: httpx.AsyncClient, message: Message) -> None:
    """POST the JSON payload, signed with the recipient's secret; the delivery id lets receivers deduplicate."""
    body = json.dumps(message.payload, ensure_ascii=False, default=str).encode()
    headers = {"content-type": "application/json", DELIVERY_HEADER: message.notification_id}
    if message.secret:
        headers[SIGNATURE_HEADER] = sign(message.secret, body)
    try:
        response = await http.post(message.to, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from exc
    _check(response, "webhook")


async def send_email(host: str, port: int, sender: str, message: Message, timeout: float) -> None:
    """Send over SMTP; the Message-ID is the notification id, so a resend is recognisably the same mail."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, message.to, message.subject
    mail["Message-ID"] = f"<{message.notification_id.replace(':', '.')}@appeals.local>"
    mail[DELIVERY_HEADER] = message.notification_id
    mail.set_content(message.body)
    try:
        await aiosmtplib.send(mail, hostname=host, port=port, timeout=timeout)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError("mail server refused the recipient", permanent=True) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"mail server: {type(exc).__name__}") from exc


async def send_provider(http: httpx.AsyncClient, endpoint: str, api_key: str, kind: str, message: Message) -> None:
    """SMS or WeChat template message through the configured provider's HTTP API."""
    if not endpoint:
        raise DeliveryError(f"no {kind} provider is configured", permanent=True)
    if kind == "wechat":
        body = {
            "touser": message.to,
            "template_id": f"appeals_{message.template}",
            "data": {"first": {"value": message.subject}, "remark": {"value": message.body}},
            "client_msg_id": message.notification_id,
        }
    else:
        body = {
            "to": message.to,
            "template": message.template,
            "language": message.language,
            "text": f"{message.subject} {message.body}",
            "client_ref": message.notification_id,
        }
    try:
        response = await http.post(
            endpoint,
            json=body,
            headers={"Authorization": f"Bearer {api_key}", DELIVERY_HEADER: message.notification_id},
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{kind} provider unreachable: {type(exc).__name__}") from exc
    _check(response, f"{kind} provider")
