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


@pytest.fixture
def fresh_lambda_runtime() -> Iterator[None]:
    """Each test is a cold start: the handler's cached runtime would carry one test's environment into the next."""
    from segment_bridge import aws_lambda

    aws_lambda.reset_runtime()
    yield
    aws_lambda.reset_runtime()


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, standin: StandIn, write_key: str) -> pytest.MonkeyPatch:
    """The Lambda handler's environment, delivering to the stand-in; retries do not wait."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", write_key)
    monkeypatch.setenv("SEGMENT_HOST", standin.url)
    monkeypatch.setenv("SEGMENT_BRIDGE_RETRY_BACKOFF", "0")
    return monkeypatch
