"""Webhook sessions against a real HTTPS receiver: the name checked once, connected to as checked, TLS on the name."""

import datetime as dt
import socket
import ssl
from ipaddress import ip_network
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack import servers
from services.notify import channels

LOOPBACK_V4 = [ip_network("127.0.0.0/8")]


def _certificate(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:  # the name only: no IP address in the certificate
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, *parts: bytes) -> Path:
    path.write_bytes(b"".join(parts))
    return path


@pytest.fixture(scope="module")
async def https_receiver(tmp_path_factory):
    """A real HTTPS server on 127.0.0.1 with a certificate for `localhost` from a CA of the test's own."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appeals test CA")])
    ca = _certificate("appeals test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = _certificate("localhost", leaf_key, ca_name, ca_key, ca=False)
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(
        _pem(folder / "leaf.pem", leaf.public_bytes(serialization.Encoding.PEM)), _pem(folder / "leaf.key", key_pem)
    )
    client_tls = ssl.create_default_context(
        cafile=str(_pem(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)))
    )
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = servers.free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_tls).start()
    yield SimpleNamespace(port=port, seen=seen, tls=client_tls)
    await runner.cleanup()


class Scripted(AbstractResolver):
    """A name server whose answer changes between lookups (DNS rebinding); counts the lookups."""

    def __init__(self, *answers: str) -> None:
        self.answers, self.calls = list(answers), 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [ResolveResult(hostname=host, host=answer, port=port, family=socket.AF_INET, proto=0, flags=0)]

    async def close(self) -> None:
        pass


def message(to: str) -> channels.Message:
    return channels.Message("event-1:dept:head:webhook", to, "s", "b", "assigned", "en", {"text": "b"}, "x" * 16)


async def test_https_reaches_the_checked_address_and_tls_verifies_the_name(https_receiver):
    webhooks = channels.Webhooks(lambda: LOOPBACK_V4, 5.0, tls=https_receiver.tls)
    try:
        # `localhost` resolves to ::1 too, which the allowed networks leave out: the connection goes to 127.0.0.1,
        # and the certificate, which names only `localhost`, is checked against the name, not the address.
        await channels.send_webhook(webhooks, message(f"https://localhost:{https_receiver.port}/named"))
        assert "/named" in https_receiver.seen
        with pytest.raises(channels.DeliveryError) as failed:
            await channels.send_webhook(webhooks, message(f"https://127.0.0.1:{https_receiver.port}/by-address"))
        assert failed.value.reason == "webhook unreachable" and not failed.value.permanent
        assert "/by-address" not in https_receiver.seen, "a certificate for another name is refused"
    finally:
        await webhooks.close()


async def test_a_name_rebound_to_loopback_after_its_subscription_is_refused_at_delivery(https_receiver):
    lookup = Scripted("8.8.8.8", "127.0.0.1")
    webhooks = channels.Webhooks(lambda: [], 5.0, tls=https_receiver.tls, lookup=lookup)
    url = f"https://localhost:{https_receiver.port}/rebound"
    try:
        assert await webhooks.refusal(url) is None, "a public address when subscribed"
        with pytest.raises(channels.TargetRefused) as refused:
            await channels.send_webhook(webhooks, message(url))
        assert refused.value.reason == "webhook refused: resolves to a loopback address" and refused.value.permanent
        assert lookup.calls == 2, "one lookup per check: the delivery's connection goes where its lookup said"
        assert "/rebound" not in https_receiver.seen
    finally:
        await webhooks.close()


async def test_plain_http_reaches_a_name_only_inside_the_allowed_networks():
    webhooks = channels.Webhooks(lambda: [], 5.0, lookup=Scripted("8.8.8.8"))
    try:
        reason = await webhooks.refusal("http://hooks.example.org/x")
        assert reason is not None and reason.startswith("must use https")
    finally:
        await webhooks.close()
