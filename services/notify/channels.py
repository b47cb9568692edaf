"""The delivery channels: signed webhooks, SMTP e-mail, and SMS / WeChat through HTTP providers.

HTTP goes through aiohttp: notify posts a few requests for every appeal, and aiohttp's client
costs about 0.1 ms of CPU per request here where httpx's cost 1.7 ms (docs/benchmarks.md).
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiohttp
import aiosmtplib

IDLE_SECONDS = 4.0
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


class Mailer:
    """SMTP connections kept open and reused, at most `size` at once.

    A session per mail (connect, EHLO, the mail, QUIT) was 18 % of notify's samples
    at 20 appeals/s (docs/benchmarks.md). A connection that failed is closed, never reused;
    one the server closed while idle is found out by the next mail, which is then sent
    once more on a new connection.
    """

    def __init__(self, host: str, port: int, timeout: float, size: int = 8) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(size)

    async def send(self, mail: EmailMessage) -> None:
        """Send one mail on an idle connection or a new one; the errors are aiosmtplib's and OSError."""
        async with self._slots:
            smtp = self._idle.pop() if self._idle else None
            while True:
                reused = smtp is not None
                if smtp is None:
                    smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout)
                    await smtp.connect()
                try:
                    await smtp.send_message(mail)
                except aiosmtplib.SMTPServerDisconnected:
                    smtp.close()
                    if not reused:
                        raise
                    smtp = None  # closed by the server while idle: once more on a new connection
                    continue
                except BaseException:
                    smtp.close()
                    raise
                self._idle.append(smtp)
                return

    async def close(self) -> None:
        """Say goodbye on every idle connection (when the service stops)."""
        idle, self._idle = self._idle, []
        for smtp in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()


@dataclass
class Senders:
    """What every delivery shares: the HTTP client and the SMTP connections."""

    http: aiohttp.ClientSession
    mailer: Mailer

    async def close(self) -> None:
        """Close the HTTP client and the idle SMTP connections (when the service stops)."""
        await self.http.close()
        await self.mailer.close()


def open_senders(smtp_host: str, smtp_port: int, smtp_connections: int, timeout_seconds: float) -> Senders:
    """The clients deliveries share, opened inside the running loop."""
    # An idle connection is reused for 4 s at most (aiohttp keeps one 15 s): uvicorn, Node and Apache close theirs
    # after 5 s, and a request sent on a connection the receiver is closing fails, an attempt lost for nothing.
    connector = aiohttp.TCPConnector(keepalive_timeout=IDLE_SECONDS)
    http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_seconds))
    return Senders(http, Mailer(smtp_host, smtp_port, timeout_seconds, smtp_connections))


async def _post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], what: str) -> None:
    """POST `body`; a DeliveryError says why it did not arrive, permanent when the receiver refused it."""
    try:
        async with http.post(url, data=body, headers=headers) as response:
            status = response.status
            await response.read()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a URL it cannot use
        raise DeliveryError(f"{what} unreachable: {type(exc).__name__}") from exc
    if status >= 500 or status in (408, 429):
        raise DeliveryError(f"{what} answered {status}")
    if status >= 400:
        raise DeliveryError(f"{what} refused the message with {status}", permanent=True)


async def send_webhook(http: aiohttp.ClientSession, message: Message) -> None:
    """POST the JSON payload, signed with the recipient's secret; the delivery id lets receivers deduplicate."""
    body = json.dumps(message.payload, ensure_ascii=False, default=str).encode()
    headers = {"content-type": "application/json", DELIVERY_HEADER: message.notification_id}
    if message.secret:
        headers[SIGNATURE_HEADER] = sign(message.secret, body)
    await _post(http, message.to, body, headers, "webhook")


async def send_email(mailer: Mailer, sender: str, message: Message) -> None:
    """Send over SMTP; the Message-ID is the notification id, so a resend is recognisably the same mail."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, message.to, message.subject
    mail["Message-ID"] = f"<{message.notification_id.replace(':', '.')}@appeals.local>"
    mail[DELIVERY_HEADER] = message.notification_id
    mail.set_content(message.body)
    try:
        await mailer.send(mail)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError("mail server refused the recipient", permanent=True) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"mail server: {type(exc).__name__}") from exc


async def send_provider(http: aiohttp.ClientSession, endpoint: str, api_key: str, kind: str, message: Message) -> None:
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
    headers = {
        "content-type": "application/json",
        "Authorization": f"Bearer {api_key}",
        DELIVERY_HEADER: message.notification_id,
    }
    await _post(http, endpoint, json.dumps(body, ensure_ascii=False).encode(), headers, f"{kind} provider")
