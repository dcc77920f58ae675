"""Shared fixtures: environment isolation, a fake clock for retries, and the stand-in Segment server.

tests/ is on sys.path (pytest's ``pythonpath`` setting), so test modules import the helpers ``standin``,
``eventfiles`` and ``kinesis_events`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from standin import StandIn


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SEGMENT_* or TWILIO_* setting leaks in from the developer's shell or between tests."""
    for name in list(os.environ):
        if name.startswith(("SEGMENT_", "TWILIO_")):
            monkeypatch.delenv(name)


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it: retries are instant and exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def write_key() -> str:
    """A write key distinctive enough to grep for in logs, reprs and files."""
    return "wk_S3cr3t-Key-For-Tests-0123456789"


@pytest.fixture
def standin(write_key: str) -> Iterator[StandIn]:
    with StandIn(write_key=write_key) as server:
        yield server
