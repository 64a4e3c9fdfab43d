"""robots.txt rules for our user agent (Protego: Google-compatible matching, wildcards, Allow).

Fetch outcomes follow RFC 9309: a 4xx answer means "no rules"; a 5xx answer or an unreachable
server means "assume everything is disallowed" for this crawl.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protego import Protego

from knowledge.web import ROBOTS_AGENT

# RFC 9309 asks crawlers to parse at least 500 KiB; anything beyond is ignored.
MAX_ROBOTS_BYTES = 512 * 1024


@dataclass(slots=True)
class RobotsRules:
    """What one origin's robots.txt says about ParleyBot."""

    parser: Protego | None = None
    disallow_all: bool = False
    reason: str = ""
    agent: str = ROBOTS_AGENT
    _sitemaps: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, agent: str = ROBOTS_AGENT) -> RobotsRules:
        parser = Protego.parse(text[:MAX_ROBOTS_BYTES])
        return cls(parser=parser, agent=agent, _sitemaps=list(parser.sitemaps))

    @classmethod
    def allow_all(cls, reason: str = "no robots.txt") -> RobotsRules:
        return cls(reason=reason)

    @classmethod
    def deny_all(cls, reason: str) -> RobotsRules:
        return cls(disallow_all=True, reason=reason)

    def can_fetch(self, url: str) -> bool:
        if self.disallow_all:
            return False
        return self.parser is None or bool(self.parser.can_fetch(url, self.agent))

    @property
    def crawl_delay(self) -> float | None:
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(self.agent)
        return float(delay) if delay is not None else None

    @property
    def sitemaps(self) -> list[str]:
        """``Sitemap:`` lines, in file order."""
        return list(self._sitemaps)
