"""The pacer in the delivery engine, against a Segment stand-in that enforces a workspace rate (real HTTP)."""

from __future__ import annotations

import time
from typing import Any

from ratelimit_standin import RateLimitedStandIn

from segment_bridge.delivery import DeliveryEngine, EngineThread, MessageStatus, RetryPolicy, SegmentTransport
from segment_bridge.delivery.pacing import RatePacer
from segment_bridge.track import TrackCall


def calls(count: int) -> list[TrackCall]:
    def message(i: int) -> dict[str, Any]:
        return {"type": "track", "event": "Call Answered", "anonymousId": f"CA{i}", "messageId": f"pace-{i}"}

    return [TrackCall.from_message(message(i), f"EV{i}", "t") for i in range(count)]


def engine_thread(url: str, key: str, pacer: RatePacer, batch: int) -> EngineThread:
    policy = RetryPolicy(max_attempts=8, budget_seconds=30, jitter=0, backoff_multiplier=0.05)
    transport = SegmentTransport(key, host=url)
    return EngineThread(DeliveryEngine(transport, policy, max_messages=batch, max_in_flight=4, pacer=pacer))


def test_unlimited_sending_pauses_everyone_after_a_429_and_loses_nothing(write_key: str) -> None:
    pacer = RatePacer(0)
    sent = calls(3_000)
    with RateLimitedStandIn(write_key, rate=5_000, capacity=1_000) as segment:
        sender = engine_thread(segment.url, write_key, pacer, batch=250)
        try:
            outcomes = sender.deliver(sent)
        finally:
            sender.close()
    assert {o.status for o in outcomes} == {MessageStatus.DELIVERED}
    assert segment.accepted_ids == {call.message_id for call in sent}
    metrics = pacer.metrics()
    # Every 429 reached the pacer, and each paused all sending for Retry-After (whole seconds).
    assert metrics.rate_limited == segment.rate_limited >= 1
    assert metrics.paused_seconds >= 1.0


def test_a_paced_engine_stays_under_the_workspace_rate_with_no_429(write_key: str) -> None:
    pacer = RatePacer(4_000)
    with RateLimitedStandIn(write_key, rate=5_000, capacity=1_000) as segment:
        sender = engine_thread(segment.url, write_key, pacer, batch=200)
        started = time.monotonic()
        try:
            outcomes = sender.deliver(calls(2_000))
        finally:
            sender.close()
        elapsed = time.monotonic() - started
    assert {o.status for o in outcomes} == {MessageStatus.DELIVERED}
    assert segment.rate_limited == 0
    # 2,000 events at 4,000/s, less the bucket's 400: never sooner than 0.4 s (a bound the limiter guarantees).
    assert elapsed >= (2_000 - 400) / 4_000


def test_messages_that_could_not_go_before_their_deadline_time_out_unsent(write_key: str) -> None:
    pacer = RatePacer(10)  # 100 events need 10 s; the deadline is in 0.3 s
    with RateLimitedStandIn(write_key, rate=5_000) as segment:
        sender = engine_thread(segment.url, write_key, pacer, batch=100)
        try:
            outcomes = sender.deliver(calls(100), deadline=time.monotonic() + 0.3)
        finally:
            sender.close(abandon=True)
    assert {o.status for o in outcomes} == {MessageStatus.TIMED_OUT}
    assert segment.requests == []
