"""Rate limits in Redis: fixed and sliding windows, refused hits not counted, retry_after
telling the truth, and the client address read only from trusted proxies."""

from __future__ import annotations

import secrets

import pytest

from widget.ratelimit import client_ip, hit

T0 = 1_800_000_000.0  # the start of a 60-second window (divisible by 60)


def scope() -> str:
    return f"test:{secrets.token_hex(8)}"


def test_a_fixed_window_allows_the_limit_then_says_when_it_resets():
    key = scope()
    assert [hit(key, 3, 60, sliding=False, now=T0 + i).allowed for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    refused = hit(key, 3, 60, sliding=False, now=T0 + 45.2)
    assert refused == (False, 15)
    assert hit(key, 3, 60, sliding=False, now=T0 + 60).allowed  # a new window


def test_a_sliding_window_weighs_the_previous_window():
    key = scope()
    for i in range(4):
        assert hit(key, 4, 60, now=T0 + 50 + i).allowed
    # 15 s into the next window, 3/4 of the previous window still counts: 4 * 0.75 = 3.
    assert hit(key, 4, 60, now=T0 + 75).allowed  # 3 + 1 <= 4
    allowed, retry_after = hit(key, 4, 60, now=T0 + 76)
    assert not allowed
    # One more fits once the previous window weighs (4 - 1 - 1) / 4: 30 s into the window.
    assert retry_after == 14
    assert hit(key, 4, 60, now=T0 + 90).allowed


def test_a_full_current_window_waits_for_the_next_one_and_beyond():
    key = scope()
    for i in range(2):
        assert hit(key, 2, 60, now=T0 + i).allowed
    allowed, retry_after = hit(key, 2, 60, now=T0 + 10)
    assert not allowed
    # next window in 50 s, then these 2 hits must weigh at most 1: 30 s more
    assert retry_after == 80
    assert not hit(key, 2, 60, now=T0 + 60 + 29).allowed
    assert hit(key, 2, 60, now=T0 + 60 + 30).allowed


def test_refused_hits_are_not_counted():
    key = scope()
    hit(key, 1, 60, sliding=False, now=T0)
    for _ in range(10):
        assert not hit(key, 1, 60, sliding=False, now=T0 + 1).allowed
    assert hit(key, 1, 60, sliding=False, now=T0 + 60).allowed


def test_a_zero_limit_is_off():
    assert all(hit(scope(), 0, 60).allowed for _ in range(5))


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        ("10.0.0.1", "6.6.6.6", 0, "10.0.0.1"),  # no proxy trusted: the header is ignored
        ("10.0.0.1", "6.6.6.6, 1.2.3.4", 1, "1.2.3.4"),  # the entry our proxy appended
        ("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.9", 2, "1.2.3.4"),
        ("10.0.0.1", "", 1, "10.0.0.1"),  # the proxy did not say: the peer
        (None, "", 0, "unknown"),
    ],
)
def test_the_client_address_comes_from_trusted_proxies_only(peer, forwarded, proxies, expected):
    assert client_ip(peer, forwarded, proxies) == expected
