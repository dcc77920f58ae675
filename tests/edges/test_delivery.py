"""segment_bridge.delivery: exact retry sequences (responses), batching, transports, secrets."""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import orjson
import pytest
import requests
import responses
from responses.registries import OrderedRegistry

from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.delivery import (
    DryRunTransport,
    FileTransport,
    RetryPolicy,
    SegmentTransport,
    Transport,
    deliver,
    is_retryable_status,
    iter_batches,
    send_batch,
)
from segment_bridge.exceptions import (
    ConfigurationError,
    DeliveryError,
    PayloadTooLargeError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from segment_bridge.outcomes import RefusalReason
from segment_bridge.track import MAX_MESSAGE_BYTES, TrackCall

URL = "https://api.segment.io/v1/batch"
# No jitter, so every backoff wait is exact: 0.5, 1, 2, 4 ...
EXACT = RetryPolicy(max_attempts=5, budget_seconds=60, max_retry_after=30, backoff_multiplier=0.5, jitter=0)


def make_call(i: int, *, pad: int = 0) -> TrackCall:
    message: dict[str, Any] = {
        "type": "track",
        "event": "Call Answered",
        "anonymousId": f"CA{i:032d}",
        "messageId": f"twilio-voice:{i:040d}",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "properties": {"call_sid": f"CA{i:032d}", "padding": "x" * pad},
    }
    return TrackCall.from_message(message, f"EV{i}", "com.twilio.voice.status-callback.call.answered")


def calls(n: int, **kwargs: Any) -> list[TrackCall]:
    return [make_call(i, **kwargs) for i in range(n)]


def sent_ids(call: Any) -> list[str]:
    return [m["messageId"] for m in json.loads(call.request.body)["batch"]]


@pytest.fixture
def transport(write_key: str) -> SegmentTransport:
    return SegmentTransport(write_key)


# -- exact sequences ----------------------------------------------------------------------------------------


@responses.activate(registry=OrderedRegistry)
def test_503_then_429_with_retry_after_then_200_is_delivered_after_the_expected_waits(transport, clock, write_key):
    responses.post(URL, status=503, json={"code": "unavailable", "message": "try later"})
    responses.post(URL, status=429, json={"code": "rate_limited", "message": "slow"}, headers={"Retry-After": "7"})
    responses.post(URL, status=200, json={"success": True})
    batch = calls(3)

    results = send_batch(transport, batch, EXACT, sleep=clock.sleep, clock=clock)

    assert [(r.delivered, r.attempts, list(r.calls)) for r in results] == [(True, 3, batch)]
    assert clock.sleeps == [0.5, 7.0]  # backoff after the 503, then Segment's Retry-After
    assert len(responses.calls) == 3
    # The retried batch keeps its messageIds (Segment dedupes an ambiguous retry) ...
    assert all(sent_ids(c) == [b.message_id for b in batch] for c in responses.calls)
    # ... and each attempt carries a sentAt stamped by request.post, and Basic auth "KEY:".
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    for call in responses.calls:
        assert "sentAt" in json.loads(call.request.body)
        assert call.request.headers["Authorization"] == auth


@responses.activate(registry=OrderedRegistry)
def test_400_is_permanent_and_not_retried(transport, clock):
    responses.post(URL, status=400, json={"code": "invalid_request", "message": "bad"})

    report = deliver(calls(2), transport, EXACT, sleep=clock.sleep, clock=clock)

    assert len(responses.calls) == 1
    assert clock.sleeps == []
    assert report.delivered == []
    assert report.failed_count == 2
    (error,) = report.errors
    assert type(error) is PermanentDeliveryError
    assert (error.status, error.kind, error.attempts, error.count) == (400, "http", 1, 2)
    refusal = report.failures[0][1]
    assert refusal.reason is RefusalReason.DELIVERY_FAILED
    assert refusal.message == "not delivered: HTTP 400 after 1 attempt"
    assert (refusal.event_id, refusal.event_type) == ("EV0", "com.twilio.voice.status-callback.call.answered")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (413, {"code": "payload_too_large", "message": ""}),
        (400, {"code": "invalid_request", "message": "Request too large"}),
    ],
)
@responses.activate(registry=OrderedRegistry)
def test_too_large_splits_the_batch_in_half(transport, clock, status, body):
    responses.post(URL, status=status, json=body)
    responses.post(URL, status=200, json={"success": True})
    responses.post(URL, status=200, json={"success": True})
    batch = calls(5)

    results = send_batch(transport, batch, EXACT, sleep=clock.sleep, clock=clock)

    assert [len(sent_ids(c)) for c in responses.calls] == [5, 2, 3]
    assert [list(r.calls) for r in results] == [batch[:2], batch[2:]]
    assert all(r.delivered for r in results)
    assert clock.sleeps == []  # a split is not a retry: no wait


@responses.activate(registry=OrderedRegistry)
def test_a_single_message_segment_finds_too_large_fails_without_looping(transport, clock):
    responses.post(URL, status=413, json={"code": "too_large", "message": ""})
    (result,) = send_batch(transport, calls(1), EXACT, sleep=clock.sleep, clock=clock)
    assert isinstance(result.error, PayloadTooLargeError)
    assert (result.error.kind, result.attempts) == ("too_large", 1)
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (requests.ConnectionError("connection refused"), "connection"),
        (requests.ReadTimeout("read timed out"), "timeout"),
        (requests.ConnectTimeout("connect timed out"), "timeout"),
        (requests.exceptions.ChunkedEncodingError("broken"), "request"),
    ],
)
@responses.activate(registry=OrderedRegistry)
def test_network_errors_are_retried(transport, clock, exception, kind):
    responses.post(URL, body=exception)
    responses.post(URL, status=200, json={"success": True})

    (result,) = send_batch(transport, calls(2), EXACT, sleep=clock.sleep, clock=clock)

    assert (result.delivered, result.attempts) == (True, 2)
    assert clock.sleeps == [0.5]

    # And when it never recovers, the error names the kind, not the foreign exception.
    responses.post(URL, body=exception)
    (failed,) = send_batch(transport, calls(2), RetryPolicy(max_attempts=1), sleep=clock.sleep, clock=clock)
    assert isinstance(failed.error, RetryableDeliveryError)
    assert failed.error.kind == kind
    assert failed.error.status is None


@responses.activate(registry=OrderedRegistry)
def test_budget_exhausted_records_the_failure(transport, clock):
    for _ in range(10):
        responses.post(URL, status=503, json={"code": "unavailable", "message": ""})
    policy = RetryPolicy(max_attempts=10, budget_seconds=5, backoff_multiplier=1, jitter=0)

    report = deliver(calls(3), transport, policy, sleep=clock.sleep, clock=clock)

    # Waits 1 and 2 fit in 5 s; the next (4 s, ending at 7 s) would not, so it stops after 3 attempts.
    assert clock.sleeps == [1.0, 2.0]
    assert len(responses.calls) == 3
    assert report.failed_count == 3
    assert not report.ok
    (error,) = report.errors
    assert (type(error), error.status, error.attempts) == (RetryableDeliveryError, 503, 3)
    assert {r.message for _, r in report.failures} == {"not delivered: HTTP 503 after 3 attempts"}


@responses.activate(registry=OrderedRegistry)
def test_attempt_limit(transport, clock):
    for _ in range(5):
        responses.post(URL, status=500, json={"code": "internal", "message": ""})
    (result,) = send_batch(transport, calls(1), RetryPolicy(max_attempts=3, jitter=0), sleep=clock.sleep, clock=clock)
    assert result.attempts == 3
    assert len(responses.calls) == 3
    assert len(clock.sleeps) == 2


@responses.activate(registry=OrderedRegistry)
def test_retry_after_beyond_the_budget_gives_up_at_once(transport, clock):
    responses.post(URL, status=429, json={"code": "rate_limited", "message": ""}, headers={"Retry-After": "120"})
    policy = RetryPolicy(budget_seconds=30, max_retry_after=300)
    (result,) = send_batch(transport, calls(1), policy, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == []
    assert result.error is not None
    assert result.error.status == 429
    assert result.attempts == 1


@responses.activate(registry=OrderedRegistry)
def test_retry_after_is_capped(transport, clock):
    responses.post(URL, status=429, json={"code": "rate_limited", "message": ""}, headers={"Retry-After": "300"})
    responses.post(URL, status=200, json={"success": True})
    policy = RetryPolicy(budget_seconds=600, max_retry_after=20)
    (result,) = send_batch(transport, calls(1), policy, sleep=clock.sleep, clock=clock)
    assert result.delivered
    assert clock.sleeps == [20.0]


@responses.activate(registry=OrderedRegistry)
def test_a_caller_deadline_stops_retries_before_the_budget(transport, clock):
    for _ in range(3):
        responses.post(URL, status=502, json={"code": "bad_gateway", "message": ""})
    policy = RetryPolicy(budget_seconds=60, backoff_multiplier=1, jitter=0)
    (result,) = send_batch(transport, calls(1), policy, sleep=clock.sleep, clock=clock, deadline=1.5)
    assert clock.sleeps == [1.0]
    assert result.attempts == 2


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (511, True),
        (501, False),
        (505, False),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (413, False),
        (422, False),
        (302, False),
    ],
)
def test_retryable_statuses(status, retryable):
    assert is_retryable_status(status) is retryable


@pytest.mark.parametrize("status", [501, 505, 401, 404, 422])
@responses.activate(registry=OrderedRegistry)
def test_permanent_statuses_are_tried_once(transport, clock, status):
    responses.post(URL, status=status, json={"code": "x", "message": "y"})
    (result,) = send_batch(transport, calls(1), EXACT, sleep=clock.sleep, clock=clock)
    assert type(result.error) is PermanentDeliveryError
    assert result.error.status == status
    assert len(responses.calls) == 1


@responses.activate(registry=OrderedRegistry)
def test_foreign_exceptions_are_translated_without_chaining(transport):
    responses.post(URL, status=500, body="<html>upstream said something</html>")
    with pytest.raises(RetryableDeliveryError) as info:
        transport.send(calls(1))
    assert info.value.status == 500
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert "upstream" not in str(info.value)


# -- local checks and batching --------------------------------------------------------------------------------


@responses.activate(registry=OrderedRegistry)
def test_an_oversized_message_is_refused_before_sending_and_the_rest_goes(transport, clock):
    responses.post(URL, status=200, json={"success": True})
    big = make_call(99, pad=MAX_MESSAGE_BYTES)
    batch = [make_call(0), big, make_call(1)]

    results = send_batch(transport, batch, EXACT, sleep=clock.sleep, clock=clock)

    refused = [r for r in results if not r.delivered]
    assert [list(r.calls) for r in refused] == [[big]]
    assert refused[0].attempts == 0
    assert sent_ids(responses.calls[0]) == [batch[0].message_id, batch[2].message_id]


def test_iter_batches_respects_count_and_bytes():
    items = calls(12)
    assert [len(b) for b in iter_batches(items, max_messages=5)] == [5, 5, 2]
    size = items[0].size
    by_bytes = list(iter_batches(items, max_bytes=3 * size + 2))  # three messages and two commas fit
    assert [len(b) for b in by_bytes] == [3, 3, 3, 3]
    assert [c for b in by_bytes for c in b] == items
    assert [len(b) for b in iter_batches(items, max_bytes=1)] == [1] * 12  # a large message still travels alone
    assert list(iter_batches([])) == []


@pytest.mark.parametrize("bad", [0, 2_501])
def test_iter_batches_refuses_batch_sizes_segment_would_drop(bad):
    with pytest.raises(ValueError, match="max_messages"):
        list(iter_batches(calls(1), max_messages=bad))


def test_iter_batches_is_lazy():
    def endless():
        i = 0
        while True:
            yield make_call(i)
            i += 1

    first = next(iter(iter_batches(endless(), max_messages=3)))
    assert len(first) == 3


def test_retry_policy_validates():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(budget_seconds=-1)


# -- dry-run and file transports ------------------------------------------------------------------------------


def test_dry_run_writes_one_json_line_per_batch():
    out = io.StringIO()
    report = deliver(calls(5), DryRunTransport(out), max_messages=2)
    lines = out.getvalue().splitlines()
    assert [len(json.loads(line)["batch"]) for line in lines] == [2, 2, 1]
    assert json.loads(lines[0])["batch"][0] == make_call(0).message
    assert report.delivered_count == 5
    assert report.batches == 3


def test_file_transport_appends_the_batches(tmp_path):
    path = tmp_path / "batches.jsonl"
    transport = FileTransport(path)
    deliver(calls(3), transport, max_messages=2)
    deliver(calls(1), transport)
    transport.close()
    batches = [orjson.loads(line)["batch"] for line in path.read_bytes().splitlines()]
    assert [[m["messageId"] for m in b] for b in batches] == [
        [make_call(0).message_id, make_call(1).message_id],
        [make_call(2).message_id],
        [make_call(0).message_id],
    ]
    assert "FileTransport" in repr(transport)


def test_transports_satisfy_the_protocol(tmp_path, write_key):
    for transport in (SegmentTransport(write_key), DryRunTransport(io.StringIO()), FileTransport(tmp_path / "x")):
        assert isinstance(transport, Transport)
        transport.close()


@pytest.mark.parametrize("where", ["directory", "missing folder"])
def test_an_unwritable_out_path_fails_when_the_transport_is_made(tmp_path, where):
    path = tmp_path if where == "directory" else tmp_path / "nonexist" / "x.jsonl"
    with pytest.raises(ConfigurationError, match=rf"^cannot write --out {path}: \w") as info:
        FileTransport(path)
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is None


class _FailingStream(io.StringIO):
    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


def test_a_full_disk_under_the_file_transport_is_a_configuration_error(tmp_path, monkeypatch):
    transport = FileTransport(tmp_path / "out.jsonl")
    assert transport._file is not None
    transport._file.close()
    monkeypatch.setattr(transport, "_file", _FailingStream(OSError(28, "No space left on device")))
    with pytest.raises(ConfigurationError, match=r"cannot write --out .*out\.jsonl: No space left on device"):
        transport.send(calls(1))
    transport.close()


def test_dry_run_write_errors_are_configuration_errors_but_a_broken_pipe_is_not():
    full = DryRunTransport(_FailingStream(OSError(28, "No space left on device")))
    with pytest.raises(ConfigurationError, match=r"^cannot write --dry-run output: No space left on device$"):
        full.send(calls(1))
    gone = DryRunTransport(_FailingStream(BrokenPipeError(32, "Broken pipe")))
    with pytest.raises(BrokenPipeError):
        gone.send(calls(1))


@pytest.mark.parametrize(
    "exception",
    [
        requests.exceptions.InvalidURL("Failed to parse"),
        requests.exceptions.InvalidSchema("No connection adapters"),
        requests.exceptions.MissingSchema("No scheme supplied"),
    ],
)
@responses.activate(registry=OrderedRegistry)
def test_an_unusable_host_url_is_permanent_and_not_retried(transport, clock, exception):
    responses.post(URL, body=exception)

    (result,) = send_batch(transport, calls(2), EXACT, sleep=clock.sleep, clock=clock)

    assert isinstance(result.error, PermanentDeliveryError)
    assert (result.error.kind, result.attempts, clock.sleeps) == ("invalid_url", 1, [])
    assert len(responses.calls) == 1


def test_a_port_out_of_range_is_not_retried_for_a_minute(write_key, clock):
    transport = SegmentTransport(write_key, host="http://127.0.0.1:99999")
    (result,) = send_batch(transport, calls(1), EXACT, sleep=clock.sleep, clock=clock)
    assert isinstance(result.error, PermanentDeliveryError)
    assert result.attempts == 1


# -- against the stand-in: real HTTP through the SDK --------------------------------------------------------------


def test_delivers_to_the_standin_and_honours_the_host(standin, write_key, clock):
    report = deliver(calls(30), SegmentTransport(write_key, host=standin.url + "/"), max_messages=10)
    assert report.ok
    assert report.batches == 3
    assert standin.accepted_ids == {c.message_id for c in calls(30)}
    assert standin.violations == []


def test_gzip_bodies_are_accepted(standin, write_key):
    report = deliver(calls(10), SegmentTransport(write_key, host=standin.url, gzip=True))
    assert report.ok
    assert len(standin.accepted_ids) == 10


def test_wrong_write_key_is_a_permanent_401(standin, clock):
    report = deliver(calls(2), SegmentTransport("wrong", host=standin.url), EXACT, sleep=clock.sleep, clock=clock)
    assert [e.status for e in report.errors] == [401]
    assert clock.sleeps == []


# -- secrets ------------------------------------------------------------------------------------------------------


def test_write_key_never_leaks_at_debug(standin, write_key, clock, caplog, tmp_path):
    """A failing delivery with every logger at DEBUG: the key is in no log line, message, repr or record."""
    caplog.set_level(logging.DEBUG)
    transport = SegmentTransport(write_key, host=standin.url, timeout=2)
    # An application that lowers the SDK's logger after we set it: its DEBUG body dump must still not appear.
    logging.getLogger("segment").setLevel(logging.DEBUG)
    standin.script(503, 503, 500, 400)
    policy = RetryPolicy(max_attempts=3, jitter=0)

    report = deliver(calls(3), transport, policy, sleep=clock.sleep, clock=clock)
    refused = deliver(calls(1), SegmentTransport(write_key, host="http://127.0.0.1:9"), RetryPolicy(max_attempts=1))

    assert not report.ok
    assert not refused.ok
    with DeadLetterWriter(tmp_path / "dead.jsonl") as dead_letter:
        for call, refusal in report.failures + refused.failures:
            dead_letter.write(refusal, call.message)
    texts = [
        caplog.text,
        *(r.getMessage() for r in caplog.records),
        (tmp_path / "dead.jsonl").read_text(),
        repr(transport),
        str(transport),
        *(f"{e!s} {e!r} {e.args!r}" for e in report.errors + refused.errors),
        *(f"{r!r} {r.describe()}" for _, r in report.failures + refused.failures),
    ]
    encoded = base64.b64encode(f"{write_key}:".encode()).decode()
    for text in texts:
        assert write_key not in text
        assert encoded not in text
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG logging really was on


def test_delivery_errors_carry_no_payload(clock):
    class Refusing:
        def send(self, batch):
            raise PermanentDeliveryError(f"refused {len(batch)} messages", status=400, count=len(batch))

        def close(self):
            pass

    report = deliver(calls(2), Refusing(), EXACT, sleep=clock.sleep, clock=clock)
    for _, refusal in report.failures:
        assert "CA0000" not in refusal.message
        assert "padding" not in refusal.message
    assert isinstance(report.errors[0], DeliveryError)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@responses.activate
def test_a_redirected_post_is_not_counted_as_delivered(transport, clock, status):
    # requests follows the redirect (a 301/302 as a GET); the final 200 says nothing about the batch.
    responses.post(URL, status=status, headers={"Location": "https://elsewhere.example/v1/batch"})
    responses.add(responses.GET, "https://elsewhere.example/v1/batch", status=200)
    responses.add(responses.POST, "https://elsewhere.example/v1/batch", status=200)

    report = deliver(calls(2), transport, EXACT, sleep=clock.sleep, clock=clock)

    assert report.delivered == []
    assert [refusal.reason for _, refusal in report.failures] == [RefusalReason.DELIVERY_FAILED] * 2
    assert f"HTTP {status}" in report.failures[0][1].message
    assert clock.sleeps == []  # permanent: a wrong host does not fix itself
