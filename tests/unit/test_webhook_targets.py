"""Where a webhook may point (services/notify/targets.py), and what a caller is told of a failed one."""

import socket
from ipaddress import ip_address, ip_network

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from services.notify import channels, targets, views

LOOPBACK = [ip_network("127.0.0.0/8"), ip_network("::1/128")]
EXTRANET = [ip_network("10.20.0.0/16")]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),  # IPv4-mapped: judged as the IPv4 address it reaches
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("169.254.169.254", "link-local"),  # a cloud's metadata service
        ("::ffff:169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),  # global to Python 3.11's `ipaddress`
        ("ff02::1", "multicast"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.1.2.3", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),  # site-local, global to Python 3.11's `ipaddress`
        ("192.0.2.1", "private"),  # documentation
    ],
)
def test_an_address_class(address, kind):
    assert targets.address_class(ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "allowed", "reason"),
    [
        ("https://203.0.113.7/hook", [], "resolves to a private address"),
        ("https://8.8.8.8/hook", [], None),
        ("http://8.8.8.8/hook", [], "must use https: plain http is accepted only for a target inside"),
        ("http://8.8.8.8/hook", [ip_network("8.8.8.0/24")], None),
        ("http://127.0.0.1:8003/v1/stats", [], "resolves to a loopback address"),
        ("http://127.0.0.1:8003/v1/stats", LOOPBACK, None),
        ("https://[::1]/hook", [], "resolves to a loopback address"),
        ("https://[::ffff:127.0.0.1]/hook", [], "resolves to a loopback address"),
        ("https://[::ffff:127.0.0.1]/hook", LOOPBACK, None),
        ("http://169.254.169.254/latest/meta-data/", LOOPBACK, "resolves to a link-local address"),
        ("https://0.0.0.0/hook", [ip_network("0.0.0.0/8")], "resolves to an unspecified address"),
        ("https://224.0.0.1/hook", [ip_network("224.0.0.0/4")], "resolves to a multicast address"),
        ("https://10.20.3.4/hook", EXTRANET, None),
        ("http://10.20.3.4/hook", EXTRANET, None),
        ("https://10.21.3.4/hook", EXTRANET, "resolves to a private address"),
        ("https://100.64.1.1/hook", [], "resolves to a shared (carrier-grade NAT) address"),
        ("ftp://example.org/hook", [], "must be an https URL"),
        ("file:///etc/passwd", [], "must be an https URL"),
        ("https:///hook", [], "has no host"),
        ("http://127.1/hook", LOOPBACK, "has a host that is not a valid address"),
        ("http://2130706433/hook", LOOPBACK, "has a host that is not a valid address"),
        ("https://hooks.example.org/x", [], None),  # a name: judged when resolved
    ],
)
def test_a_url_before_any_lookup(url, allowed, reason):
    found = targets.refusal_of_url(URL(url), allowed)
    assert found == reason if reason is None else found is not None and found.startswith(reason)


class Fixed(AbstractResolver):
    """Answers every name with the same addresses."""

    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        return [ResolveResult(hostname=host, host=h, port=port, family=0, proto=0, flags=0) for h in self.hosts]

    async def close(self) -> None:
        pass


async def test_the_resolver_keeps_only_the_addresses_a_webhook_may_reach():
    mixed = targets.CheckedResolver(lambda: [], plain=False, inner=Fixed("127.0.0.1", "8.8.8.8", "10.0.0.1"))
    assert [r["host"] for r in await mixed.resolve("hooks.example.org", 443)] == ["8.8.8.8"]
    assert (await mixed.resolve("hooks.example.org", 443))[0]["hostname"] == "hooks.example.org", "TLS checks the name"


@pytest.mark.parametrize(
    ("hosts", "plain", "allowed", "reason"),
    [
        (("127.0.0.1", "::1"), False, [], "resolves to a loopback address"),
        (("169.254.169.254",), False, LOOPBACK, "resolves to a link-local address"),
        (("8.8.8.8",), True, LOOPBACK, "must use https"),  # a public name over plain http
        (("10.20.0.5", "8.8.8.8"), True, EXTRANET, None),  # plain http: only the allowed network's address
    ],
)
async def test_the_resolver_refuses_when_no_address_is_left(hosts, plain, allowed, reason):
    resolver = targets.CheckedResolver(lambda: allowed, plain=plain, inner=Fixed(*hosts))
    if reason is None:
        assert [r["host"] for r in await resolver.resolve("dept.extranet.gov", 80)] == ["10.20.0.5"]
        return
    with pytest.raises(targets.TargetRefused) as refused:
        await resolver.resolve("dept.extranet.gov", 80)
    assert refused.value.reason.startswith(reason)
    assert "127.0.0.1" not in refused.value.reason and "169.254" not in refused.value.reason, "no address told"


@pytest.mark.parametrize(
    ("channel", "stored", "shown"),
    [
        ("webhook", "webhook answered 500", "webhook unreachable"),  # stored by an earlier version
        ("webhook", "webhook refused the message with 401", "webhook unreachable"),
        ("webhook", "webhook unreachable: ClientConnectorError", "webhook unreachable"),
        ("webhook", "webhook unreachable", "webhook unreachable"),
        (
            "webhook",
            "webhook refused: resolves to a loopback address",
            "webhook refused: resolves to a loopback address",
        ),
        ("sms", "sms provider answered 503", "sms provider unavailable"),
        ("wechat", "wechat provider refused the message with 400", "wechat provider did not accept the message"),
        ("wechat", "wechat provider unreachable: ClientConnectorError", "wechat provider unreachable"),
        ("email", "mail server refused the recipient", "mail server refused the recipient"),
        ("email", None, None),
    ],
)
def test_what_a_caller_is_shown_of_a_failure(channel, stored, shown):
    assert channels.shown_reason(channel, stored) == shown


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("https://hooks.example.org/services/T0/B0/secret-token?sig=1", "https://hooks.example.org/***"),
        ("https://user:password@hooks.example.org:8443/x", "https://hooks.example.org:8443/***"),
        ("http://127.0.0.1:9000/webhook/head", "http://127.0.0.1:9000/***"),
    ],
)
def test_the_log_shows_a_webhook_by_its_origin_only(address, shown):
    assert views.mask("webhook", address) == shown
