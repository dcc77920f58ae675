"""segment_bridge.replay against the stand-in Segment server: faults, dead letters, checkpoints, SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from standin import Fault, StandIn

from segment_bridge.checkpoint import PositionWindow
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.delivery import RetryPolicy, SegmentTransport
from segment_bridge.exceptions import ConfigurationError, PermanentDeliveryError
from segment_bridge.mapping import load_mapping
from segment_bridge.outcomes import Outcome, Refusal, RefusalReason, Translation
from segment_bridge.replay import Checkpoint, InputHead, ReplaySummary, replay, replay_files
from segment_bridge.samples import iter_call_events
from segment_bridge.track import TrackCall
from segment_bridge.translate import translate_record

REPO = Path(__file__).resolve().parents[2]
NO_WAIT = RetryPolicy(max_attempts=30, budget_seconds=3600, jitter=0)


def no_sleep(seconds: float) -> None:
    """Retries in these tests never wait: the injected sleep returns at once."""


@pytest.fixture(scope="module")
def mapping():
    return load_mapping()


def write_events(path: Path, count: int, *, bad_lines: int = 0) -> None:
    with path.open("wb") as file:
        for i, event in enumerate(iter_call_events(count)):
            file.write(orjson.dumps(event) + b"\n")
            if bad_lines and i % (count // bad_lines) == 0:
                file.write(b"{not json\n")


def expected_ids(path: Path, mapping) -> set[str]:
    ids = set()
    for line in path.read_bytes().splitlines():
        for translation in translate_record(line, mapping):
            if translation.track is not None:
                ids.add(translation.track.message_id)
    return ids


def call(i: int) -> TrackCall:
    message = {"type": "track", "event": "Call Answered", "anonymousId": f"CA{i}", "messageId": f"m:{i}"}
    return TrackCall.from_message(message, f"EV{i}", "com.twilio.voice.status-callback.call.answered")


def translated(i: int) -> Translation:
    return Translation(Outcome.TRANSLATED, {"id": f"EV{i}"}, f"EV{i}", "t", track=call(i))


def refused(i: int) -> Translation:
    refusal = Refusal(RefusalReason.INVALID_EVENT, "bad", event_id=f"EV{i}")
    return Translation(Outcome.REFUSED, {"id": f"EV{i}"}, f"EV{i}", "t", refusal=refusal)


# -- many events, faults on ---------------------------------------------------------------------------------


def test_thousands_of_events_through_faults_all_arrive(tmp_path, mapping, write_key):
    source = tmp_path / "events.jsonl"
    write_events(source, 4_000)
    wanted = expected_ids(source, mapping)
    dead = tmp_path / "dead.jsonl"
    seen: list[int] = []

    with StandIn(write_key, fault_rate=0.35, seed=7, retry_after=2, slow_seconds=0.3) as segment:
        # The client gives up on slow answers (after the stand-in accepted them): the ambiguous case.
        transport = SegmentTransport(write_key, host=segment.url, timeout=0.2)
        with DeadLetterWriter(dead) as dead_letter:
            summary = replay_files(
                [str(source)],
                mapping,
                transport,
                dead_letter=dead_letter,
                policy=NO_WAIT,
                concurrency=4,
                max_messages=100,
                sleep=no_sleep,
                progress=lambda s: seen.append(s.delivered),
            )
    # Read once the stand-in has stopped: stop() waits for the answers still on their way (a SLOW one the client
    # gave up on), so every request is counted.
    faults = Counter(r.fault for r in segment.requests)

    assert len(wanted) == 4_000
    assert segment.accepted_ids == wanted  # every translatable event, by messageId
    assert segment.violations == []
    assert not dead.exists()  # nothing failed, nothing refused
    assert summary.delivered == 4_000
    assert (summary.failed, summary.failed_batches, summary.refused_total) == (0, 0, 0)
    assert summary.exit_code == 0
    assert summary.checkpoint == (0, 4_000)
    assert all(faults[f] for f in Fault)  # every kind of fault really happened
    assert seen == sorted(seen)
    assert seen[-1] == 4_000


def test_refusals_and_permanent_failures_go_to_the_dead_letter_file(tmp_path, mapping, write_key):
    source = tmp_path / "events.jsonl"
    write_events(source, 600, bad_lines=3)
    dead = tmp_path / "dead.jsonl"

    with StandIn(write_key) as segment:
        segment.script(400)  # the first batch is refused for good
        with DeadLetterWriter(dead) as dead_letter:
            summary = replay_files(
                [str(source)],
                mapping,
                SegmentTransport(write_key, host=segment.url),
                checkpoint_path=tmp_path / "checkpoint.json",
                dead_letter=dead_letter,
                policy=NO_WAIT,
                concurrency=2,
                max_messages=100,
                sleep=no_sleep,
            )

    records = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    reasons = Counter(r["reason"] for r in records)
    assert reasons == {"invalid_json": 3, "delivery_failed": 100}
    failed = [r for r in records if r["reason"] == "delivery_failed"]
    assert failed[0]["message"] == "not delivered: HTTP 400 after 1 attempt"
    assert failed[0]["event"]["specversion"] == "1.0"  # the original CloudEvent, ready to replay
    assert len(segment.accepted_ids) == 500
    assert (summary.delivered, summary.failed, summary.failed_batches) == (500, 100, 1)
    assert summary.refused == {"invalid_json": 3}
    assert summary.dead_lettered == 103
    assert summary.exit_code == 3
    # Failed events have a record, so the checkpoint may pass them.
    assert Checkpoint(tmp_path / "checkpoint.json", key=str(source)).load() == (0, 603)


def test_without_a_dead_letter_file_a_failed_batch_holds_the_checkpoint_back(write_key):
    items = [((0, i + 1), translated(i)) for i in range(30)]
    with StandIn(write_key) as segment:
        segment.script(None, 400)  # the first batch goes through, the second is refused for good
        summary = replay(
            items,
            SegmentTransport(write_key, host=segment.url),
            policy=NO_WAIT,
            concurrency=1,
            max_messages=10,
            sleep=no_sleep,
        )
    assert (summary.delivered, summary.failed, summary.exit_code) == (20, 10, 3)
    assert summary.checkpoint == (0, 10)  # positions 11..20 failed with no record: the next run retries them
    assert len(segment.accepted_ids) == 20


def test_exit_code_one_when_only_refused():
    out: list[Any] = []

    class Memory:
        def send(self, batch):
            out.extend(batch)

        def close(self):
            pass

    summary = replay([((0, 1), translated(1)), ((0, 2), refused(2))], Memory())
    assert (summary.delivered, summary.refused_total, summary.exit_code) == (1, 1, 1)
    assert ReplaySummary().exit_code == 0


# -- concurrency and memory bounds ------------------------------------------------------------------------------


def test_batches_in_flight_never_exceed_the_concurrency():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    release = threading.Event()

    class Gate:
        def send(self, batch):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
                if state["peak"] >= 3:
                    release.set()
            release.wait(5)  # hold the first batches until three are in flight at once
            with lock:
                state["now"] -= 1

        def close(self):
            pass

    items = [((0, i), translated(i)) for i in range(1_000)]
    summary = replay(items, Gate(), concurrency=3, max_messages=10)
    assert summary.delivered == 1_000
    assert state["peak"] == 3


def test_the_checkpoint_window_stays_small_while_a_batch_is_in_flight():
    window = PositionWindow()
    slot = window.open((0, 0))
    slot.pending = 1  # one message in flight at the very first position
    for line in range(1, 100_000):
        window.open((0, line))  # refused or acknowledged positions: nothing pending
    window.finish()
    assert len(window._slots) <= 3
    assert window.advance() is None  # nothing can be checkpointed past the pending message
    slot.pending = 0
    assert window.advance() == (0, 99_999)


def test_a_position_with_several_events_is_resolved_only_when_all_are(write_key):
    # One JSON array record: three events at the same position, split across batches.
    items = [((0, 1), translated(0)), ((0, 1), translated(1)), ((0, 1), translated(2)), ((0, 2), translated(3))]
    with StandIn(write_key) as segment:
        segment.script(500, 500, 500, 500, 500)
        summary = replay(
            items,
            SegmentTransport(write_key, host=segment.url),
            policy=RetryPolicy(max_attempts=1),
            concurrency=1,
            max_messages=2,
            sleep=no_sleep,
        )
    assert summary.failed == 4
    assert summary.checkpoint is None


# -- checkpoints --------------------------------------------------------------------------------------------------


def test_checkpoint_file_is_replaced_atomically_and_keyed(tmp_path):
    path = tmp_path / "cp.json"
    checkpoint = Checkpoint(path, key="a.jsonl", interval=0)
    assert checkpoint.load() is None
    assert checkpoint.save((0, 10))
    assert not checkpoint.save((0, 10))  # unchanged: no write
    assert Checkpoint(path, key="a.jsonl").load() == (0, 10)
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]  # no temporary file left behind
    with pytest.raises(ConfigurationError, match="other inputs"):
        Checkpoint(path, key="b.jsonl").load()
    path.write_text("garbage")
    with pytest.raises(ConfigurationError, match="not a segment-bridge checkpoint"):
        Checkpoint(path, key="a.jsonl").load()


def test_checkpoint_refuses_an_input_rewritten_under_the_same_name(tmp_path):
    archive = tmp_path / "a.jsonl"
    archive.write_bytes(b'{"first": 1}\n{"second": 2}\n')
    path = tmp_path / "cp.json"
    head = InputHead.of(str(archive))
    assert head is not None
    Checkpoint(path, key="a", heads=[head], interval=0).save((0, 2))
    # Appending keeps the checkpoint: the archive grew, what was sent is still at the same positions.
    with archive.open("ab") as file:
        file.write(b'{"third": 3}\n')
    assert Checkpoint(path, key="a", heads=[head]).load() == (0, 2)
    # Rewriting does not: position 2 would now point into other events and skip some never sent.
    archive.write_bytes(b'{"other": 1}\n{"events": 2}\n{"here": 3}\n')
    with pytest.raises(ConfigurationError, match=r"changed since checkpoint .* first 27 bytes differ"):
        Checkpoint(path, key="a", heads=[head]).load()
    archive.unlink()
    with pytest.raises(ConfigurationError, match="changed since checkpoint"):
        Checkpoint(path, key="a").load()


class _Recorder:
    """Keeps each batch's messageIds, and signals when one arrives."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.arrived = threading.Event()

    def send(self, batch):
        self.batches.append([c.message_id for c in batch])
        self.arrived.set()

    def close(self) -> None:
        pass


def test_a_trickling_input_sends_its_partial_batch_when_idle():
    transport = _Recorder()
    resume = threading.Event()

    def trickle():
        yield from (((0, i), translated(i)) for i in range(1, 4))
        # A pipe with nothing more for now: the three events must not wait for a full batch or the end.
        assert transport.arrived.wait(5), "the partial batch was not sent while the input was idle"
        resume.set()
        yield (0, 4), translated(4)

    summary = replay(trickle(), transport, idle_flush=0.05, max_messages=500, sleep=no_sleep)
    assert resume.is_set()
    assert transport.batches == [["m:1", "m:2", "m:3"], ["m:4"]]
    assert summary.delivered == 4 and summary.checkpoint == (0, 4)


def test_an_input_error_on_the_reader_thread_reaches_the_caller():
    def broken():
        yield (0, 1), translated(1)
        raise ConfigurationError("cannot read archive.jsonl: truncated")

    # The error reaches the caller in the summary, after what was read before it is delivered.
    transport = _Recorder()
    summary = replay(broken(), transport, idle_flush=0.05, sleep=no_sleep)
    assert summary.read_error == "cannot read archive.jsonl: truncated"
    assert summary.delivered == 1 and transport.batches == [["m:1"]]
    assert summary.exit_code == 2


def test_a_checkpoint_without_fingerprints_still_resumes(tmp_path):
    # Written by a version before fingerprints: the position is kept rather than the replay refused.
    path = tmp_path / "cp.json"
    path.write_text('{"version": 1, "key": "a", "position": [0, 7]}')
    assert Checkpoint(path, key="a").load() == (0, 7)


def test_checkpoint_saves_are_throttled_but_the_last_one_is_forced(tmp_path):
    now = [0.0]
    checkpoint = Checkpoint(tmp_path / "cp.json", interval=1.0, clock=lambda: now[0])
    assert checkpoint.save((0, 1))
    assert not checkpoint.save((0, 2))
    assert checkpoint.save((0, 3), force=True)
    now[0] = 5.0
    assert checkpoint.save((0, 4))


def test_a_rerun_with_the_checkpoint_sends_nothing_again(tmp_path, mapping, write_key):
    source = tmp_path / "events.jsonl"
    write_events(source, 300)
    with StandIn(write_key) as segment:
        transport = SegmentTransport(write_key, host=segment.url)
        options: dict[str, Any] = {"checkpoint_path": tmp_path / "cp.json", "max_messages": 50, "sleep": no_sleep}
        first = replay_files([str(source)], mapping, transport, **options)
        second = replay_files([str(source)], mapping, transport, **options)
        requests = len(segment.requests)
    assert first.delivered == 300
    assert (second.delivered, second.skipped, second.records) == (0, 300, 0)
    assert requests == 6


def test_a_transport_crash_stops_the_replay_and_keeps_the_checkpoint_safe(tmp_path):
    sent: list[str] = []

    class Disk:
        def send(self, batch):
            if len(sent) >= 20:
                raise OSError(28, "No space left on device")
            sent.extend(c.message_id for c in batch)

        def close(self):
            pass

    checkpoint = Checkpoint(tmp_path / "cp.json", interval=0)
    items = [((0, i + 1), translated(i)) for i in range(100)]
    with pytest.raises(OSError, match="No space"):
        replay(items, Disk(), checkpoint=checkpoint, concurrency=1, max_messages=10)
    saved = Checkpoint(tmp_path / "cp.json").load()
    assert saved is not None
    assert saved[1] <= len(sent)  # never past what was really written


def test_permanent_delivery_error_type_is_reported_per_message():
    class Refuse:
        def send(self, batch):
            raise PermanentDeliveryError("no", status=403, count=len(batch))

        def close(self):
            pass

    dead: list[Any] = []

    class Recorder(DeadLetterWriter):
        def write(self, refusal, event):
            dead.append((refusal, event))

    summary = replay([((0, 1), translated(1))], Refuse(), dead_letter=Recorder("/nonexistent/never-opened"))
    ((refusal, event),) = dead
    assert refusal.reason is RefusalReason.DELIVERY_FAILED
    assert refusal.message == "not delivered: HTTP 403 after 1 attempt"
    assert event == {"id": "EV1"}
    assert summary.checkpoint == (0, 1)


# -- SIGKILL -------------------------------------------------------------------------------------------------------

_CHILD = """
import sys
from segment_bridge.delivery import RetryPolicy, SegmentTransport
from segment_bridge.mapping import load_mapping
from segment_bridge.replay import replay_files

source, checkpoint, url, key = sys.argv[1:5]
summary = replay_files(
    [source], load_mapping(), SegmentTransport(key, host=url, timeout=5),
    checkpoint_path=checkpoint, checkpoint_interval=0, concurrency=2, max_messages=50,
    policy=RetryPolicy(max_attempts=20, jitter=0, backoff_multiplier=0.01),
)
print(summary.delivered, summary.skipped, flush=True)
"""


def run_child(source: Path, checkpoint: Path, url: str, key: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(source), str(checkpoint), url, key],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def run_cli(source: Path, checkpoint: Path, url: str, key: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "segment_bridge", "replay", "--quiet", "--checkpoint", str(checkpoint)]
    command += ["--concurrency", "2", "--batch-size", "50", "--segment-host", url, str(source)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENT")} | {"SEGMENT_WRITE_KEY": key}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_replay_killed_with_sigkill_loses_nothing_when_resumed(tmp_path, mapping, write_key):
    source = tmp_path / "events.jsonl"
    write_events(source, 3_000)
    wanted = expected_ids(source, mapping)
    checkpoint = tmp_path / "cp.json"

    with StandIn(write_key, latency=0.01) as segment:
        for kill_at in (600, 1_700):  # killed twice, at different points
            child = run_child(source, checkpoint, segment.url, write_key)
            try:
                assert segment.wait_accepted(kill_at, timeout=30)
            finally:
                child.kill()  # SIGKILL: no cleanup, no final checkpoint save
                child.communicate(timeout=30)
            assert child.returncode == -9
        assert len(segment.accepted_ids) < len(wanted)  # it really was cut short
        child = run_child(source, checkpoint, segment.url, write_key)
        out, _ = child.communicate(timeout=60)
        accepted = segment.accepted

    assert child.returncode == 0
    assert set(accepted) == wanted  # nothing lost
    delivered, skipped = map(int, out.split())
    assert skipped > 0  # the resume really skipped what was done
    assert delivered < len(wanted)
    resent = sum(accepted.values()) - len(accepted)
    # At most what was in flight (2 batches of 50) or resolved but not yet checkpointed, per kill.
    assert resent <= 2 * 4 * 50


@pytest.mark.slow
def test_the_cli_replay_killed_with_sigkill_loses_nothing_when_resumed(tmp_path, mapping, write_key):
    source = tmp_path / "events.jsonl"
    write_events(source, 3_000)
    wanted = expected_ids(source, mapping)
    checkpoint = tmp_path / "cp.json"

    with StandIn(write_key, latency=0.01) as segment:
        child = run_cli(source, checkpoint, segment.url, write_key)
        try:
            assert segment.wait_accepted(1_000, timeout=30)
        finally:
            child.kill()
            child.communicate(timeout=30)
        assert child.returncode == -9
        assert len(segment.accepted_ids) < len(wanted)
        child = run_cli(source, checkpoint, segment.url, write_key)
        _, err = child.communicate(timeout=60)
        accepted = segment.accepted

    assert child.returncode == 0, err
    assert set(accepted) == wanted
    assert sum(accepted.values()) < 2 * len(wanted)  # the resume did not start over
