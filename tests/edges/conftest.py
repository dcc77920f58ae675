"""Fixtures shared by the delivery tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/standin.py is shared by several test folders (delivery, server, Lambda) and tests/ is not a package.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from standin import StandIn  # noqa: E402


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
