"""Which pages may open a bot's socket or frame its chat page."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from widget.origins import allowed_origin, frame_ancestors, normalise_origin

TENANT_HOSTS = ["a.localhost", "chat.acme.example"]


@dataclass
class FakeBot:
    origins: list[str] = field(default_factory=list)


BOT = FakeBot(["https://shop.example.com", "https://*.partner.example", "http://[::1]:3000"])


@pytest.mark.parametrize(
    "origin",
    [
        "http://a.localhost",
        "https://a.localhost:8443",
        "HTTPS://CHAT.ACME.EXAMPLE",
        "https://shop.example.com",
        "https://shop.example.com:443",
        "https://www.partner.example",
        "https://a.b.partner.example",
        "http://[::1]:3000",
    ],
)
def test_allowed(origin):
    assert allowed_origin(BOT, origin, TENANT_HOSTS)


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "",
        "null",
        "file://",
        "chrome-extension://abc",
        "https://evil.example",
        "https://shop.example.com.evil.example",
        "https://evilshop.example.com",
        "http://shop.example.com",
        "https://shop.example.com:8443",
        "https://partner.example",
        "https://*.partner.example",
        "https://shop.example.com/path",
        "https://user@shop.example.com",
        "https://a.localhost.evil.example",
        "https://shop.example.com:99999",
    ],
)
def test_refused(origin):
    assert not allowed_origin(BOT, origin, TENANT_HOSTS)


def test_normalised_origins_drop_default_ports_and_case():
    assert normalise_origin("HTTPS://Shop.Example.com:443/") == ("https", "shop.example.com", None)
    assert normalise_origin("http://x.example:8080") == ("http", "x.example", 8080)
    assert normalise_origin("ftp://x.example") is None


def test_frame_ancestors_are_the_own_host_and_clean_allowed_origins():
    bot = FakeBot(
        [
            "https://shop.example.com:443",
            "https://*.partner.example",
            "https://x.example; script-src *",  # never into the header
            "javascript:alert(1)",
        ]
    )
    assert frame_ancestors(bot, "a.localhost:8000") == [
        "'self'",
        "https://a.localhost:*",
        "http://a.localhost:*",
        "https://shop.example.com",
        "https://*.partner.example",
    ]
