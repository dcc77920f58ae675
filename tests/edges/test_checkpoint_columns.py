"""A checkpoint keeps positions inside a line (Firehose archives put many values on one line) whole."""

from __future__ import annotations

from pathlib import Path

from segment_bridge.replay import Checkpoint, ResumePoint


def test_positions_with_a_column_survive_a_save_and_a_load(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    ahead = ResumePoint((0, 1, 40), (0, 1, 900), frozenset({(0, 1, 300), (0, 1, 700)}))
    assert Checkpoint(path, key="k").save((0, 1, 40), force=True, ahead=ahead)

    loaded = Checkpoint(path, key="k")
    assert loaded.load() == (0, 1, 40)
    assert loaded.resume == ahead
    # What the run that saved it finished is skipped; what was still in flight on that line is sent again.
    assert loaded.resume.done((0, 1, 500))
    assert not loaded.resume.done((0, 1, 300))
    assert not loaded.resume.done((0, 1, 901))


def test_a_line_position_and_column_positions_mix(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    ahead = ResumePoint((0, 2), (0, 3, 17), frozenset({(0, 3)}))
    assert Checkpoint(path, key="k").save((0, 2), force=True, ahead=ahead)
    loaded = Checkpoint(path, key="k")
    loaded.load()
    assert loaded.resume == ahead
