"""Where a webhook may point: a public address over https, or an allowed network over https or plain http.

A department key chooses its webhook URL, so notify must not become its way into
the platform's own network (stats' API, MongoDB's port, a cloud's metadata service).
A URL is checked when it is subscribed and again at every delivery, after the name is
resolved: the webhook sessions resolve through `CheckedResolver`, which drops the
addresses that may not be reached and refuses when none is left, so the connection
goes to an address that was checked, with no second lookup in between (TLS still
verifies the name). aiohttp does not ask the resolver about an IP literal, so
`refusal_of_url` judges those itself, before the request.

Networks in `NOTIFY_WEBHOOK_ALLOWED_NETWORKS` (the government extranet where
department systems sit; loopback in the embedded stack and the tests) may be reached
whatever their class, and only they over plain http.
"""

import socket
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
AllowedNetworks = Callable[[], Sequence[Network]]

SCHEMES = ("https", "http")

# A webhook URL as the OpenAPI document states it, and as the subscription takes it: http or https, a host name
# (its last label not a number) or an IPv4 address, a port from 0 to 65535 if any, no user name or password, no
# whitespace or control character. Whether its host may be posted to is a matter of the network (a 403), not of form.
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_BLANK = "\\x00-\\x20\\x7f-\\x9f\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
WEBHOOK_URL = (
    f"^[Hh][Tt][Tt][Pp][Ss]?://(?:{_OCTET}(?:\\.{_OCTET}){{3}}|(?:{_LABEL}\\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}"
    f"[A-Za-z0-9])?)(?::{_PORT})?(?:[/?#][^{_BLANK}]*)?$"
)
SHARED = ip_network("100.64.0.0/10")  # carrier-grade NAT: neither private nor global to `ipaddress`
NAT64 = ip_network("64:ff9b::/96")  # the well-known NAT64 prefix: the last 32 bits are an IPv4 address
NEVER_ALLOWED = ("unspecified", "multicast")  # not a host to post to, whatever the operators allow

# The class an address is refused as, the first test that holds. Python 3.11's `ipaddress` calls multicast,
# fec0::/10, 6to4 and NAT64 addresses global, and every IPv4-mapped one reserved or private: the embedded IPv4
# address is judged instead (`embedded_ipv4`), and the classes are tested before `is_global` is trusted.
CLASSES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("shared (carrier-grade NAT)", lambda ip: ip in SHARED),
    ("reserved", lambda ip: ip.is_reserved),
    ("private", lambda ip: ip.is_private or getattr(ip, "is_site_local", False)),
    ("non-public", lambda ip: not ip.is_global),
)


class TargetRefused(OSError):
    """No address of the target may be reached; `reason` says why, for the caller, without internals."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address reaches: IPv4-mapped, 6to4 or NAT64; None for any other."""
    if isinstance(ip, IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_class(ip: IPAddress) -> str | None:
    """Why an address is not a public host ('loopback', 'private', ...); None for a public one."""
    judged = embedded_ipv4(ip) or ip
    return next((name for name, holds in CLASSES if holds(judged)), None)


def refusal(ip: IPAddress, *, plain: bool, allowed: Sequence[Network]) -> str | None:
    """Why a webhook may not be posted to `ip` (over plain http when `plain`); None when it may."""
    kind = address_class(ip)
    if kind in NEVER_ALLOWED:
        return _resolves_to(kind)
    judged = embedded_ipv4(ip) or ip
    if any(judged in net or ip in net for net in allowed):
        return None
    if kind is not None:
        return _resolves_to(kind)
    if plain:
        return "must use https: plain http is accepted only for a target inside the allowed networks"
    return None


def _resolves_to(kind: str) -> str:
    return f"resolves to {'an' if kind[0] in 'aeiou' else 'a'} {kind} address"


def literal_ip(host: str) -> IPAddress | None:
    """The address a URL's host names literally (an IPv6 one without brackets); None for a name."""
    try:
        return ip_address(host)
    except ValueError:
        return None


def refusal_of_url(url: URL, allowed: Sequence[Network]) -> str | None:
    """What is wrong with a webhook URL before any lookup: its scheme, its host, or the address it names."""
    if url.scheme not in SCHEMES:
        return "must be an https URL"
    if not url.host or not url.raw_host:
        return "has no host"
    ip = literal_ip(url.host)
    if ip is None and looks_numeric(url.raw_host):
        return "has a host that is not a valid address"
    return refusal(ip, plain=url.scheme == "http", allowed=allowed) if ip is not None else None


def looks_numeric(host: str) -> bool:
    """Whether aiohttp takes `host` for an address and connects without asking the resolver (its own test)."""
    return ":" in host or host.replace(".", "").isdigit()


class CheckedResolver(AbstractResolver):
    """Resolves as aiohttp would, then keeps only the addresses a webhook may reach; refuses when none is left.

    One per webhook session: `plain` for the plain http one, whose targets must be in an allowed network.
    The allowed networks are read at every lookup.
    """

    def __init__(self, allowed: AllowedNetworks, *, plain: bool, inner: AbstractResolver | None = None) -> None:
        self.allowed, self.plain = allowed, plain
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = self.allowed()
        reasons = [refusal(ip_address(r["host"]), plain=self.plain, allowed=allowed) for r in found]
        kept = [r for r, reason in zip(found, reasons, strict=True) if reason is None]
        if not kept:
            raise TargetRefused(next((r for r in reasons if r), "does not resolve"))
        return kept

    async def close(self) -> None:
        await self._inner.close()
