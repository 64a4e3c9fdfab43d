"""The SSRF guard: which URLs and addresses a user-supplied source may make us connect to.

Every URL (the one given, each redirect hop, robots.txt, sitemaps) goes through
:func:`resolve_and_check`, which resolves *all* A/AAAA records and refuses the URL when any of
them is not a global unicast address, unless it lies inside an explicitly allowed network.
The fetcher then connects to the vetted address itself (see ``PinnedTransport`` in
``fetcher``), so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot redirect us.

Cloud metadata endpoints are refused even inside allowed networks: allowing ``169.254.0.0/16``
for an intranet must not hand out instance credentials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from knowledge.web import setting

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.oraclecloud.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Dotted, hex or octal spellings of an address ("0x7f.1", "017700000001", "2130706433"):
# resolvers accept them, people do not write them, filters get fooled by them.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_HOST_CHARS = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)


class BlockedURL(ValueError):
    """The URL may not be fetched; the message says why, in words a staff user understands."""


@dataclass(frozen=True, slots=True)
class VettedURL:
    """A URL that passed the guard, with the addresses it resolved to (connect to ``address``)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def address(self) -> str:
        return str(self.addresses[0])


def parse_networks(value: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, fd00::/8"`` or a list of CIDRs → networks; a bad CIDR raises ValueError."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for item in items:
        item = str(item).strip()
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as error:
                raise ValueError(f"Not a network in CIDR notation: {item!r}") from error
    return tuple(networks)


def configured_networks() -> tuple[IPNetwork, ...]:
    """The networks named by the ``PARLEY_FETCH_ALLOWED_NETWORKS`` setting (none by default)."""
    return parse_networks(setting("PARLEY_FETCH_ALLOWED_NETWORKS", ""))


def resolve_networks(
    allowed: str | Iterable[str] | Iterable[IPNetwork] | None,
) -> tuple[IPNetwork, ...]:
    """Networks from CIDR strings or network objects; None reads the Django setting."""
    if allowed is None:
        return configured_networks()
    if isinstance(allowed, str):
        return parse_networks(allowed)
    networks: list[IPNetwork] = []
    for item in allowed:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(item)
        else:
            networks.extend(parse_networks([str(item)]))
    return tuple(networks)


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses hidden inside an IPv6 one (mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = []
    if address.ipv4_mapped:
        found.append(address.ipv4_mapped)
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _why_not_public(address: IPAddress) -> str | None:
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (address in _CGNAT, "a shared (carrier-grade NAT) address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for failed, reason in checks if failed), None)


def _refusal_kind(address: IPAddress, networks: tuple[IPNetwork, ...]) -> str | None:
    candidates: list[IPAddress] = [address, *_embedded_ipv4(address)]
    if any(candidate in METADATA_ADDRESSES for candidate in candidates):
        return "a cloud metadata address"
    if any(candidate in network for candidate in candidates for network in networks):
        return None
    for candidate in candidates:
        reason = _why_not_public(candidate)
        if reason:
            return reason if candidate == address else f"{reason} (it embeds {candidate})"
    return None


def address_refusal(
    address: IPAddress | str, allowed_networks: str | Iterable[str] | None = None
) -> str | None:
    """Why connecting to ``address`` is refused, or None when it is allowed."""
    address = ipaddress.ip_address(address) if isinstance(address, str) else address
    kind = _refusal_kind(address, resolve_networks(allowed_networks))
    return f"{address} is {kind}" if kind else None


def check_syntax(url: str) -> tuple[str, str, int]:
    """Scheme, ASCII host and port of ``url``; raises BlockedURL for anything unusual."""
    if not isinstance(url, str) or not url or len(url) > 4096:
        raise BlockedURL("The URL is empty or too long.")
    if any(ord(char) < 33 or char == "\\" for char in url):
        raise BlockedURL("The URL contains spaces, control characters or backslashes.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:
        raise BlockedURL(f"The URL is not valid: {error}") from error
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise BlockedURL(f"Only http and https URLs can be fetched, not {parsed.scheme or '?'}:")
    if parsed.userinfo:
        raise BlockedURL("URLs with a user name or password in them are not fetched.")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise BlockedURL("The URL has no host name.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if "%" in host:
        raise BlockedURL("IPv6 zone identifiers are not allowed in URLs.")
    if ":" not in host:
        if _NUMERIC_HOST.match(host) and not _is_dotted_quad(host):
            raise BlockedURL(f"{host!r} is an unusual way of writing an IP address.")
        if not _HOST_CHARS.match(host):
            raise BlockedURL(f"{host!r} is not a valid host name.")
    if host in METADATA_HOSTNAMES:
        raise BlockedURL(f"{host} is a cloud metadata host name.")
    return parsed.scheme, host, port


def _is_dotted_quad(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and str(int(p)) == p and int(p) < 256 for p in parts)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _vet(
    url: str, scheme: str, host: str, port: int, infos: list, allowed: tuple[IPNetwork, ...]
) -> VettedURL:
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise BlockedURL(f"{host} does not resolve to any address.")
    for address in addresses:
        kind = _refusal_kind(address, allowed)
        if kind:
            where = f"{address} is" if _literal(host) else f"{host} resolves to {address}, which is"
            raise BlockedURL(f"Refused to fetch {url}: {where} {kind}.")
    return VettedURL(url, scheme, host, port, tuple(addresses))


def resolve_and_check(url: str, allowed_networks: str | Iterable[str] | None = None) -> VettedURL:
    """Check ``url`` and every address its host resolves to; raise BlockedURL or return them."""
    scheme, host, port = check_syntax(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise BlockedURL(f"{host} could not be resolved: {error}") from error
    return _vet(url, scheme, host, port, infos, resolve_networks(allowed_networks))


async def aresolve_and_check(
    url: str, allowed_networks: str | Iterable[str] | None = None
) -> VettedURL:
    """:func:`resolve_and_check` without blocking the event loop on DNS."""
    scheme, host, port = check_syntax(url)
    try:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise BlockedURL(f"{host} could not be resolved: {error}") from error
    return _vet(url, scheme, host, port, infos, resolve_networks(allowed_networks))


def check_url(url: str, allowed_networks: str | Iterable[str] | None = None) -> None:
    """Raise BlockedURL unless ``url`` is safe to fetch. ``None`` reads the Django setting."""
    resolve_and_check(url, allowed_networks)
