"""--summary-json: the document a run leaves for orchestrators, built purely and written atomically."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from segment_bridge.cli.summary_json import InputState, build_summary, input_states, write_summary
from segment_bridge.exceptions import ConfigurationError

START = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


def document(**changes: object) -> dict[str, object]:
    options: dict[str, object] = {
        "command": "replay",
        "status": "completed",
        "exit_code": 1,
        "started_at": START,
        "finished_at": START + timedelta(seconds=40),
        "duration_seconds": 40.0,
        "counts": {"events": 20_000, "delivered": 19_997, "acknowledged": 1, "refused": 2, "failed": 0},
        "refused_by_reason": {"unknown_event_type": 1, "invalid_json": 1},
        "inputs": [InputState("a.jsonl.gz", 812, (20_000,), True), InputState("-", None, (3, 17), False)],
    }
    options.update(changes)
    return build_summary(**options)  # type: ignore[arg-type]


def test_the_document_has_counts_reasons_inputs_times_and_the_effective_rate() -> None:
    summary = document(pacing={"max_rate": 500.0, "rate_limited": 0, "paused_seconds": 0.0})
    assert summary == {
        "version": 1,
        "command": "replay",
        "status": "completed",
        "exit_code": 1,
        "started_at": "2026-12-03T10:00:00.000Z",
        "finished_at": "2026-12-03T10:00:40.000Z",
        "duration_seconds": 40.0,
        "counts": {"events": 20_000, "delivered": 19_997, "acknowledged": 1, "refused": 2, "failed": 0},
        "refused_by_reason": {"invalid_json": 1, "unknown_event_type": 1},
        "inputs": [
            {"name": "a.jsonl.gz", "size_bytes": 812, "complete": True, "settled_through": {"line": 20_000}},
            {"name": "-", "size_bytes": None, "complete": False, "settled_through": {"line": 3, "column": 17}},
        ],
        "rate": {"events_per_second": 500.0, "max_rate": 500.0, "rate_limited": 0, "paused_seconds": 0.0},
        "error": None,
    }
    json.dumps(summary)  # JSON-ready as it is


def test_a_run_that_took_no_time_has_a_rate_of_zero_not_a_division_error() -> None:
    assert document(duration_seconds=0.0)["rate"] == {"events_per_second": 0.0}


def test_inputs_before_the_settled_one_are_complete_and_it_is_settled_through_its_position(tmp_path: Path) -> None:
    first, second, third = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz", tmp_path / "c.jsonl"
    first.write_bytes(b"{}\n" * 10)
    second.write_bytes(gzip.compress(b"{}\n" * 1_000))
    third.write_bytes(b"{}\n")
    names = [str(first), str(second), str(third)]
    states = input_states(names, (1, 40, 3), finished=False)
    assert states == [
        InputState(str(first), 30, None, True),
        InputState(str(second), second.stat().st_size, (40, 3), False),  # compressed bytes on disk
        InputState(str(third), 3, None, False),
    ]
    assert [s.complete for s in input_states(names, (2, 1), finished=True)] == [True, True, True]
    # Where the caller knows where a complete input ended, it is settled through there.
    ends = {0: (0, 10), 1: (1, 1_000)}
    assert [s.settled_through for s in input_states(names, (2, 1), finished=True, ends=ends)] == [(10,), (1_000,), (1,)]
    assert [s.settled_through for s in input_states(names, (1, 5), finished=False, ends=ends)] == [(10,), (5,), None]
    assert input_states(["-"], None, finished=False) == [InputState("-", None, None, False)]


def test_the_file_is_replaced_whole_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text("old")
    write_summary(path, document())
    assert json.loads(path.read_text())["counts"]["delivered"] == 19_997
    assert os.listdir(tmp_path) == ["summary.json"]


def test_a_failed_replace_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "summary.json"
    path.write_text("old")

    def broken(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ConfigurationError, match=r"^cannot write --summary-json .*summary.json: No space left"):
        write_summary(path, document())
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_a_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot write --summary-json"):
        write_summary(tmp_path, document())
