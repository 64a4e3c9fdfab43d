"""Which web pages may talk to a bot: the visitor socket's `Origin` check and the chat
page's `Content-Security-Policy: frame-ancestors`, from one reading of a bot's allowed
origins.

Rules (docs/visitor-socket.md):
- the tenant's own hosts (every Domain of the tenant) are always allowed, on any port and
  with either scheme: the hosted chat page and the widget's iframe are served from them;
- otherwise the origin must equal one of the bot's allowed origins after normalisation
  (lower case, default port dropped), or match a `scheme://*.example.com[:port]` wildcard
  (any subdomain, not the bare domain);
- a missing origin, `null` (sandboxed frames, `file:` pages) or anything that is not an
  http(s) origin is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# What may go into a CSP header: nothing that could end a directive (`;`, `,`, spaces).
CSP_SOURCE_RE = re.compile(
    r"^https?://(\*\.)?[a-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9a-f:.]+\](:\d{1,5})?$"
)


class HasOrigins(Protocol):
    @property
    def origins(self) -> list[str]: ...


def normalise_origin(value: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an http(s) origin, lower case, default port as None; None
    when `value` is not an origin (a path, credentials, another scheme, garbage)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in DEFAULT_PORTS or not host:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    if port == DEFAULT_PORTS[parts.scheme]:
        port = None
    return parts.scheme, host, port


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".example.com"
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def origin_matches(allowed: str, origin: str) -> bool:
    """Whether `origin` is the allowed origin `allowed` (which may use a `*.` wildcard)."""
    want, got = normalise_origin(allowed), normalise_origin(origin)
    if want is None or got is None or "*" in got[1]:
        return False
    return want[0] == got[0] and want[2] == got[2] and _host_matches(want[1], got[1])


def allowed_origin(bot: HasOrigins, origin: str | None, tenant_hosts: Iterable[str]) -> bool:
    """May a page of `origin` talk to `bot`? `tenant_hosts`: the tenant's host names."""
    if not origin:
        return False
    parsed = normalise_origin(origin)
    if parsed is None:
        return False
    if parsed[1] in {host.lower() for host in tenant_hosts}:
        return True
    return any(origin_matches(allowed, origin) for allowed in bot.origins)


def _csp_source(scheme: str, host: str, port: int | None) -> str:
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def frame_ancestors(bot: HasOrigins, request_host: str) -> list[str]:
    """Sources for `Content-Security-Policy: frame-ancestors` of the bot's chat page served
    on `request_host`: the page's own host (any port, either scheme) and the bot's allowed
    origins. Entries that are not clean origins are left out rather than let into the
    header."""
    host = request_host.strip().lower()
    host = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    sources = ["'self'"]
    for scheme in ("https", "http"):
        source = _csp_source(scheme, host.strip("[]"), None)
        if CSP_SOURCE_RE.match(source):
            sources.append(f"{source}:*")
    for allowed in bot.origins:
        parsed = normalise_origin(allowed)
        if parsed is None:
            continue
        source = _csp_source(*parsed)
        if CSP_SOURCE_RE.match(source) and source not in sources:
            sources.append(source)
    return sources
