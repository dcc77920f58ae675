"""`segment-bridge replay` and `serve` through main(): options, outputs, exit codes, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from standin import Fault, StandIn

from segment_bridge.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = "wk_cli_secret_123"


def test_dry_run_needs_no_write_key_and_prints_batches(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code = main(["replay", "--dry-run", str(EXAMPLES / "events.jsonl")])
    out, err = capsysbinary.readouterr()
    assert code == 0
    batches = [json.loads(line)["batch"] for line in out.splitlines()]
    assert sum(len(b) for b in batches) == 21
    assert "shown 21, acknowledged 1, refused 0, failed 0" in err.decode()


def test_out_writes_batches_to_a_file(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    out_file = tmp_path / "batches.jsonl"
    code = main(["replay", "--out", str(out_file), "--batch-size", "5", str(EXAMPLES / "events.jsonl")])
    assert code == 0
    batches = [json.loads(line)["batch"] for line in out_file.read_text().splitlines()]
    # Replay sends several batches at once, so the file holds them in the order they finished, not input order.
    assert sorted(len(b) for b in batches) == [1, 5, 5, 5, 5]
    assert len({message["messageId"] for batch in batches for message in batch}) == 21
    assert capsysbinary.readouterr().out == b""


def test_missing_write_key_is_one_line_exit_2(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code = main(["replay", str(EXAMPLES / "events.jsonl")])
    err = capsysbinary.readouterr().err.decode()
    assert code == 2
    assert err.count("\n") == 1
    assert "no Segment write key" in err


def test_delivers_to_segment_with_refusals_and_dead_letter(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "dead.jsonl"
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    with StandIn(write_key=KEY) as segment:
        segment.script(Fault.ERROR_500, Fault.RATE_LIMIT)
        monkeypatch.setenv("SEGMENT_HOST", segment.url)
        code = main(
            ["replay", "--write-key-file", str(key_file), "--dead-letter", str(dead), str(EXAMPLES / "mixed.jsonl")]
        )
        accepted = segment.accepted_ids
        assert segment.violations == []
    err = capsysbinary.readouterr().err.decode()
    assert code == 1
    assert len(accepted) == 1
    assert "delivered 1, acknowledged 0, refused 4" in err
    assert len(dead.read_text().splitlines()) == 4
    assert KEY not in err
    assert KEY not in dead.read_text()


def test_permanent_failure_exits_3_and_dead_letters(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "dead.jsonl"
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "wrong-key")
    with StandIn(write_key=KEY) as segment:
        code = main(
            ["replay", "--segment-host", segment.url, "--dead-letter", str(dead), str(EXAMPLES / "events.jsonl")]
        )
    err = capsysbinary.readouterr().err.decode()
    assert code == 3
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(records) == 21
    assert {r["reason"] for r in records} == {"delivery_failed"}
    assert "401" in records[0]["message"]
    assert "wrong-key" not in err + dead.read_text()


def test_checkpoint_resume_skips_finished_records(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    out = tmp_path / "out.jsonl"
    args = ["replay", "--out", str(out), "--checkpoint", str(checkpoint), str(EXAMPLES / "events.jsonl")]
    assert main(args) == 0
    assert main(args) == 0
    err = capsysbinary.readouterr().err.decode().splitlines()
    assert "skipped 22 records already done" in err[-1]
    assert sum(len(json.loads(line)["batch"]) for line in out.read_text().splitlines()) == 21


def test_checkpoint_of_a_rewritten_archive_is_refused_in_one_line(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    archive = tmp_path / "archive.jsonl"
    lines = (EXAMPLES / "events.jsonl").read_bytes().splitlines(keepends=True)
    archive.write_bytes(b"".join(lines[:10]))
    args = ["replay", "--dry-run", "--checkpoint", str(tmp_path / "ckpt"), str(archive)]
    assert main(args) == 0
    archive.write_bytes(b"".join(lines[10:]))  # another day's events under the same name
    capsysbinary.readouterr()
    assert main(args) == 2
    err = capsysbinary.readouterr().err.decode().splitlines()
    assert len(err) == 1
    assert "changed since checkpoint" in err[0] and "remove the checkpoint" in err[0]


def test_serve_help_works_without_starting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    assert "--public-url" in capsys.readouterr().out


def test_replay_reports_each_refusal_on_stderr(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code = main(["replay", "--dry-run", str(EXAMPLES / "mixed.jsonl")])
    err = capsysbinary.readouterr().err.decode().splitlines()
    assert code == 1
    assert any(line.startswith(f"{EXAMPLES / 'mixed.jsonl'}:2: refused com.twilio.voice.webhook") for line in err)
    assert sum("refused" in line and ": refused " in line for line in err) == 4


@pytest.mark.parametrize("command", ["translate", "replay"])
def test_dead_letter_that_is_an_input_is_refused(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, command: str
) -> None:
    same = tmp_path / "dead.jsonl"
    same.write_bytes((EXAMPLES / "mixed.jsonl").read_bytes())
    extra = ["--dry-run"] if command == "replay" else []
    code = main([command, *extra, "--dead-letter", str(same), str(same)])
    err = capsysbinary.readouterr().err.decode()
    assert code == 2
    assert "is also an input" in err
    assert same.read_bytes() == (EXAMPLES / "mixed.jsonl").read_bytes()


def test_checkpoint_needs_named_files(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    code = main(["replay", "--dry-run", "--checkpoint", str(tmp_path / "c"), "-"])
    assert code == 2
    assert "standard input cannot be resumed" in capsysbinary.readouterr().err.decode()


@pytest.mark.parametrize(
    "option", [["--batch-size", "3000"], ["--retry-budget", "-1"], ["--timeout", "0"], ["--timeout", "nan"]]
)
def test_out_of_range_options_are_usage_errors(capsys: pytest.CaptureFixture[str], option: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--dry-run", *option, str(EXAMPLES / "events.jsonl")])
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_replay_from_a_pipe_sends_what_arrived_while_the_writer_is_quiet() -> None:
    # `tail -f archive.jsonl | segment-bridge replay -`: events must not sit in a partial batch until the pipe closes.
    lines = (EXAMPLES / "events.jsonl").read_bytes().splitlines(keepends=True)[1:4]  # three call events
    process = subprocess.Popen(
        [sys.executable, "-m", "segment_bridge", "replay", "--dry-run", "--quiet", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b"".join(lines))
        process.stdin.flush()
        first: list[bytes] = []
        reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=20)
        assert first, "no batch while the pipe stayed open"
        assert len(json.loads(first[0])["batch"]) == 3
    finally:
        process.stdin.close()
        assert process.wait(timeout=20) == 0
        process.stdout.close()


def test_without_a_dead_letter_file_each_failed_event_is_listed(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "wrong-key")
    with StandIn(write_key=KEY) as segment:
        code = main(["replay", "--quiet", "--segment-host", segment.url, str(EXAMPLES / "events.jsonl")])
    err = capsysbinary.readouterr().err.decode().splitlines()
    assert code == 3
    failed = [line for line in err if ": delivery_failed: " in line]
    # One line per event Segment did not take, with its place in the input: the only trace without --dead-letter.
    assert len(failed) == 21
    assert failed[0].startswith(f"{EXAMPLES / 'events.jsonl'}:2: failed com.twilio.voice.status-callback.call.")
    assert "wrong-key" not in "\n".join(err)


def test_checkpoint_over_a_pipe_is_refused_before_reading_it(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    # A pipe cannot be read twice: fingerprinting its head would take those events away from the replay.
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    code = main(["replay", "--dry-run", "--checkpoint", str(tmp_path / "ckpt"), str(fifo)])
    out, err = capsysbinary.readouterr()
    assert code == 2
    assert out == b""
    assert err.decode().count("\n") == 1
    assert "--checkpoint needs regular input files" in err.decode()
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(("first", "second"), [("--dead-letter", "--checkpoint"), ("--out", "--checkpoint")])
def test_two_outputs_on_one_path_are_refused(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, first: str, second: str
) -> None:
    same = tmp_path / "same"
    dry_run = [] if "--out" in (first, second) else ["--dry-run"]
    code = main(["replay", *dry_run, first, str(same), second, str(same), str(EXAMPLES / "mixed.jsonl")])
    err = capsysbinary.readouterr().err.decode()
    assert code == 2
    assert f"{first} and {second} name the same file" in err
    assert not same.exists()


def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    code = main(["replay", "--out", str(tmp_path), str(EXAMPLES / "events.jsonl")])  # a directory
    err = capsysbinary.readouterr().err.decode()
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
