"""The Segment stand-in's own promises that other tests rely on: what a client has seen is already recorded."""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request

import orjson
import pytest
from standin import Fault, StandIn

KEY = "standin-key"


def post_batch(url: str, timeout: float) -> None:
    body = orjson.dumps({"batch": [], "sentAt": "2026-01-01T00:00:00.000Z", "writeKey": KEY})
    request = urllib.request.Request(url + "/v1/batch", data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{KEY}:".encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - 127.0.0.1
        answer.read()


def test_a_slow_request_is_recorded_before_the_client_gives_up() -> None:
    # A client that timed out on a slow answer has seen the request: a test reading the records right after must
    # find it (reading them before the stand-in's sleep ended made a replay test fail about half the time).
    with StandIn(KEY, slow_seconds=1.0) as segment:
        segment.script(Fault.SLOW)
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
            post_batch(segment.url, timeout=0.2)
        assert [(r.status, r.fault) for r in segment.requests] == [(200, Fault.SLOW)]


def test_stop_waits_for_answers_still_on_their_way() -> None:
    with StandIn(KEY, latency=0.3) as segment:
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
            post_batch(segment.url, timeout=0.05)
        assert not segment.wait_idle(timeout=0)  # the answer is still being delayed
    assert segment.wait_idle(timeout=0)  # stop() returned only once it was sent
    assert len(segment.requests) == 1
