"""segment_bridge.server in process: signatures (twilio's RequestValidator as oracle), the status-code contract
against the stand-in Segment, group commit, redeliveries, malformed bodies, limits, shutdown and secrets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
anyio_from_thread = pytest.importorskip("anyio.from_thread")
twilio_validator = pytest.importorskip("twilio.request_validator")

from apphelp import AppHarness  # noqa: E402
from standin import Fault, StandIn  # noqa: E402

from segment_bridge.delivery import SegmentTransport  # noqa: E402
from segment_bridge.exceptions import (  # noqa: E402
    ConfigurationError,
    PayloadTooLargeError,
)
from segment_bridge.mapping import load_mapping  # noqa: E402
from segment_bridge.samples import call_events, sink_test_event  # noqa: E402
from segment_bridge.server import ServerConfig, create_app  # noqa: E402
from segment_bridge.settings import Settings  # noqa: E402
from segment_bridge.track import TrackCall  # noqa: E402
from segment_bridge.translate import translate_record  # noqa: E402

RequestValidator = twilio_validator.RequestValidator

TOKEN = "tw_auth_T0ken-for-tests-0123456789ab"
PUBLIC_URL = "https://bridge.example.com/events"
MAPPING = load_mapping()


# ----------------------------------------------------------------------------------------------------------------
# Harness: the app's lifespan and an httpx client on one event loop in a background thread
# ----------------------------------------------------------------------------------------------------------------


class Harness(AppHarness):
    """The app under test, with Twilio-style posts to /events (signed or not, one or many at once)."""

    def post(self, body: bytes, headers: dict[str, str] | None = None, query: str = "") -> Any:
        return self.call(self._post, body, headers or {}, query)

    async def _post(self, body: bytes, headers: dict[str, str], query: str) -> Any:
        return await self.client.post(f"/events?{query}" if query else "/events", content=body, headers=headers)

    def post_signed(self, body: bytes, **kwargs: Any) -> Any:
        query, headers = twilio_signed(body, **kwargs)
        return self.post(body, headers, query)

    def post_many(self, bodies: Sequence[bytes]) -> list[Any]:
        async def all_at_once() -> list[Any]:
            signed = [twilio_signed(body) for body in bodies]
            return list(
                await asyncio.gather(*(self._post(body, h, q) for body, (q, h) in zip(bodies, signed, strict=True)))
            )

        return self.call(all_at_once)  # type: ignore[no-any-return]

    def get(self, path: str) -> Any:
        return self.call(self.client.get, path)


def twilio_signed(
    body: bytes, *, token: str = TOKEN, url: str = PUBLIC_URL, with_hash: bool = True
) -> tuple[str, dict[str, str]]:
    """Sign like Twilio, with twilio-python's own primitives; returns (raw query, headers)."""
    oracle = RequestValidator(token)
    separator = "&" if "?" in url else "?"
    full = f"{url}{separator}bodySHA256={oracle.compute_hash(body.decode())}" if with_hash else url
    signature = oracle.compute_signature(full, {})
    return full.partition("?")[2], {"X-Twilio-Signature": signature, "Content-Type": "application/json"}


class RecordingTransport:
    """Accepts every batch, remembering it; optionally waits on an event first (to hold requests in flight)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gate = gate

    def send(self, batch: Sequence[TrackCall]) -> None:
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append([call.message_id for call in batch])

    def close(self) -> None:
        pass


def config(**changes: Any) -> ServerConfig:
    values: dict[str, Any] = {"public_url": PUBLIC_URL, "auth_token": TOKEN, "delivery_budget": 1.0}
    values.update(changes)
    return ServerConfig.from_env({}, **values)


def make_app(transport: Any = None, **changes: Any) -> Any:
    return create_app(Settings(), config(**changes), transport=transport or RecordingTransport(), mapping=MAPPING)


def message_ids(body: bytes) -> list[str]:
    return [t.track.message_id for t in translate_record(body, MAPPING) if t.track is not None]


CALL = orjson.dumps(call_events(1))


# ----------------------------------------------------------------------------------------------------------------
# Signature
# ----------------------------------------------------------------------------------------------------------------


def test_valid_signature_is_delivered() -> None:
    transport = RecordingTransport()
    with Harness(make_app(transport)) as h:
        response = h.post_signed(CALL)
    assert response.status_code == 200
    assert [event["outcome"] for event in response.json()["events"]] == ["delivered"] * 4
    assert sorted(m for batch in transport.batches for m in batch) == sorted(message_ids(CALL))


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("tampered_body", "body_hash_mismatch"),
        ("wrong_url", "signature_mismatch"),
        ("missing_body_hash", "missing_body_hash"),
        ("wrong_token", "signature_mismatch"),
        ("missing_header", "missing_header"),
    ],
)
def test_bad_signature_is_403_before_any_processing(case: str, check: str, caplog: pytest.LogCaptureFixture) -> None:
    transport = RecordingTransport()
    body = CALL
    if case == "wrong_url":
        query, headers = twilio_signed(body, url="https://bridge.example.com/other")
    elif case == "wrong_token":
        query, headers = twilio_signed(body, token="another-token-0000000000000000000")
    elif case == "missing_body_hash":
        query, headers = twilio_signed(body, with_hash=False)
    else:
        query, headers = twilio_signed(body)
    if case == "missing_header":
        del headers["X-Twilio-Signature"]
    sent = body.replace(b"initiated", b"INITIATED", 1) if case == "tampered_body" else body
    # The oracle agrees that this request must be refused.
    oracle_url = f"{PUBLIC_URL}?{query}" if query else PUBLIC_URL
    with contextlib.suppress(TypeError):
        assert not RequestValidator(TOKEN).validate(oracle_url, sent.decode(), headers.get("X-Twilio-Signature", ""))
    with caplog.at_level(logging.INFO, logger="segment_bridge"), Harness(make_app(transport)) as h:
        response = h.post(sent, headers, query)
        metrics = h.get("/metrics").text
    assert response.status_code == 403
    assert response.json() == {"error": "signature", "check": check}
    assert transport.batches == []
    assert f'segment_bridge_signature_failures_total{{check="{check}"}} 1.0' in metrics
    lines = [r.getMessage() for r in caplog.records if '"status":403' in r.getMessage()]
    assert len(lines) == 1
    assert check in lines[0]
    assert TOKEN not in caplog.text
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    ("configured", "signed"),
    [
        ("https://bridge.example.com:443/events", "https://bridge.example.com/events"),
        ("https://bridge.example.com/events", "https://bridge.example.com:443/events"),
    ],
)
def test_explicit_443_port_is_accepted(configured: str, signed: str) -> None:
    query, headers = twilio_signed(CALL, url=signed)
    assert RequestValidator(TOKEN).validate(f"{configured}?{query}", CALL.decode(), headers["X-Twilio-Signature"])
    with Harness(make_app(public_url=configured)) as h:
        assert h.post(CALL, headers, query).status_code == 200


def test_query_of_the_destination_is_kept_byte_for_byte() -> None:
    query, headers = twilio_signed(CALL, url=f"{PUBLIC_URL}?team=a%20b&x=it%27s+ok")
    with Harness(make_app(public_url=f"{PUBLIC_URL}?team=a%20b&x=it%27s+ok")) as h:
        assert h.post(CALL, headers, query).status_code == 200
        reencoded = query.replace("%20", "+", 1)
        assert h.post(CALL, headers, reencoded).status_code == 403


def test_basic_auth_user_info_of_the_destination_is_never_kept() -> None:
    """Twilio sinks may carry ``user:password@``; Twilio signs without it, so the bridge drops it at once."""
    import argparse

    from segment_bridge.cli.serve import add_serve_arguments
    from segment_bridge.server.run import _worker_options

    password = "s3cret-basic-pw"
    destination = f"https://twilio:{password}@bridge.example.com:8443/events?team=a%20b"
    cfg = config(public_url=destination)
    assert password not in repr(cfg)
    assert cfg.public_url == "https://bridge.example.com:8443/events?team=a%20b"
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--public-url", destination, "--workers", "2"])
    options = _worker_options(args, cfg)
    assert password not in options
    assert orjson.loads(options)["public_url"] == cfg.public_url
    # Twilio's signature (over the URL without user-info) still checks out.
    query, headers = twilio_signed(CALL, url=cfg.public_url)
    with Harness(make_app(public_url=destination)) as h:
        assert h.post(CALL, headers, query).status_code == 200


def test_insecure_mode_accepts_unsigned_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(
        Settings(), config(insecure_no_signature=True, auth_token=None), transport=RecordingTransport(), mapping=MAPPING
    )
    with caplog.at_level(logging.WARNING, logger="segment_bridge"), Harness(app) as h:
        assert h.post(CALL).status_code == 200
    assert "insecure_no_signature" in caplog.text


def test_token_and_public_url_are_required() -> None:
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        create_app(Settings(), config(auth_token=None), transport=RecordingTransport(), mapping=MAPPING)
    with pytest.raises(ConfigurationError, match="public"):
        create_app(Settings(), config(public_url=None), transport=RecordingTransport(), mapping=MAPPING)
    cfg = ServerConfig.from_env({"TWILIO_AUTH_TOKEN": TOKEN, "SEGMENT_BRIDGE_PUBLIC_URL": PUBLIC_URL})
    assert cfg.public_url == PUBLIC_URL
    assert TOKEN not in repr(cfg)


def test_no_environment_variable_turns_signature_checking_off() -> None:
    """Only the visible flag disables verification; an inherited variable must not do it silently."""
    environ = {"SEGMENT_BRIDGE_INSECURE_NO_SIGNATURE": "1"}
    cfg = ServerConfig.from_env(environ)
    assert cfg.insecure_no_signature is False
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        cfg.check_security()
    assert ServerConfig.from_env(environ, insecure_no_signature=True).insecure_no_signature is True


# ----------------------------------------------------------------------------------------------------------------
# The status-code contract against the stand-in Segment
# ----------------------------------------------------------------------------------------------------------------


def segment_app(standin: StandIn, write_key: str, **changes: Any) -> Any:
    transport = SegmentTransport(write_key, host=standin.url, timeout=changes.pop("timeout", 1.0))
    return make_app(transport, **changes)


def test_transient_500_is_retried_within_the_request(standin: StandIn, write_key: str) -> None:
    standin.script(Fault.ERROR_500, Fault.ERROR_500)
    with Harness(segment_app(standin, write_key)) as h:
        response = h.post_signed(CALL)
    assert response.status_code == 200
    assert set(message_ids(CALL)) <= standin.accepted_ids
    assert [r.status for r in standin.requests] == [500, 500, 200]


class _TripwireSession:
    """Stands for the SDK's module-level session: serve must never post through it."""

    def post(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("posted through the SDK's shared session")


def test_segment_posts_go_through_a_session_of_the_transport_s_own(
    standin: StandIn, write_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segment.analytics import request as segment_request

    tripwire = _TripwireSession()
    monkeypatch.setattr(segment_request, "_session", tripwire)
    with Harness(segment_app(standin, write_key)) as h:
        response = h.post_signed(CALL)
    assert response.status_code == 200
    assert set(message_ids(CALL)) <= standin.accepted_ids
    # The SDK's module (shared with an application's own analytics client) is left as it was.
    assert segment_request._session is tripwire


def test_segment_posts_use_the_proxy_from_the_environment(write_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"success": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Proxy) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            transport = SegmentTransport(write_key, host="http://segment.invalid", timeout=2.0)
            with Harness(make_app(transport)) as h:
                response = h.post_signed(CALL)
        finally:
            proxy.shutdown()
    assert response.status_code == 200
    assert seen == ["http://segment.invalid/v1/batch"]


@pytest.mark.parametrize("fault", [Fault.ERROR_500, Fault.RATE_LIMIT, Fault.DROP_BEFORE])
def test_segment_down_gives_503_and_nothing_acknowledged(standin: StandIn, write_key: str, fault: Fault) -> None:
    standin.retry_after = 7
    standin.script(*[fault] * 50)
    with Harness(segment_app(standin, write_key, delivery_budget=0.6)) as h:
        started = time.monotonic()
        response = h.post_signed(CALL)
        elapsed = time.monotonic() - started
        health = h.get("/healthz").json()
    assert response.status_code == 503
    # Segment's own Retry-After is passed on to Twilio; without one, the default 5 s.
    assert response.headers["Retry-After"] == ("7" if fault is Fault.RATE_LIMIT else "5")
    assert {event["outcome"] for event in response.json()["events"]} == {"failed"}
    assert not set(message_ids(CALL)) & standin.accepted_ids
    # The budget (0.6 s) ends the retries, well inside the 5 s Twilio waits; not a speed measurement.
    assert elapsed < 4.5
    assert health["segment"]["failing"] is True


def test_slow_segment_answer_past_the_budget_is_503(standin: StandIn, write_key: str) -> None:
    standin.slow_seconds = 1.0
    standin.script(Fault.SLOW)
    with Harness(segment_app(standin, write_key, delivery_budget=0.4, timeout=2.0)) as h:
        response = h.post_signed(CALL)
        assert response.status_code == 503
        assert {event["reason"] for event in response.json()["events"]} == {"timeout"}
        # Twilio's retry after Segment did take the batch: answered from the cache, no second request.
        # The stand-in answers the slow request once it has ended: stop() or wait_idle() tell when.
        assert standin.wait_idle(timeout=5)
        deadline = time.monotonic() + 5
        while set(message_ids(CALL)) - set(h.bridge.delivered._ids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(message_ids(CALL)) <= set(h.bridge.delivered._ids), "the late success was not cached"
        requests_before = len(standin.requests)
        again = h.post_signed(CALL)
    assert again.status_code == 200
    assert {event["reason"] for event in again.json()["events"]} == {"already_delivered"}
    assert len(standin.requests) == requests_before


def test_status_contract_under_random_faults(standin: StandIn, write_key: str) -> None:
    """Every event answered 200 was accepted by Segment; every event Segment did not accept got 5xx or 429."""
    standin.fault_rate = 0.6
    standin.faults = (Fault.ERROR_500, Fault.RATE_LIMIT, Fault.SLOW, Fault.DROP_BEFORE, Fault.DROP_AFTER)
    standin.slow_seconds = 0.6
    standin.retry_after = 1
    bodies = [orjson.dumps(call_events(n)) for n in range(60)]
    # Small batches so that many Segment requests (and faults) are involved.
    app = segment_app(standin, write_key, delivery_budget=0.5, timeout=0.8, batch_messages=4)
    with Harness(app) as h:
        responses = h.post_many(bodies)
    accepted = standin.accepted_ids
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503, 429}
    assert 200 in statuses
    assert 503 in statuses
    for body, response in zip(bodies, responses, strict=True):
        ids = set(message_ids(body))
        if response.status_code == 200:
            assert ids <= accepted
        if not ids <= accepted:
            assert response.status_code in (503, 429)
    assert standin.violations == []


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(401, id="401-wrong-or-rotated-write-key"),
        pytest.param(403, id="403"),
        pytest.param(404, id="404"),
        pytest.param(400, id="400-not-too-large"),
    ],
)
@pytest.mark.parametrize("with_dead_letter", [True, False])
def test_segment_rejecting_a_batch_is_503_never_acknowledged(
    standin: StandIn,
    write_key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    with_dead_letter: bool,
) -> None:
    """A wrong write key must not lose events: Twilio retries 503 for hours while the operator fixes the key."""
    standin.script(status)  # not retried: a permanent answer
    dead_letter = tmp_path / "dead.jsonl"
    changes: dict[str, Any] = {"dead_letter": dead_letter} if with_dead_letter else {}
    with (
        caplog.at_level(logging.INFO, logger="segment_bridge"),
        Harness(segment_app(standin, write_key, **changes)) as h,
    ):
        response = h.post_signed(CALL)
        health = h.get("/healthz").json()
        metrics = h.get("/metrics").text
        # The operator fixed the key: Twilio's retry is delivered and the state clears.
        retried = h.post_signed(CALL)
        health_after = h.get("/healthz").json()
        metrics_after = h.get("/metrics").text
    assert response.status_code == 503
    # The operator must fix the key first: Twilio is asked to come back in a minute, not hammer a broken key.
    assert response.headers["Retry-After"] == "60"
    assert {(e["outcome"], e["reason"]) for e in response.json()["events"]} == {("failed", "segment_rejected")}
    assert f"HTTP {status}" in response.json()["events"][0]["hint"]
    assert not dead_letter.exists() or dead_letter.read_bytes() == b""
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any('"segment_rejected"' in line and f'"status":{status}' in line for line in errors), errors
    assert write_key not in caplog.text
    assert health["status"] == "degraded"
    assert health["segment"]["rejecting"] is True
    assert health["segment"]["last_rejection_status"] == status
    assert "segment_bridge_segment_rejecting 1.0" in metrics
    assert f'segment_bridge_segment_rejections_total{{status="{status}"}} 1.0' in metrics
    assert 'segment_bridge_events_total{outcome="failed",reason="segment_rejected"} 4.0' in metrics
    assert retried.status_code == 200
    assert set(message_ids(CALL)) <= standin.accepted_ids
    assert health_after["status"] == "ok"
    assert health_after["segment"]["rejecting"] is False
    assert "segment_bridge_segment_rejecting 0.0" in metrics_after


class TooLargeTransport(RecordingTransport):
    """Refuses, as too large, every request that holds the message ``too_large``; accepts the others."""

    def __init__(self, too_large: str) -> None:
        super().__init__()
        self.too_large = too_large

    def send(self, batch: Sequence[TrackCall]) -> None:
        if any(call.message_id == self.too_large for call in batch):
            raise PayloadTooLargeError("too large", status=400, kind="too_large", count=len(batch))
        super().send(batch)


def test_message_too_large_alone_is_dead_lettered_and_acknowledged(tmp_path: Path) -> None:
    ids = message_ids(CALL)
    transport = TooLargeTransport(ids[1])
    dead_letter = tmp_path / "dead.jsonl"
    with Harness(make_app(transport, dead_letter=dead_letter)) as h:
        response = h.post_signed(CALL)
    assert response.status_code == 200
    outcomes = [(e["outcome"], e["reason"]) for e in response.json()["events"]]
    assert outcomes.count(("refused", "delivery_failed")) == 1
    assert outcomes.count(("delivered", "")) == 3
    records = [orjson.loads(line) for line in dead_letter.read_bytes().splitlines()]
    assert [r["reason"] for r in records] == ["delivery_failed"]
    assert sorted(i for batch in transport.batches for i in batch) == sorted(set(ids) - {ids[1]})


def test_message_too_large_alone_without_dead_letter_is_503() -> None:
    """Never 200 for a delivery_failed event that is recorded nowhere but a log line."""
    ids = message_ids(CALL)
    with Harness(make_app(TooLargeTransport(ids[1]))) as h:
        response = h.post_signed(CALL)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    outcomes = [(e["outcome"], e["reason"]) for e in response.json()["events"]]
    assert outcomes.count(("failed", "too_large")) == 1
    assert outcomes.count(("delivered", "")) == 3


# ----------------------------------------------------------------------------------------------------------------
# Group commit, redeliveries, refusals
# ----------------------------------------------------------------------------------------------------------------


def test_concurrent_requests_share_segment_batches(standin: StandIn, write_key: str) -> None:
    standin.latency = 0.05
    bodies = [orjson.dumps(call_events(n)[0]) for n in range(200)]
    with Harness(segment_app(standin, write_key)) as h:
        responses = h.post_many(bodies)
        metrics = h.get("/metrics").text
    assert {r.status_code for r in responses} == {200}
    assert len(standin.accepted_ids) == 200
    assert len(standin.requests) <= 20, "group commit should coalesce 200 single-event requests"
    assert "segment_bridge_batch_size_count" in metrics


def test_redelivery_is_answered_from_the_cache(standin: StandIn, write_key: str) -> None:
    with Harness(segment_app(standin, write_key)) as h:
        first = h.post_signed(CALL)
        second = h.post_signed(CALL)
    assert first.status_code == second.status_code == 200
    assert {event["reason"] for event in second.json()["events"]} == {"already_delivered"}
    assert len(standin.requests) == 1


def test_refused_and_test_events_are_recorded_and_acknowledged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = call_events(2)
    deprecated = dict(events[0], id="VWdeprecated", type="com.twilio.voice.webhook.status-callback.call.initiated")
    unknown = {"specversion": "1.0", "type": "com.example.unknown", "id": "X1", "source": "/x"}
    body = orjson.dumps([events[1], deprecated, unknown, sink_test_event()])
    transport = RecordingTransport()
    dead_letter = tmp_path / "dead.jsonl"
    with (
        caplog.at_level(logging.INFO, logger="segment_bridge"),
        Harness(make_app(transport, dead_letter=dead_letter)) as h,
    ):
        response = h.post_signed(body)
    assert response.status_code == 200
    # The operator needs the test id for the sink's Validate call.
    assert '"test_id":"f6a5d5a0-0000-4000-8000-000000000001"' in caplog.text
    outcomes = [(e["outcome"], e["reason"]) for e in response.json()["events"]]
    assert outcomes == [
        ("delivered", ""),
        ("refused", "deprecated_event_type"),
        ("refused", "unknown_event_type"),
        ("acknowledged", "test_event"),
    ]
    assert response.json()["events"][1]["hint"]
    records = [orjson.loads(line) for line in dead_letter.read_bytes().splitlines()]
    assert [r["id"] for r in records] == ["VWdeprecated", "X1"]
    assert sum(len(batch) for batch in transport.batches) == 1


def test_unwritable_dead_letter_is_not_acknowledged(tmp_path: Path) -> None:
    unknown = orjson.dumps({"specversion": "1.0", "type": "com.example.unknown", "id": "X1", "source": "/x"})
    with Harness(make_app(dead_letter=tmp_path / "missing-dir" / "dead.jsonl")) as h:
        response = h.post_signed(unknown)
    assert response.status_code == 503


# ----------------------------------------------------------------------------------------------------------------
# Malformed bodies, limits, concurrency
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"not json", b"", b"[[]]", b"42", b'"text"', b"[1, 2]", b"{", b'{"foo": 1}', b"null"])
def test_body_without_cloudevent_is_400_and_dead_lettered(body: bytes, tmp_path: Path) -> None:
    dead_letter = tmp_path / "dead.jsonl"
    with Harness(make_app(dead_letter=dead_letter, dead_letter_body_limit=8)) as h:
        response = h.post_signed(body)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_json", "invalid_event")
    (record,) = [orjson.loads(line) for line in dead_letter.read_bytes().splitlines()]
    assert record["event"] == body[:8].decode()


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["com.twilio.voice.status-callback.call.completed", "x", ""])},
    optional={
        "specversion": st.sampled_from(["1.0", "0.3", 1]),
        "id": st.text(max_size=10) | st.integers(min_value=0, max_value=2**32),
        "source": st.text(max_size=10),
        "time": st.text(max_size=30),
        "data": _json_values,
    },
)


@pytest.fixture(scope="module")
def fuzz_harness() -> Iterator[Harness]:
    with Harness(make_app(insecure_no_signature=True)) as h:
        yield h


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=200),
        _json_values.map(orjson.dumps),
        _event_like.map(orjson.dumps),
        st.lists(_event_like | _json_values, max_size=4).map(orjson.dumps),
    )
)
def test_malformed_bodies_never_500(fuzz_harness: Harness, body: bytes) -> None:
    # ASGITransport re-raises any exception the app lets through, so a traceback fails the test too.
    response = fuzz_harness.post(body, {"Content-Type": "application/json"})
    assert response.status_code in (200, 400)
    payload = response.json()
    assert isinstance(payload, dict)


def test_body_over_the_limit_is_413() -> None:
    transport = RecordingTransport()
    with Harness(make_app(transport, max_body_size=100)) as h:
        response = h.post_signed(CALL)

        async def chunked() -> Any:
            async def chunks() -> Any:
                for _ in range(10):
                    yield b"x" * 20

            return await h.client.post("/events", content=chunks())

        streamed = h.call(chunked)
    assert response.status_code == streamed.status_code == 413
    assert transport.batches == []


@pytest.mark.parametrize("declared", [b"\xb2", b"\xb9\xb2", b"-1", b"1e9", b" 12", b"\xff"])
def test_odd_content_length_header_never_raises(declared: bytes) -> None:
    """Latin-1 b'\\xb2' decodes to '²', which str.isdigit accepts and int() refuses."""
    body = orjson.dumps({"nope": 1})
    with Harness(make_app(insecure_no_signature=True)) as h:

        async def raw() -> tuple[int, bytes]:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/events",
                "raw_path": b"/events",
                "query_string": b"",
                "root_path": "",
                "headers": [(b"content-length", declared), (b"content-type", b"application/json")],
                "client": ("127.0.0.1", 1),
                "server": ("bridge", 80),
            }
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await h.app(scope, receive, send)
            return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

        status, answer = h.call(raw)
    assert status == 400
    assert orjson.loads(answer)["error"] == "invalid_event"


def test_unexpected_error_in_a_request_is_503_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """A bug while handling one request must make Twilio retry (503), not drop the events (500 is retried too,
    but with a traceback in the answer path and nothing the operator can grep for)."""
    with caplog.at_level(logging.DEBUG, logger="segment_bridge"), Harness(make_app()) as h:

        async def broken(body: bytes) -> Any:
            raise KeyError("From=+15550100")  # an error message may hold payload bits

        h.bridge._translate = broken
        response = h.post_signed(CALL)
        health = h.get("/healthz")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"] == "internal error"
    assert "+15550100" not in response.text
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any('"internal_error"' in line and "KeyError" in line for line in errors), errors
    assert not any("+15550100" in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert health.status_code == 200
    assert h.bridge.active == 0


def test_over_the_concurrency_limit_is_429() -> None:
    gate = threading.Event()
    with Harness(make_app(RecordingTransport(gate), max_concurrency=1)) as h:

        async def two() -> list[Any]:
            q1, h1 = twilio_signed(CALL)
            first = asyncio.ensure_future(h._post(CALL, h1, q1))
            # The first request holds its slot until the gate opens: wait until it does, never forever.
            async with asyncio.timeout(5):
                while h.bridge.active == 0:
                    await asyncio.sleep(0.001)
            other = orjson.dumps(call_events(3))
            q2, h2 = twilio_signed(other)
            second = await h._post(other, h2, q2)
            gate.set()
            return [await first, second]

        first, second = h.call(two)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"


# ----------------------------------------------------------------------------------------------------------------
# Operations: health, metrics, shutdown, secrets
# ----------------------------------------------------------------------------------------------------------------


def test_healthz_and_metrics(standin: StandIn, write_key: str) -> None:
    with Harness(segment_app(standin, write_key)) as h:
        before = h.get("/healthz").json()
        h.post_signed(CALL)
        after = h.get("/healthz").json()
        metrics = h.get("/metrics")
    assert before["status"] == "ok"
    assert before["segment"]["answered_recently"] is False
    assert after["segment"]["answered_recently"] is True
    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'segment_bridge_events_total{outcome="delivered",reason=""} 4.0' in text
    assert 'segment_bridge_segment_requests_total{status="200"} 1.0' in text
    assert 'segment_bridge_http_responses_total{status="200"} 1.0' in text
    assert "segment_bridge_request_duration_seconds_bucket" in text
    assert "segment_bridge_segment_retries_total 0.0" in text


def test_two_apps_in_one_process_have_their_own_metrics() -> None:
    with Harness(make_app()) as a, Harness(make_app()) as b:
        a.post_signed(CALL)
        assert 'segment_bridge_http_responses_total{status="200"} 1.0' in a.get("/metrics").text
        assert 'status="200"' not in b.get("/metrics").text


def test_shutdown_posts_pending_events_before_exiting() -> None:
    transport = RecordingTransport()
    app = make_app(transport, linger=30.0, max_linger=30.0, delivery_budget=10.0)
    harness = Harness(app).__enter__()
    try:
        query, headers = twilio_signed(CALL)
        pending = harness.portal.start_task_soon(harness._post, CALL, headers, query)
        deadline = time.monotonic() + 2
        while harness.bridge.engine.pending < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert harness.bridge.engine.pending == 4, "the events never reached the delivery engine"
        assert transport.batches == []
        harness.call(harness.bridge.stop)
        response = pending.result(timeout=5)
    finally:
        harness.__exit__(None, None, None)
    assert response.status_code == 200
    assert len(transport.batches) == 1


def test_secrets_never_in_logs_or_answers(standin: StandIn, write_key: str, caplog: pytest.LogCaptureFixture) -> None:
    standin.script(Fault.ERROR_500)
    with caplog.at_level(logging.DEBUG), Harness(segment_app(standin, write_key)) as h:
        answers = [h.post_signed(CALL).text, h.post_signed(b"nope").text, h.get("/metrics").text]
        answers.append(h.post(CALL, {"X-Twilio-Signature": "x"}, "bodySHA256=00").text)
    for secret in (write_key, TOKEN):
        assert secret not in caplog.text
        assert all(secret not in answer for answer in answers)
    payload_bits = [call_events(1)[0]["data"]["request"]["parameters"]["From"]]
    info = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert all(bit not in info for bit in payload_bits)


def test_refusals_logged_without_a_dead_letter_file_quote_no_event_values(caplog: pytest.LogCaptureFixture) -> None:
    event = {**call_events(3)[0], "time": "not-a-time +14155550199"}
    with caplog.at_level(logging.INFO, logger="segment_bridge"), Harness(make_app()) as h:
        response = h.post_signed(orjson.dumps(event))
    assert response.status_code == 200
    (line,) = [r.getMessage() for r in caplog.records if '"event":"refused"' in r.getMessage()]
    assert '"reason":"invalid_event"' in line and "time: not a valid ISO-8601 timestamp" in line
    assert "+14155550199" not in caplog.text


def test_an_app_started_again_after_a_stop_accepts_events() -> None:
    # A host that runs the lifespan twice (or a test client used twice) gets a working app, not 503 forever.
    transport = RecordingTransport()
    app = make_app(transport)
    for _ in range(2):
        with Harness(app) as harness:
            assert harness.post_signed(CALL).status_code == 200
    assert len(transport.batches) == 2


# ----------------------------------------------------------------------------------------------------------------
# The command's entry points without the extra
# ----------------------------------------------------------------------------------------------------------------


def test_serve_arguments_do_not_import_starlette_and_serve_names_the_extra() -> None:
    code = """
import argparse, sys
sys.modules["starlette"] = None  # as if the [server] extra were not installed
sys.modules["uvicorn"] = None
import segment_bridge
from segment_bridge.cli.serve import add_serve_arguments
from segment_bridge.server.run import serve_main
parser = argparse.ArgumentParser()
add_serve_arguments(parser)
args = parser.parse_args([])
assert (args.host, args.port, args.workers) == ("127.0.0.1", 8000, None), args
print(serve_main(args))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout == "2\n"
    (line,) = result.stderr.splitlines()  # one JSON line, like everything serve writes
    message = orjson.loads(line)["message"]
    # Not on PyPI yet: the line that works today (a git URL), and the published form marked as such.
    assert "pip install 'segment-bridge[server] @ git+https://github.com/segment-bridge/segment-bridge'" in message
    assert "once published: pip install 'segment-bridge[server]'" in message


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "99999"],
        ["--port", "-1"],
        ["--port", "http"],
        ["--workers", "0"],
        ["--max-body-size", "0"],
        ["--max-body-size", "²"],
        ["--delivery-budget", "0"],
        ["--delivery-budget", "-1"],
        ["--delivery-budget", "nan"],
        ["--delivery-budget", "inf"],
        ["--max-concurrency", "0"],
    ],
)
def test_out_of_range_serve_options_are_one_line_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from segment_bridge.cli.serve import add_serve_arguments

    parser = argparse.ArgumentParser(prog="segment-bridge serve")
    add_serve_arguments(parser)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {argv[0]}:" in error
    assert "Traceback" not in error


def test_serve_options_in_range_parse() -> None:
    import argparse

    from segment_bridge.cli.serve import add_serve_arguments

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--port", "0", "--workers", "2", "--delivery-budget", "0.5", "--max-body-size", "1"])
    assert (args.port, args.workers, args.delivery_budget, args.max_body_size) == (0, 2, 0.5, 1)
    assert parser.parse_args(["--port", "65535"]).port == 65535


def test_import_segment_bridge_does_not_import_starlette() -> None:
    code = "import sys, segment_bridge, segment_bridge.server; print('starlette' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "False"
