"""Behaviours the second mutation pass (benchmarks/mutants.toml, 2026-12-03) showed no test held.

Each test here fails on the mutant it names; ``python benchmarks/mutants.py --id NAME`` re-plants it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.outcomes import Refusal, RefusalReason


def test_a_record_written_after_a_sync_is_made_durable_by_the_next_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Kills deadletter-sync-never-again: serve answers 200 for a refused event only once sync() returns, so every
    # record written since the last fsync needs one of its own, not only the first batch of records.
    path = tmp_path / "refused.jsonl"
    path.touch()  # an existing file: only the file itself is synced
    real_fsync = os.fsync
    synced_sizes: list[int] = []

    def recording_fsync(fd: int) -> None:
        synced_sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with DeadLetterWriter(path) as writer:
        for number in (1, 2, 3):
            writer.write(Refusal(RefusalReason.UNKNOWN_EVENT_TYPE, "unknown", event_id=f"EV{number}"), {"n": number})
            writer.sync()
            assert synced_sizes[-1:] == [path.stat().st_size], f"record {number} acknowledged without an fsync"
        writer.sync()  # nothing new since: no fsync
    assert len(synced_sizes) == 3
