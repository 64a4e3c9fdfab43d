"""The SSRF guard refuses every address that is not public, however the URL spells it."""

from __future__ import annotations

import socket

import pytest

from knowledge.web.ssrf import (
    BlockedURL,
    address_refusal,
    check_url,
    parse_networks,
    resolve_and_check,
)

REAL_GETADDRINFO = socket.getaddrinfo


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
    """Make the given host names resolve to the given addresses (others resolve normally)."""

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host in names:
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (address, port),
                )
                for address in names[host]
            ]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://127.0.0.1:8000/admin",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.5.4/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://224.0.0.251/",  # multicast
        "http://240.0.0.1/",  # reserved
        "http://255.255.255.255/",
        "http://[fe80::1]/",  # link-local
        "http://[fc00::1]/",  # unique local
        "http://[ff02::1]/",  # multicast
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo, client 10.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
        "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
    ],
)
def test_it_refuses_addresses_that_are_not_public(url: str) -> None:
    with pytest.raises(BlockedURL, match="Refused to fetch"):
        check_url(url, allowed_networks=[])


@pytest.mark.parametrize(
    ("url", "network"),
    [
        ("http://[::1]/", "::1/128"),
        ("http://0.0.0.0/", "0.0.0.0/32"),
        ("http://localhost/", "127.0.0.0/8,::1/128"),
        ("http://10.1.2.3/", "10.0.0.0/8"),
        ("http://[::ffff:10.0.0.7]/", "10.0.0.0/8"),
    ],
)
def test_allowed_networks_let_named_networks_through(url: str, network: str) -> None:
    with pytest.raises(BlockedURL):
        check_url(url, allowed_networks="")
    check_url(url, allowed_networks=network)


def test_allowing_a_network_does_not_allow_its_neighbours() -> None:
    check_url("http://10.1.2.3/", allowed_networks=["10.1.2.0/24"])
    with pytest.raises(BlockedURL, match="private"):
        check_url("http://10.1.3.3/", allowed_networks=["10.1.2.0/24"])


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "http://[::ffff:169.254.169.254]/", "http://[fd00:ec2::254]/"],
)
def test_cloud_metadata_addresses_stay_refused_even_inside_an_allowed_network(url: str) -> None:
    with pytest.raises(BlockedURL, match="cloud metadata"):
        check_url(url, allowed_networks=["169.254.0.0/16", "fd00::/8", "::ffff:0:0/96"])


@pytest.mark.parametrize(
    ("name", "addresses", "reason"),
    [
        ("intranet.example", ["127.0.0.1"], "resolves to 127.0.0.1, which is a loopback"),
        ("evil.example", ["169.254.169.254"], "cloud metadata"),
        ("six.example", ["::1"], "resolves to ::1, which is a loopback"),
        ("mixed.example", ["93.184.215.14", "10.0.0.1"], "resolves to 10.0.0.1"),
    ],
)
def test_it_refuses_names_that_resolve_to_refused_addresses(
    monkeypatch: pytest.MonkeyPatch, name: str, addresses: list[str], reason: str
) -> None:
    fake_dns(monkeypatch, {name: addresses})
    with pytest.raises(BlockedURL, match=reason):
        check_url(f"https://{name}/page", allowed_networks=[])


def test_a_name_resolving_to_127_0_0_1_is_allowed_when_its_network_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dns(monkeypatch, {"intranet.example": ["127.0.0.1"]})
    vetted = resolve_and_check("http://intranet.example:8080/x", ["127.0.0.0/8"])
    assert (vetted.host, vetted.port, vetted.address) == ("intranet.example", 8080, "127.0.0.1")


def test_public_addresses_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"docs.example.com": ["93.184.215.14", "2606:2800:21f:cb07::1"]})
    check_url("https://docs.example.com/guide?x=1", allowed_networks=[])
    check_url("http://93.184.215.14/", allowed_networks=[])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "Only http and https"),
        ("gopher://example.com/", "Only http and https"),
        ("ftp://example.com/file", "Only http and https"),
        ("http://user:secret@example.com/", "user name or password"),
        ("http://127.1/", "unusual way of writing an IP"),
        ("http://2130706433/", "unusual way of writing an IP"),
        ("http://0x7f000001/", "unusual way of writing an IP"),
        ("http://017700000001/", "unusual way of writing an IP"),
        ("http://0177.0.0.1/", "unusual way of writing an IP|not valid"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata host name"),
        ("http://[fe80::1%25eth0]/", "zone identifiers"),
        ("http://exa mple.com/", "spaces"),
        ("http:\\\\example.com\\", "backslashes"),
        ("http:///path", "no host"),
        ("", "empty"),
    ],
)
def test_it_refuses_odd_urls_with_a_clear_message(url: str, reason: str) -> None:
    with pytest.raises(BlockedURL, match=reason):
        check_url(url, allowed_networks=["0.0.0.0/0", "::/0"])


def test_address_refusal_explains_embedded_addresses() -> None:
    assert address_refusal("2002:a00:1::", []) == (
        "2002:a00:1:: is a private address (it embeds 10.0.0.1)"
    )
    assert address_refusal("8.8.8.8", []) is None


def test_bad_cidrs_are_reported() -> None:
    assert [str(n) for n in parse_networks(" 10.0.0.0/8, ::1/128 ,")] == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError, match="CIDR"):
        parse_networks("10.0.0.0/33")


def test_the_setting_names_the_allowed_networks() -> None:
    django_settings = pytest.importorskip("django.conf").settings
    if not django_settings.configured:
        pytest.skip("Django is not configured in this run")
    from django.test import override_settings

    with pytest.raises(BlockedURL):
        check_url("http://127.0.0.1/")
    with override_settings(PARLEY_FETCH_ALLOWED_NETWORKS="127.0.0.0/8"):
        check_url("http://127.0.0.1/")
