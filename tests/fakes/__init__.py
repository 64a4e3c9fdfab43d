"""Fakes of the outside world for tests and benchmarks (see each module's docstring)."""

from tests.fakes.llm_server import (
    FakeLLMServer,
    RecordedRequest,
    Scenario,
    cut,
    hang,
    reply,
    status,
)

__all__ = ["FakeLLMServer", "RecordedRequest", "Scenario", "cut", "hang", "reply", "status"]
