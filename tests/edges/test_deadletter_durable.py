"""A refused event answered 200 exists only in the dead-letter file: ``serve`` makes its record durable (``fsync``
of the file, and of its directory when the file is new) before the answer, one ``fsync`` for many records."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.exceptions import ConfigurationError
from segment_bridge.outcomes import Refusal, RefusalReason
from segment_bridge.samples import call_events

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
testclient = pytest.importorskip("starlette.testclient")
twilio_validator = pytest.importorskip("twilio.request_validator")

TOKEN = "tw_auth_T0ken-for-durability-01234567"
PUBLIC_URL = "https://bridge.example.com/events"


class Syncs:
    """``os.fsync`` replaced: what each call made durable (the path, and the file's size at that moment)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = fail
        self._real = os.fsync
        self._lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        with self._lock:
            self.calls.append((path, os.fstat(fd).st_size))
        if self.fail:
            raise OSError(5, "Input/output error")
        self._real(fd)

    def of(self, path: Path) -> list[int]:
        with self._lock:
            return [size for called, size in self.calls if called == str(path.resolve())]


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Syncs:
    recorder = Syncs()
    monkeypatch.setattr(os, "fsync", recorder)
    return recorder


def refusal(number: int) -> Refusal:
    return Refusal(RefusalReason.UNKNOWN_EVENT_TYPE, f"unknown type {number}", "route it elsewhere", f"EV{number}", "x")


def test_sync_makes_what_was_written_durable_and_a_new_file_s_directory_entry(syncs: Syncs, tmp_path: Path) -> None:
    path = tmp_path / "refused.jsonl"
    writer = DeadLetterWriter(path)
    writer.write(refusal(1), {"id": "EV1"})
    writer.sync()
    assert syncs.of(path) == [path.stat().st_size]
    assert syncs.of(tmp_path) == [syncs.of(tmp_path)[0]], "the new file's directory was not synced"
    writer.sync()  # nothing new: no second fsync
    assert len(syncs.calls) == 2
    writer.close()


def test_records_written_before_a_sync_share_one_fsync(syncs: Syncs, tmp_path: Path) -> None:
    path = tmp_path / "refused.jsonl"
    path.touch()  # an existing file: its directory entry is durable already
    writer = DeadLetterWriter(path)
    for number in range(5):
        writer.write(refusal(number), {"id": f"EV{number}"})
    callers = [threading.Thread(target=writer.sync) for _ in range(5)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(10)
    # Five writers' records, five callers: one fsync covered them all (whoever came second found them covered).
    assert syncs.of(path) == [path.stat().st_size]
    assert syncs.of(tmp_path) == []
    writer.close()


def test_a_failed_fsync_is_an_error_naming_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "fsync", Syncs(fail=True))
    writer = DeadLetterWriter(tmp_path / "refused.jsonl")
    writer.write(refusal(1), {"id": "EV1"})
    with pytest.raises(ConfigurationError, match=r"cannot sync dead-letter file .*refused\.jsonl: Input/output error"):
        writer.sync()
    writer.close()


# ----------------------------------------------------------------------------------------------------------------
# serve: the answer comes after the fsync
# ----------------------------------------------------------------------------------------------------------------


def refused_body(count: int) -> bytes:
    """``count`` events of a deprecated type: each is refused and answered 200 once recorded."""
    events = [
        {**event, "type": "com.twilio.voice.webhook.status-callback.call.answered"}
        for number in range(count)
        for event in call_events(number)[:1]
    ]
    return orjson.dumps(events)


def post_signed(client: Any, body: bytes) -> Any:
    oracle = twilio_validator.RequestValidator(TOKEN)
    url = f"{PUBLIC_URL}?bodySHA256={oracle.compute_hash(body.decode())}"
    headers = {"X-Twilio-Signature": oracle.compute_signature(url, {}), "Content-Type": "application/json"}
    return client.post(f"/events?{url.partition('?')[2]}", content=body, headers=headers)


class AcceptingTransport:
    """Segment accepting everything (refused events never reach it)."""

    def send(self, batch: Sequence[Any]) -> None:
        pass

    def close(self) -> None:
        pass


def serve_app(dead_letter: Path) -> Any:
    from segment_bridge.server import ServerConfig, create_app
    from segment_bridge.settings import Settings

    config = ServerConfig.from_env({}, public_url=PUBLIC_URL, auth_token=TOKEN, dead_letter=dead_letter)
    return create_app(Settings(), config, transport=AcceptingTransport())


def test_serve_answers_200_for_refused_events_only_once_their_records_are_synced(syncs: Syncs, tmp_path: Path) -> None:
    path = tmp_path / "refused.jsonl"
    with testclient.TestClient(serve_app(path)) as client:
        for round_number in range(3):
            answer = post_signed(client, refused_body(4))
            assert answer.status_code == 200, answer.text
            assert [event["outcome"] for event in answer.json()["events"]] == ["refused"] * 4
            # When the answer left, an fsync had covered every record written so far (4 per request).
            records = path.read_bytes().count(b"\n")
            assert records == 4 * (round_number + 1)
            assert syncs.of(path) and syncs.of(path)[-1] == path.stat().st_size
    assert syncs.of(tmp_path), "the new dead-letter file's directory entry was not synced"


def test_serve_answers_503_when_the_records_cannot_be_synced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "fsync", Syncs(fail=True))
    with testclient.TestClient(serve_app(tmp_path / "refused.jsonl")) as client:
        answer = post_signed(client, refused_body(2))
    # Not durable, so not acknowledged: Twilio retries.
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]


def test_requests_that_queue_during_an_fsync_share_the_next_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "refused.jsonl"
    path.touch()
    real_fsync = os.fsync
    entered, release = threading.Event(), threading.Event()
    synced: list[int] = []

    def held_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        entered.set()
        release.wait(10)  # the first fsync is held until the other requests wait behind it
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", held_fsync)
    app = serve_app(path)
    bridge = app.state.bridge
    with testclient.TestClient(app) as client:
        answers: list[Any] = []
        first = threading.Thread(target=lambda: answers.append(post_signed(client, refused_body(1))))
        others = [
            threading.Thread(target=lambda n=n: answers.append(post_signed(client, refused_body(2 + n))))
            for n in range(3)
        ]
        try:
            first.start()
            assert entered.wait(10)
            for thread in others:
                thread.start()
            give_up = time.monotonic() + 10
            while len(bridge._to_record) < 3:  # the three wait for the dead-letter thread, held in the first fsync
                assert time.monotonic() < give_up, "the other requests never queued"
                threading.Event().wait(0.005)
        finally:
            release.set()
            for thread in [first, *others]:
                thread.join(10)
    assert [answer.status_code for answer in answers] == [200] * 4
    # One fsync for the first request, one for the three that queued behind it.
    assert synced == [synced[0], path.stat().st_size]
    assert path.read_bytes().count(b"\n") == 1 + 2 + 3 + 4
