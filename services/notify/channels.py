"""The delivery channels: signed webhooks, SMTP e-mail, and SMS / WeChat through HTTP providers.

HTTP goes through aiohttp: notify posts a few requests for every appeal, and aiohttp's client
costs about 0.1 ms of CPU per request here where httpx's cost 1.7 ms (docs/benchmarks.md).

A webhook's URL is chosen by a department key, so what its target answered stays with
the operators (a log line with the status class): the caller learns that the target
was refused (services/notify/targets.py) or unreachable, never a status code or a body.
No redirect is followed, on any channel: a 3xx is a failed attempt.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiohttp
import aiosmtplib
from aiohttp.abc import AbstractResolver
from yarl import URL

from services.notify import targets

log = logging.getLogger(__name__)

IDLE_SECONDS = 4.0
SIGNATURE_HEADER = "X-Appeals-Signature"
DELIVERY_HEADER = "X-Appeals-Delivery"
# What a webhook's caller is told of a failure that is not a refusal: no status, no body, no exception.
WEBHOOK_UNREACHABLE = "webhook unreachable"
WEBHOOK_REFUSED = "webhook refused"
# An answer is read this far at most (a connection whose answer is left unread is closed, not reused): a
# webhook's target is anyone's server, and a sender holding a long answer in memory is its to fill.
ANSWER_BYTES = 64 * 1024

# Why a webhook URL cannot be judged yet: its name does not resolve (now).
UNRESOLVED = "has a host that does not resolve"


class DeliveryError(Exception):
    """An attempt failed; `permanent` ones are not retried. `reason` is what callers see: no status code."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class TargetRefused(DeliveryError):
    """The target may not be reached (its scheme, or the class of every address it resolves to)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, permanent=True)


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


def _session(
    timeout_seconds: float, resolver: AbstractResolver | None = None, tls: ssl.SSLContext | None = None
) -> aiohttp.ClientSession:
    # An idle connection is reused for 4 s at most (aiohttp keeps one 15 s): uvicorn, Node and Apache close theirs
    # after 5 s, and a request sent on a connection the receiver is closing fails, an attempt lost for nothing.
    # With a resolver of ours, every new connection asks it (no cache of aiohttp's between check and connect).
    connector = aiohttp.TCPConnector(
        keepalive_timeout=IDLE_SECONDS, resolver=resolver, use_dns_cache=resolver is None, ssl=tls or True
    )
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_seconds))


class Webhooks:
    """The sessions webhooks go through: one for https, one for plain http, each resolving through a check.

    A connection is opened to an address the session's `targets.CheckedResolver` let
    through and kept alive 4 s at most; the plain http session's resolver lets through
    only the allowed networks.
    """

    def __init__(
        self,
        allowed: targets.AllowedNetworks,
        timeout_seconds: float,
        *,
        tls: ssl.SSLContext | None = None,
        lookup: AbstractResolver | None = None,
    ) -> None:
        """`tls` checks the targets' certificates (None: the system's authorities); `lookup` resolves a name before
        the check (None: aiohttp's default resolver). Both are for the tests."""
        self.allowed, self.timeout_seconds = allowed, timeout_seconds
        self._resolvers = {
            s: targets.CheckedResolver(allowed, plain=s == "http", inner=lookup) for s in targets.SCHEMES
        }
        self._sessions = {s: _session(timeout_seconds, r, tls) for s, r in self._resolvers.items()}

    def session(self, url: URL) -> aiohttp.ClientSession:
        """The session for a URL `targets.refusal_of_url` passed."""
        return self._sessions[url.scheme]

    async def refusal(self, address: str) -> str | None:
        """Why a webhook URL may not be subscribed, found as a delivery would find it, its name resolved now."""
        try:
            url = URL(address)
        except ValueError:
            return "is not a URL"
        reason = targets.refusal_of_url(url, self.allowed())
        if reason is not None or url.raw_host is None or targets.literal_ip(url.host or ""):
            return reason
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self._resolvers[url.scheme].resolve(url.raw_host, url.port or 0, socket.AF_UNSPEC)
        except targets.TargetRefused as refused:
            return refused.reason
        except OSError:  # no such name, or no answer in time (TimeoutError is one)
            return UNRESOLVED
        return None

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        for resolver in self._resolvers.values():
            await resolver.close()


@dataclass
class Senders:
    """What every delivery shares: the providers' HTTP client, the webhooks' and the SMTP connections."""

    http: aiohttp.ClientSession
    mailer: Mailer
    webhooks: Webhooks

    async def close(self) -> None:
        """Close the HTTP clients and the idle SMTP connections (when the service stops)."""
        await self.http.close()
        await self.webhooks.close()
        await self.mailer.close()


def open_senders(
    smtp_host: str,
    smtp_port: int,
    smtp_connections: int,
    timeout_seconds: float,
    *,
    webhook_networks: targets.AllowedNetworks = tuple,
) -> Senders:
    """The clients deliveries share, opened inside the running loop; `webhook_networks` gives the allowed ones."""
    mailer = Mailer(smtp_host, smtp_port, timeout_seconds, smtp_connections)
    return Senders(_session(timeout_seconds), mailer, Webhooks(webhook_networks, timeout_seconds))


async def _post(http: aiohttp.ClientSession, url: str | URL, body: bytes, headers: dict[str, str], what: str) -> None:
    """POST `body`; a DeliveryError says why it did not arrive, permanent when the receiver refused it.

    The receiver's status goes to the log as its class, for operators; the reason carries none.
    """
    notification_id = headers.get(DELIVERY_HEADER)
    try:
        async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
            status = response.status
            read = 0
            while read <= ANSWER_BYTES and (chunk := await response.content.read(ANSWER_BYTES)):
                read += len(chunk)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, targets.TargetRefused):
            log.warning(
                "%s target refused", what, extra={"notification_id": notification_id, "reason": exc.os_error.reason}
            )
            raise TargetRefused(f"{what} refused: {exc.os_error.reason}") from exc
        log.info("%s unreachable: %s", what, type(exc).__name__, extra={"notification_id": notification_id})
        raise DeliveryError(f"{what} unreachable") from exc
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a URL it cannot use
        log.info("%s unreachable: %s", what, type(exc).__name__, extra={"notification_id": notification_id})
        raise DeliveryError(f"{what} unreachable") from exc
    if 200 <= status < 300:
        return
    log.info("%s answered %dxx", what, status // 100, extra={"notification_id": notification_id})
    if status >= 500 or status in (408, 429):
        raise DeliveryError(f"{what} unavailable")
    raise DeliveryError(f"{what} did not accept the message", permanent=True)  # a 3xx or a 4xx


async def send_webhook(webhooks: Webhooks, message: Message) -> None:
    """POST the JSON payload, signed with the recipient's secret; the delivery id lets receivers deduplicate.

    The URL is checked again (its scheme and an address it names; a name is checked as
    it is resolved, by the session's resolver): a refusal is permanent, and any other
    failure is only "unreachable" to the caller.
    """
    body = json.dumps(message.payload, ensure_ascii=False, default=str).encode()
    headers = {"content-type": "application/json", DELIVERY_HEADER: message.notification_id}
    if message.secret:
        headers[SIGNATURE_HEADER] = sign(message.secret, body)
    try:
        url = URL(message.to)
    except ValueError as exc:
        raise DeliveryError(WEBHOOK_UNREACHABLE, permanent=True) from exc
    reason = targets.refusal_of_url(url, webhooks.allowed())
    if reason is not None:
        log.warning("webhook target refused", extra={"notification_id": message.notification_id, "reason": reason})
        raise TargetRefused(f"{WEBHOOK_REFUSED}: {reason}")
    try:
        await _post(webhooks.session(url), url, body, headers, "webhook")
    except TargetRefused:
        raise
    except DeliveryError as error:
        raise DeliveryError(WEBHOOK_UNREACHABLE, permanent=error.permanent) from error


# Reasons earlier versions stored, with the receiver's status in them, and what a caller is shown instead.
_EARLIER_REASONS = (
    (re.compile(r"^(.*) unreachable: \w+$"), r"\1 unreachable"),
    (re.compile(r"^(.*) answered \d+$"), r"\1 unavailable"),
    (re.compile(r"^(.*) refused the message with \d+$"), r"\1 did not accept the message"),
)


def shown_reason(channel: str, reason: str | None) -> str | None:
    """A delivery's failure as a caller may read it: a webhook's only refused or unreachable; never a status."""
    if reason is None:
        return None
    if channel == "webhook":
        return reason if reason.startswith(f"{WEBHOOK_REFUSED}: ") else WEBHOOK_UNREACHABLE
    for pattern, replacement in _EARLIER_REASONS:
        reason = pattern.sub(replacement, reason)
    return reason


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
