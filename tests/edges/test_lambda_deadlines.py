"""The Lambda handler's use of the invocation's time, on a fake clock: exact, and no test waits (issue 15).

An attempt that cannot time out before the invocation ends would be cut off by Lambda, which then retries the
whole Kinesis batch: the handler must neither start one with almost no time left nor retry into the last timeout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from conftest import FakeClock
from kinesis_events import KinesisRecord, encoded, lambda_event, sequence_numbers

from segment_bridge.aws_lambda import LOGGER_NAME, LambdaRuntime
from segment_bridge.delivery import RetryPolicy
from segment_bridge.exceptions import RetryableDeliveryError
from segment_bridge.mapping import load_mapping
from segment_bridge.samples import iter_call_events
from segment_bridge.track import TrackCall

MAPPING = load_mapping()


class FixedContext:
    """Lambda's context with a fixed time left: the fake clock is the only clock that moves."""

    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    function_name = "segment-bridge"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class Segment503:
    """A transport that always answers 503, noting when each attempt starts on the fake clock and its timeout."""

    def __init__(self, clock: FakeClock, attempts: list[tuple[float, float]], timeout: float) -> None:
        self.clock, self.attempts, self.timeout = clock, attempts, timeout

    def send(self, batch: Sequence[TrackCall]) -> None:
        self.attempts.append((self.clock(), self.timeout))
        raise RetryableDeliveryError("HTTP 503", status=503, count=len(batch))

    def close(self) -> None:
        pass


def runtime(clock: FakeClock, attempts: list[tuple[float, float]], **changes: Any) -> LambdaRuntime:
    values: dict[str, Any] = {
        "mapping": MAPPING,
        "transport_factory": lambda timeout: Segment503(clock, attempts, timeout),
        "policy": RetryPolicy(max_attempts=50, budget_seconds=900, backoff_multiplier=1, backoff_max=1, jitter=0),
        "http_timeout": 4.0,
        "safety_margin": 0.0,
        "clock": clock,
        "sleep": clock.sleep,
    }
    values.update(changes)
    return LambdaRuntime(**values)


@pytest.fixture
def lambda_log() -> Iterator[list[dict[str, Any]]]:
    """The handler's log lines, read on its own logger (which stops propagating once a cold start configured it)."""
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    logger = logging.getLogger(LOGGER_NAME)
    handler = Keep(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def one_record() -> dict[str, Any]:
    event = next(iter(iter_call_events(1)))
    return lambda_event([KinesisRecord(encoded(event), sequence_numbers(1)[0])])


@pytest.mark.parametrize("remaining_ms", [100, 249])
def test_no_segment_request_starts_with_almost_no_time_left(
    clock: FakeClock, lambda_log: list[dict[str, Any]], remaining_ms: int
) -> None:
    attempts: list[tuple[float, float]] = []
    answer = runtime(clock, attempts).handle(one_record(), FixedContext(remaining_ms))
    assert attempts == []
    assert len(answer["batchItemFailures"]) == 1  # Kinesis retries the record in the next invocation
    assert [line["kind"] for line in lambda_log if line["event"] == "delivery_failed"] == ["deadline"]


def test_a_request_starts_when_a_short_attempt_still_fits(clock: FakeClock) -> None:
    attempts: list[tuple[float, float]] = []
    runtime(clock, attempts, policy=RetryPolicy(max_attempts=1)).handle(one_record(), FixedContext(400))
    assert attempts == [(0.0, 0.4)]  # its timeout shrunk to the time left


def test_no_retry_starts_unless_it_can_time_out_before_the_invocation_ends(clock: FakeClock) -> None:
    attempts: list[tuple[float, float]] = []
    end = 10.0
    answer = runtime(clock, attempts).handle(one_record(), FixedContext(int(end * 1000)))
    assert len(answer["batchItemFailures"]) == 1
    assert len(attempts) >= 3  # it did retry, one second apart
    assert all(started + timeout <= end for started, timeout in attempts), attempts
    assert attempts[-1][0] + 1 + 4.0 >= end  # and used the time it had: the next would not end before it
