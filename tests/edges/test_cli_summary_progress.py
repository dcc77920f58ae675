"""translate and replay --summary-json (written at the end, after Ctrl-C and after a read error), replay's progress
line and --max-rate, through the command line."""

from __future__ import annotations

import gzip
import io
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from segment_bridge.cli import main
from segment_bridge.samples import iter_call_events


def lines(count: int) -> bytes:
    return b"".join(orjson.dumps(event) + b"\n" for event in iter_call_events(count))


def test_translate_writes_counts_reasons_and_where_each_input_was_settled(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    good = tmp_path / "calls.jsonl.gz"
    good.write_bytes(gzip.compress(lines(30), mtime=0))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"not json\n" + lines(1))
    path = tmp_path / "summary.json"
    assert main(["translate", "--summary-json", str(path), str(good), str(bad)]) == 1
    summary = json.loads(path.read_text())
    assert (summary["command"], summary["status"], summary["exit_code"]) == ("translate", "completed", 1)
    assert summary["counts"] == {"events": 32, "translated": 31, "acknowledged": 0, "refused": 1}
    assert summary["refused_by_reason"] == {"invalid_json": 1}
    assert summary["inputs"] == [
        {"name": str(good), "size_bytes": good.stat().st_size, "complete": True, "settled_through": {"line": 30}},
        {"name": str(bad), "size_bytes": bad.stat().st_size, "complete": True, "settled_through": {"line": 2}},
    ]
    assert summary["rate"]["events_per_second"] > 0
    assert summary["error"] is None


def test_translate_writes_the_summary_after_a_read_error_part_way(tmp_path: Path) -> None:
    broken = tmp_path / "cut.jsonl.gz"
    broken.write_bytes(gzip.compress(lines(200), mtime=0)[:-40])  # truncated: the end never decodes
    path = tmp_path / "summary.json"
    assert main(["translate", "--summary-json", str(path), str(broken)]) == 2
    summary = json.loads(path.read_text())
    assert (summary["status"], summary["exit_code"]) == ("error", 2)
    assert summary["error"].startswith(f"cannot read {broken}: ")
    (state,) = summary["inputs"]
    assert state["complete"] is False
    assert 0 < state["settled_through"]["line"] == summary["counts"]["translated"] < 200


def test_an_unwritable_summary_path_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    err = io.StringIO()
    events = tmp_path / "e.jsonl"
    events.write_bytes(lines(1))
    sys_err, sys.stderr = sys.stderr, err
    try:
        status = main(["translate", "--summary-json", str(tmp_path / "missing" / "s.json"), str(events)])
    finally:
        sys.stderr = sys_err
    assert status == 2
    assert err.getvalue().startswith("segment-bridge: error: cannot write --summary-json ")


def test_replay_writes_the_summary_with_pacing_figures(tmp_path: Path) -> None:
    events = tmp_path / "calls.jsonl"
    events.write_bytes(lines(40))
    path = tmp_path / "summary.json"
    out = tmp_path / "batches.jsonl"
    assert main(["replay", "--out", str(out), "--summary-json", str(path), "--max-rate", "0", str(events)]) == 0
    summary = json.loads(path.read_text())
    assert (summary["command"], summary["status"], summary["exit_code"]) == ("replay", "completed", 0)
    assert summary["counts"]["written"] == 40
    assert summary["counts"]["events"] == 40
    assert summary["inputs"] == [
        {"name": str(events), "size_bytes": events.stat().st_size, "complete": True, "settled_through": {"line": 40}}
    ]
    assert summary["rate"]["max_rate"] == 0
    assert summary["rate"]["rate_limited"] == 0


def test_replay_after_ctrl_c_writes_the_summary_of_what_it_did(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    with subprocess.Popen(
        [sys.executable, "-m", "segment_bridge", "replay", "--dry-run", "--summary-json", str(path), "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))  # type: ignore[union-attr]
        reader.start()
        try:
            process.stdin.write(lines(3))
            process.stdin.flush()  # left open, as `tail -f` leaves it
            assert len(json.loads(process.stdout.readline())["batch"]) == 3  # sent after 1 s idle
            process.send_signal(signal.SIGINT)
            status = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            process.stdin.close()
            reader.join(timeout=30)
    assert status == 130, errors
    summary = json.loads(path.read_text())
    assert (summary["status"], summary["exit_code"]) == ("interrupted", 130)
    assert summary["counts"]["shown"] == 3
    # Stopped, the last line read stays open (more of its events might have followed): settled through line 2.
    assert summary["inputs"] == [{"name": "-", "size_bytes": None, "complete": False, "settled_through": {"line": 2}}]


def test_replay_after_a_read_error_still_writes_the_summary(tmp_path: Path) -> None:
    broken = tmp_path / "cut.jsonl.gz"
    broken.write_bytes(gzip.compress(lines(200), mtime=0)[:-40])
    path = tmp_path / "summary.json"
    assert main(["replay", "--out", str(tmp_path / "o.jsonl"), "--summary-json", str(path), str(broken)]) == 2
    summary = json.loads(path.read_text())
    assert summary["status"] == "error"
    assert summary["error"].startswith(f"cannot read {broken}")
    assert summary["counts"]["written"] > 0


def test_a_max_rate_that_is_not_a_rate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--dry-run", "--max-rate", "fast", "x"])
    assert exited.value.code == 2
    assert "--max-rate: must be a number of events per second, 0 for no limit, got fast" in capsys.readouterr().err


def test_a_bad_max_rate_variable_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEGMENT_BRIDGE_MAX_RATE", "-5")
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "k")
    events = tmp_path / "e.jsonl"
    events.write_bytes(lines(1))
    assert main(["replay", str(events)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "segment-bridge: error: SEGMENT_BRIDGE_MAX_RATE must be a number of events per second, 0 for no limit; got '-5'"
    )
