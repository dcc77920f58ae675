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


def test_a_slow_request_the_client_gave_up_on_is_recorded_once_the_stand_in_stopped() -> None:
    # The replay fault test read the records while a SLOW answer was still asleep in the stand-in: that request,
    # which the client had seen and given up on, was missing from the counts about half the time.
    with StandIn(KEY, slow_seconds=1.5) as segment:
        segment.script(Fault.SLOW)
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
            post_batch(segment.url, timeout=0.5)
    assert [(r.status, r.fault) for r in segment.requests] == [(200, Fault.SLOW)]


def test_stop_waits_for_answers_still_on_their_way() -> None:
    with StandIn(KEY, latency=1.0) as segment, pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        post_batch(segment.url, timeout=0.3)
    assert segment.wait_idle(timeout=0)  # stop() returned only once the delayed answer was sent
    assert len(segment.requests) == 1
