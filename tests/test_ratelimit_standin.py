"""The rate-limited Segment stand-in: what it takes, what it refuses with 429, and the headers it sends."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest
from ratelimit_standin import RateLimitedStandIn, RateLimitedStandInProcess

from segment_bridge.delivery import SegmentTransport
from segment_bridge.exceptions import RetryableDeliveryError
from segment_bridge.track import TrackCall

KEY = "ratelimit-key"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def message(i: int) -> dict[str, Any]:
    return {"type": "track", "event": "Call Answered", "anonymousId": f"CA{i}", "messageId": f"m-{i}"}


def post(url: str, first: int, count: int) -> tuple[int, dict[str, str]]:
    batch = [message(i) for i in range(first, first + count)]
    body = orjson.dumps({"batch": batch, "sentAt": "2026-01-01T00:00:00.000Z"})
    request = urllib.request.Request(url + "/v1/batch", data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{KEY}:".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - 127.0.0.1
            answer.read()
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, dict(error.headers)


def test_events_above_the_bucket_are_answered_429_with_both_headers_and_not_accepted() -> None:
    clock = Clock()
    with RateLimitedStandIn(KEY, rate=1_000, clock=clock) as segment:
        assert post(segment.url, 0, 600)[0] == 200
        status, headers = post(segment.url, 600, 500)  # 400 left: 100 short, 0.1 s at 1,000/s
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert headers["X-RateLimit-Reset"] == "1"
        assert segment.accepted_events == 600
        assert len(segment.accepted_ids) == 600
        assert segment.rate_limited == 1
        assert [r.status for r in segment.requests] == [200, 429]


def test_the_bucket_refills_at_the_rate_and_counts_events_per_second() -> None:
    clock = Clock()
    with RateLimitedStandIn(KEY, rate=1_000, clock=clock) as segment:
        assert post(segment.url, 0, 1_000)[0] == 200  # the full bucket: one second's worth
        assert post(segment.url, 1_000, 1)[0] == 429
        clock.now += 0.5
        assert post(segment.url, 1_000, 500)[0] == 200
        assert post(segment.url, 1_500, 1)[0] == 429
        clock.now += 2.0  # refills to the bucket's size, no more
        assert post(segment.url, 2_000, 1_000)[0] == 200
        assert post(segment.url, 3_000, 1)[0] == 429
        assert segment.per_second() == {0: 1_500, 2: 1_000}
        assert segment.rate_limited == 3
        assert segment.stats()["accepted_events"] == 2_500


def test_a_long_wait_is_said_in_whole_seconds_rounded_up() -> None:
    clock = Clock()
    with RateLimitedStandIn(KEY, rate=100, capacity=300, clock=clock) as segment:
        assert post(segment.url, 0, 300)[0] == 200
        status, headers = post(segment.url, 300, 250)  # 2.5 s at 100/s
        assert (status, headers["Retry-After"], headers["X-RateLimit-Reset"]) == (429, "3", "3")


def test_the_transport_reads_the_wait_from_the_429(write_key: str) -> None:
    clock = Clock()
    with RateLimitedStandIn(write_key, rate=10, capacity=10, clock=clock) as segment:
        transport = SegmentTransport(write_key, host=segment.url)
        calls = [TrackCall.from_message(message(i), f"EV{i}", "t") for i in range(30)]
        transport.send(calls[:10])
        with pytest.raises(RetryableDeliveryError) as raised:
            transport.send(calls[10:30])  # 20 events, a bucket of 10: a full bucket in 1 s
        transport.close()
    assert raised.value.status == 429
    assert raised.value.retry_after == 1.0
    assert segment.accepted_events == 10


def test_the_process_stand_in_reports_its_counts() -> None:
    with RateLimitedStandInProcess(KEY, rate=1_000) as segment:
        assert post(segment.url, 0, 800)[0] == 200
        assert post(segment.url, 800, 800)[0] == 429
        stats = segment.stats()
    assert segment.process.returncode == 0
    assert (stats["accepted_events"], stats["rate_limited"], stats["unique"]) == (800, 1, 800)
    assert sum(stats["per_second"].values()) == 800
