"""Fetching web sources safely: SSRF guard, polite async fetcher, sitemaps, crawling, extraction.

Pure Python (no models, no database). Django settings are read lazily, and only where a caller
does not pass explicit arguments:

- ``PARLEY_FETCH_ALLOWED_NETWORKS``: comma-separated CIDRs (or a list) that the SSRF guard lets
  through, for intranet deployments and tests; empty by default.
- ``PARLEY_FETCH_MAX_BYTES``, ``PARLEY_FETCH_TIMEOUT``, ``PARLEY_FETCH_MAX_REDIRECTS``,
  ``PARLEY_FETCH_HOST_CONCURRENCY``, ``PARLEY_FETCH_HOST_DELAY``: see ``FetchLimits``.
"""

from __future__ import annotations

from typing import Any

PARLEY_VERSION = "0.1.0"
USER_AGENT = f"ParleyBot/{PARLEY_VERSION} (+https://github.com/parley)"
# The token robots.txt groups are matched against.
ROBOTS_AGENT = "ParleyBot"


def setting(name: str, default: Any) -> Any:
    """A Django setting when Django is configured, else ``default`` (works without Django)."""
    try:
        from django.conf import settings

        if not settings.configured:
            return default
        return getattr(settings, name, default)
    except ImportError:
        return default
