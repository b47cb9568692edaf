"""Notify's pooled SMTP connections against a real SMTP server (aiosmtpd)."""

import pytest
from aiosmtpd.controller import Controller

from devstack import servers
from services.notify.channels import DeliveryError, Mailer, Message, send_email


class Counting:
    """An SMTP handler that keeps the mails and counts the sessions they came in."""

    def __init__(self) -> None:
        self.sessions: set[int] = set()
        self.mails: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        if address.startswith("nobody@"):
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.sessions.add(id(session))
        self.mails.append(envelope.rcpt_tos[0])
        return "250 Message accepted for delivery"


def message(n: int, to: str = "company@example.com") -> Message:
    return Message(f"n{n}", to, f"subject {n}", "body", "template", "zh", {})


@pytest.fixture
def smtp():
    """A real SMTP server on a free port, and a way to start another one on the same port."""
    handler = Counting()
    running = [Controller(handler, hostname="127.0.0.1", port=servers.free_port())]
    running[0].start()

    def restart() -> None:
        running[-1].stop()
        running.append(Controller(handler, hostname="127.0.0.1", port=running[0].port))
        running[-1].start()

    yield handler, running[0].port, restart
    running[-1].stop()


async def test_mails_share_connections_and_a_server_restart_loses_none(smtp):
    handler, port, restart = smtp
    mailer = Mailer("127.0.0.1", port, timeout=5, size=2)
    try:
        for n in range(6):
            await send_email(mailer, "platform@example.com", message(n))
        assert len(handler.mails) == 6 and len(handler.sessions) == 1, "one connection carried the mails sent in turn"

        # The server goes away and comes back: the idle connection is dead, the next mail arrives anyway.
        restart()
        await send_email(mailer, "platform@example.com", message(6))
        assert len(handler.mails) == 7 and len(handler.sessions) == 2
    finally:
        await mailer.close()


async def test_a_refused_recipient_is_permanent_and_the_next_mail_goes(smtp):
    handler, port, _ = smtp
    mailer = Mailer("127.0.0.1", port, timeout=5)
    try:
        with pytest.raises(DeliveryError) as refused:
            await send_email(mailer, "platform@example.com", message(1, to="nobody@example.com"))
        assert refused.value.permanent
        await send_email(mailer, "platform@example.com", message(2))
        assert handler.mails == ["company@example.com"]
    finally:
        await mailer.close()


async def test_no_server_is_a_retryable_failure():
    mailer = Mailer("127.0.0.1", servers.free_port(), timeout=2)
    with pytest.raises(DeliveryError) as failed:
        await send_email(mailer, "platform@example.com", message(1))
    assert not failed.value.permanent
