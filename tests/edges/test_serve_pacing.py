"""serve's pacing: --max-rate / SEGMENT_BRIDGE_MAX_RATE, the shared pause after Segment's 429, and /metrics."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

pytest.importorskip("starlette")

from apphelp import AppHarness
from standin import Fault, StandIn

from segment_bridge.delivery import SegmentTransport
from segment_bridge.exceptions import ConfigurationError
from segment_bridge.mapping import load_mapping
from segment_bridge.samples import call_events
from segment_bridge.server import ServerConfig, create_app
from segment_bridge.settings import Settings

CALL = orjson.dumps(call_events(1))
MAPPING = load_mapping()


class Harness(AppHarness):
    def post(self, body: bytes) -> Any:
        return self.call(self.client.post, "/events", content=body, headers={"Content-Type": "application/json"})

    def metrics(self) -> str:
        return str(self.call(self.client.get, "/metrics").text)


def app(standin: StandIn, write_key: str, **changes: Any) -> Any:
    config = ServerConfig.from_env({}, insecure_no_signature=True, **changes)
    transport = SegmentTransport(write_key, host=standin.url, timeout=2.0)
    return create_app(Settings(), config, transport=transport, mapping=MAPPING)


def test_serve_is_unlimited_by_default_and_reads_the_variable_and_the_option() -> None:
    assert ServerConfig.from_env({}, insecure_no_signature=True).max_rate == 0
    environ = {"SEGMENT_BRIDGE_MAX_RATE": "300"}
    assert ServerConfig.from_env(environ, insecure_no_signature=True).max_rate == 300
    assert ServerConfig.from_env(environ, insecure_no_signature=True, max_rate=100.0).max_rate == 100
    with pytest.raises(ConfigurationError, match=r"^SEGMENT_BRIDGE_MAX_RATE must be a number of events per second"):
        ServerConfig.from_env({"SEGMENT_BRIDGE_MAX_RATE": "lots"}, insecure_no_signature=True)


def test_a_429_pauses_sending_and_shows_in_the_metrics(standin: StandIn, write_key: str) -> None:
    standin.script(Fault.RATE_LIMIT)  # Retry-After: 1
    with Harness(app(standin, write_key, delivery_budget=4.0, max_rate=100.0)) as h:
        response = h.post(CALL)
        metrics = h.metrics()
    assert response.status_code == 200
    assert [r.status for r in standin.requests] == [429, 200]
    assert "segment_bridge_segment_rate_limited_total 1.0" in metrics
    assert "segment_bridge_paced_seconds_total 1.0" in metrics
    assert "segment_bridge_max_rate " in metrics
    assert "segment_bridge_send_rate " in metrics


def test_events_the_limit_cannot_send_within_the_budget_are_answered_503_at_once(
    standin: StandIn, write_key: str
) -> None:
    events = len(call_events(1))
    # One event per second and a one-second budget: the call's events cannot all go in time.
    with Harness(app(standin, write_key, delivery_budget=1.0, max_rate=1.0)) as h:
        response = h.post(CALL)
        metrics = h.metrics()
    assert events > 2
    assert response.status_code == 503
    assert standin.requests == []
    assert "segment_bridge_max_rate 1.0" in metrics
