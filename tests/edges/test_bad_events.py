"""One bad event never stops a run: dead-letter records are always written, unreadable inputs are found before
anything is sent, and a run that ends early (a read error, Ctrl-C, a closed stdout) still says what it did."""

from __future__ import annotations

import gzip
import json
import math
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from segment_bridge import cli
from segment_bridge.cli import translate as translate_command
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.mapping import load_mapping
from segment_bridge.outcomes import Translation
from segment_bridge.samples import call_events, iter_call_events
from segment_bridge.translate import translate_record

MAPPING = load_mapping()
ISSUE_LINE = (
    b'{"specversion":"1.0","type":"com.twilio.voice.status-callback.call.answered","source":"/s","id":"EV1",'
    b'"time":"2026-01-01T00:00:00Z","data":{"sid":"CA1","extra":1e400,"request":{"parameters":'
    b'{"CallStatus":"in-progress"}}}}'
)


def _event(**changes: Any) -> dict[str, Any]:
    return {**call_events(1)[0], **changes}


def _lines(count: int) -> bytes:
    return b"".join(orjson.dumps(event) + b"\n" for event in iter_call_events(count))


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "segment_bridge", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


# -- the issue's number, alone and in an array -------------------------------------------------------------------


def test_the_issues_line_translates_the_same_alone_and_in_an_array() -> None:
    # The decoder skips `extra` unread; the event kept for records and reports reads 1e400 as infinity.
    (alone,) = translate_record(ISSUE_LINE, MAPPING)
    (in_array,) = translate_record(b"[" + ISSUE_LINE + b"]", MAPPING)
    assert alone.track is not None and in_array.track is not None
    assert alone.track.body == in_array.track.body
    assert alone.event["data"]["extra"] == math.inf  # what a dead-letter record or a failure report decodes


@pytest.mark.parametrize("number", [b"1e400", b"-1E+400", b"9" * 400])
def test_a_number_beyond_double_range_that_is_mapped_is_refused_alone_and_in_an_array(number: bytes) -> None:
    raw = ISSUE_LINE.replace(b'"in-progress"', number)
    for record in (raw, b"[" + raw + b"]"):
        (translation,) = translate_record(record, MAPPING)
        assert translation.refusal is not None and translation.refusal.reason == "invalid_event"
        assert translation.refusal.message.startswith("a mapped value cannot be sent")


def test_replay_of_the_issues_line_delivers_it_with_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(ISSUE_LINE + b"\n" + _lines(2))
    checkpoint = tmp_path / "replay.ckpt"
    result = _run("replay", "--dry-run", "--checkpoint", str(checkpoint), str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines() == ["segment-bridge: shown 3, acknowledged 0, refused 0, failed 0"]
    assert json.loads(checkpoint.read_bytes())["position"] == [0, 3]


def test_a_refused_event_with_a_number_beyond_double_range_replays_from_its_record(tmp_path: Path) -> None:
    raw = ISSUE_LINE.replace(b"status-callback.call.answered", b"unknown")
    (translation,) = translate_record(raw, MAPPING)
    assert translation.refusal is not None and translation.refusal.reason == "unknown_event_type"
    line = _dead_letter_line(tmp_path, translation)
    assert json.loads(line)["event_encoding"] == "json-text"  # orjson would have written null for it
    (again,) = translate_record(line, MAPPING)
    assert again.refusal is not None and again.refusal.reason == "unknown_event_type"
    assert again.event["data"]["extra"] == math.inf


def test_a_valid_event_with_large_but_finite_numbers_still_translates() -> None:
    # Python's json writes the long integer exactly (300 digits): within double range, as orjson reads it.
    raw = json.dumps(_event(extension=1.5e308, data={**_event()["data"], "list": [-1e308, 10**299 // 3]})).encode()
    assert b"e+308" in raw
    (translation,) = translate_record(raw, MAPPING)
    assert translation.track is not None


def _dead_letter_line(tmp_path: Path, translation: Translation) -> bytes:
    """The one dead-letter record written for a refused ``translation``."""
    assert translation.refusal is not None
    path = tmp_path / "dead.jsonl"
    with DeadLetterWriter(path) as writer:
        writer.write(translation.refusal, translation.event)
    (line,) = path.read_bytes().splitlines()
    return line


# -- dead-letter records are always writable ----------------------------------------------------------------------


def test_a_refused_event_nested_1000_deep_is_recorded_and_replays_to_the_same_refusal(tmp_path: Path) -> None:
    event = _event(type="com.example.unknown")
    raw = orjson.dumps(event)[:-1] + b',"deep":' + b"[" * 1000 + b"]" * 1000 + b"}"
    (translation,) = translate_record(raw, MAPPING)
    assert translation.refusal is not None and translation.refusal.reason == "unknown_event_type"
    line = _dead_letter_line(tmp_path, translation)
    record = json.loads(line)
    assert record["event_encoding"] == "json-text" and record["id"] == event["id"]
    (again,) = translate_record(line, MAPPING)
    assert again.refusal is not None and again.refusal.reason == "unknown_event_type"
    assert again.event_id == event["id"]


def test_input_that_is_not_utf8_is_kept_byte_for_byte(tmp_path: Path) -> None:
    # The junk sits in a string no one reads: replaced by U+FFFD, the event would translate on replay.
    raw = orjson.dumps(_event()).replace(b'"Direction"', b'"Dir\xffection"')
    (translation,) = translate_record(raw, MAPPING)
    assert translation.refusal is not None and translation.refusal.reason == "invalid_json"
    line = _dead_letter_line(tmp_path, translation)
    assert json.loads(line)["event_encoding"] == "base64"
    (again,) = translate_record(line, MAPPING)
    assert again.refusal is not None and again.refusal.reason == "invalid_json"
    assert again.event == raw


# -- inputs and outputs checked first; a read error part-way through ---------------------------------------------


def test_a_missing_second_input_is_one_line_and_nothing_is_sent(tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    first.write_bytes(_lines(3))
    out = tmp_path / "batches.jsonl"
    # One event per batch: the first file's would be sent at once if the second were found missing only later.
    result = _run("replay", "--out", str(out), "--batch-size", "1", str(first), str(tmp_path / "missing.jsonl"))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"segment-bridge: error: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory"
    ]
    assert not out.exists() or out.read_bytes() == b""


@pytest.mark.parametrize("option", ["--dead-letter", "--checkpoint"])
def test_an_output_that_cannot_be_written_is_found_before_anything_is_sent(tmp_path: Path, option: str) -> None:
    first = tmp_path / "first.jsonl"
    first.write_bytes(_lines(3))
    out = tmp_path / "batches.jsonl"
    result = _run(
        "replay", "--out", str(out), "--batch-size", "1", option, str(tmp_path / "no-such-dir" / "file"), str(first)
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and option.encode() in result.stderr
    assert not out.exists() or out.read_bytes() == b""


def _truncated_gzip(path: Path, events: int) -> None:
    data = gzip.compress(_lines(events))
    path.write_bytes(data[: len(data) * 3 // 4])


def test_replay_settles_what_it_read_before_a_truncated_gzip_then_exits_2(tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    first.write_bytes(_lines(3))
    broken = tmp_path / "second.jsonl.gz"
    _truncated_gzip(broken, 400)
    out = tmp_path / "batches.jsonl"
    result = _run("replay", "--out", str(out), "--batch-size", "1000", str(first), str(broken))
    assert result.returncode == 2
    written = sum(len(json.loads(line)["batch"]) for line in out.read_bytes().splitlines())
    assert written > 3  # the first file and what was read of the second, though it was one partial batch
    err = result.stderr.decode().splitlines()
    assert err[0].startswith(f"segment-bridge: error: cannot read {broken}: ")
    assert err[-1].startswith(f"segment-bridge: written {written}, acknowledged ")


def test_translate_prints_its_summary_after_a_truncated_gzip_and_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "events.jsonl.gz"
    _truncated_gzip(broken, 400)
    result = _run("translate", str(broken))
    assert result.returncode == 2
    translated = len(result.stdout.splitlines())
    assert translated > 0
    assert result.stderr.decode().splitlines()[-1].startswith(f"segment-bridge: translated {translated}, ")


# -- runs that end early ------------------------------------------------------------------------------------------


def test_translate_interrupted_prints_the_summary_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(_lines(5))
    real = translate_command.translate_record
    seen = []

    def interrupted_at_the_third(raw: bytes, mapping: Any) -> Any:
        seen.append(raw)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(raw, mapping)

    monkeypatch.setattr(translate_command, "translate_record", interrupted_at_the_third)
    assert cli.main(["translate", str(path)]) == 130
    out, err = capsysbinary.readouterr()
    assert len(out.splitlines()) == 2
    assert err.decode().splitlines()[-2:] == [
        "segment-bridge: interrupted",
        "segment-bridge: translated 2, acknowledged 0, refused 0",
    ]


def test_replay_interrupted_prints_what_was_sent_and_exits_130() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "segment_bridge", "replay", "--dry-run", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        _interrupt_after_the_first_batch(process)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.decode().splitlines()[-2:] == [
        "segment-bridge: interrupted",
        "segment-bridge: shown 2, acknowledged 0, refused 0, failed 0",
    ]


def _interrupt_after_the_first_batch(process: subprocess.Popen[bytes]) -> None:
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(_lines(2))
        process.stdin.flush()  # and left open: the replay waits for more, and sends these after 1 s idle
        shown: list[bytes] = []
        reader = threading.Thread(target=lambda: shown.append(process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=30)
        assert shown and len(json.loads(shown[0])["batch"]) == 2
        process.send_signal(signal.SIGINT)
    except BaseException:
        process.kill()
        raise


@pytest.mark.parametrize("command", [["translate"], ["replay", "--dry-run", "--batch-size", "1"]])
def test_a_closed_stdout_stops_quietly_with_the_summary_and_exits_141(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(_lines(2_000))  # far more output than a pipe holds
    with subprocess.Popen(
        [sys.executable, "-m", "segment_bridge", *command, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            assert process.stdout.readline()
            process.stdout.close()  # as `| head -1` does
            err = process.stderr.read()
            process.wait(timeout=60)
        except BaseException:
            process.kill()
            raise
    assert process.returncode == 141
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segment-bridge: ")
    assert "acknowledged" in lines[0] and "Traceback" not in err.decode()


# -- messages in the user's words ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"data": []}, "data: Input should be a JSON object"),
        ({"data": {"sid": "CA1", "request": [1]}}, "data.request: Input should be a JSON object"),
    ],
)
def test_refusals_do_not_name_internal_models(change: dict[str, Any], expected: str) -> None:
    (translation,) = translate_record(orjson.dumps(_event(**change)), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.message == expected


@pytest.mark.parametrize(
    ("junk", "words"),
    [(b'"\\ud800"', "a lone UTF-16 surrogate escape"), (b'"\xff"', "bytes that are not valid UTF-8")],
)
def test_json_problems_are_said_in_plain_words(junk: bytes, words: str) -> None:
    raw = orjson.dumps(_event(extension="X")).replace(b'"X"', junk)
    (translation,) = translate_record(raw, MAPPING)
    assert translation.refusal is not None
    assert words in translation.refusal.message and "surrogates not allowed" not in translation.refusal.message
