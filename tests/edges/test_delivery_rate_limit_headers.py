"""SegmentTransport reads the wait from ``Retry-After``, or from ``X-RateLimit-Reset`` when that is all Segment sent."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import responses

from segment_bridge.delivery import SegmentTransport
from segment_bridge.delivery.transports import _retry_after
from segment_bridge.exceptions import RetryableDeliveryError
from segment_bridge.track import TrackCall

URL = "https://api.segment.io/v1/batch"


def one_call() -> list[TrackCall]:
    message = {"type": "track", "event": "Call Answered", "anonymousId": "CA1", "messageId": "m-1"}
    return [TrackCall.from_message(message, "EV1", "com.twilio.voice.status-callback.call.answered")]


def answer(headers: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(headers=headers)


def test_x_ratelimit_reset_alone_becomes_seconds_from_now() -> None:
    assert _retry_after(answer({"X-RateLimit-Reset": "1000030"}), now=lambda: 1_000_000.0) == 30.0


def test_retry_after_wins_over_x_ratelimit_reset() -> None:
    headers = {"Retry-After": "7", "X-RateLimit-Reset": "1000030"}
    assert _retry_after(answer(headers), now=lambda: 1_000_000.0) == 7.0


@pytest.mark.parametrize("reset", ["999990", "soon", "", "nan", "inf"])
def test_a_reset_time_past_or_unreadable_is_no_wait(reset: str) -> None:
    assert _retry_after(answer({"X-RateLimit-Reset": reset}), now=lambda: 1_000_000.0) is None


@responses.activate
def test_a_429_with_only_x_ratelimit_reset_carries_its_wait(write_key: str) -> None:
    reset = int(time.time()) + 30
    responses.post(URL, status=429, json={"code": "rate_limited"}, headers={"X-RateLimit-Reset": str(reset)})
    with pytest.raises(RetryableDeliveryError) as caught:
        SegmentTransport(write_key).send(one_call())
    assert caught.value.status == 429
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31
