"""A resumed replay re-sends about what was in flight, even when one batch was held in retries the whole time.

README, replay: after a SIGKILL, a resume re-sends at most 2 x ``--concurrency`` x ``--batch-size`` events (the
batches in flight, plus those finished since the last save, which happens at least every ``--concurrency`` x
``--batch-size`` messages). The checkpoint used to stop before the first unfinished batch: one batch stuck in
retries held back everything finished after it, and a killed replay of 50,000 events re-sent 24% of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from standin import StandIn

from segment_bridge.checkpoint import Checkpoint, PositionWindow, ResumePoint
from segment_bridge.mapping import load_mapping
from segment_bridge.samples import iter_call_events
from segment_bridge.translate import translate_record

REPO = Path(__file__).resolve().parents[2]
EVENTS = 10_000
CONCURRENCY = 4
BATCH = 50


class OneBatchHangs(StandIn):
    """A stand-in that holds the request carrying ``stuck`` (a messageId) until released, then drops it unanswered.

    Every other request is answered at once, so the batches read after the stuck one all finish.
    """

    def __init__(self, write_key: str, stuck: str) -> None:
        super().__init__(write_key)
        self.stuck = stuck
        self.release = threading.Event()
        self.holding = threading.Event()

    def _accept(self, body: dict[str, Any]) -> None:
        if not self.release.is_set() and any(m.get("messageId") == self.stuck for m in body["batch"]):
            self.holding.set()
            self.release.wait(30)
            raise ConnectionAbortedError("dropped: the replay that sent it was killed")
        super()._accept(body)


def write_events(path: Path, count: int) -> list[str]:
    """``count`` call events, one per line; returns their messageIds in input order."""
    mapping = load_mapping()
    ids = []
    with path.open("wb") as out:
        for event in iter_call_events(count):
            line = orjson.dumps(event)
            (translation,) = translate_record(line, mapping)
            assert translation.track is not None
            ids.append(translation.track.message_id)
            out.write(line + b"\n")
    return ids


def replay_cli(source: Path, checkpoint: Path, url: str, key: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "segment_bridge", "replay", "--quiet", "--checkpoint", str(checkpoint)]
    command += ["--concurrency", str(CONCURRENCY), "--batch-size", str(BATCH), "--segment-host", url, str(source)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENT")} | {"SEGMENT_WRITE_KEY": key}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_killed_replay_with_one_batch_stuck_resends_about_what_was_in_flight(tmp_path: Path, write_key: str) -> None:
    source = tmp_path / "events.jsonl"
    ids = write_events(source, EVENTS)
    checkpoint = tmp_path / "cp.json"
    # Line 60 is in the second batch of 50: the checkpoint's front is stuck from the start.
    with OneBatchHangs(write_key, stuck=ids[59]) as segment:
        child = replay_cli(source, checkpoint, segment.url, write_key)
        try:
            assert segment.wait_accepted(EVENTS // 2, timeout=60)
            assert segment.holding.is_set()
        finally:
            child.kill()  # SIGKILL: no final save
            child.communicate(timeout=30)
            segment.release.set()
        assert child.returncode == -9
        first_run = segment.accepted_ids
        assert ids[59] not in first_run
        assert len(first_run) < EVENTS
        resumed = replay_cli(source, checkpoint, segment.url, write_key)
        _, err = resumed.communicate(timeout=60)
        accepted = segment.accepted
    assert resumed.returncode == 0, err
    assert set(accepted) == set(ids)  # nothing lost
    resent = sum(accepted.values()) - len(accepted)
    assert resent <= 2 * CONCURRENCY * BATCH, f"re-sent {resent} of {len(first_run)} delivered before the kill"


def test_the_checkpoint_keeps_what_finished_after_a_stuck_position(tmp_path: Path) -> None:
    window = PositionWindow()
    for line in range(1, 8):
        slot = window.open((0, line))
        if line in (2, 5):
            slot.pending = 1  # 2 is stuck in retries, 5 in flight; the others are done
    window.finish()
    assert window.resolved == (0, 1)
    assert window.ahead(limit=10) == ((0, 7), [(0, 2), (0, 5)])
    assert window.ahead(limit=1) == ((0, 2), [(0, 2)])  # past the limit, nothing is claimed

    path = tmp_path / "cp.json"
    saved = Checkpoint(path, key="a", interval=0)
    assert saved.save((0, 1), ahead=ResumePoint((0, 1), (0, 7), frozenset({(0, 2), (0, 5)})))
    loaded = Checkpoint(path, key="a")
    assert loaded.load() == (0, 1)
    point = loaded.resume
    assert point is not None
    done = [line for line in range(1, 10) if point.done((0, line))]
    assert done == [1, 3, 4, 6, 7]


def test_a_checkpoint_written_before_positions_ahead_were_kept_still_resumes(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_bytes(orjson.dumps({"version": 1, "key": "a", "heads": [], "position": [0, 4]}))
    checkpoint = Checkpoint(path, key="a")
    assert checkpoint.load() == (0, 4)
    assert checkpoint.resume == ResumePoint((0, 4), (0, 4))
