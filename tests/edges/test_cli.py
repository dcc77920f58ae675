"""The command line, run in-process through main() and, for the entry points, as real subprocesses."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from eventfiles import BROKEN, EVENTS

from segment_bridge.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(list(argv))
    captured = capsysbinary.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return code, lines, captured.err.decode()


def test_translate_example_file(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, messages, err = run(capsysbinary, "translate", str(EXAMPLES / "events.jsonl"))
    assert code == 0
    assert len(messages) == 21
    assert all(m["type"] == "track" and m["messageId"] for m in messages)
    assert "translated 21, acknowledged 1, refused 0" in err.splitlines()[-1]


def test_output_is_in_input_order(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    _, messages, _ = run(capsysbinary, "translate", str(EVENTS / "batch_array.json"))
    assert [m["event"] for m in messages] == ["Call Initiated", "Call Completed"]


def test_refusals_go_to_stderr_and_dead_letter(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    code, messages, err = run(capsysbinary, "translate", "--dead-letter", str(dead), str(EXAMPLES / "mixed.jsonl"))
    assert code == 1
    assert len(messages) == 1
    lines = err.splitlines()
    assert any("mixed.jsonl:2: refused com.twilio.voice.webhook" in line and "Hint:" in line for line in lines)
    assert lines[-1].endswith(
        "translated 1, acknowledged 0, refused 4 "
        "(deprecated_event_type 1, invalid_json 1, not_segment_compatible 1, unknown_event_type 1)"
    )
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [r["reason"] for r in records] == [
        "deprecated_event_type", "not_segment_compatible", "unknown_event_type", "invalid_json",
    ]  # fmt: skip
    assert all(set(r) == {"reason", "id", "type", "message", "hint", "event"} for r in records)
    assert records[0]["event"]["type"] == "com.twilio.voice.webhook.status-callback.call.initiated"
    assert records[3]["event"].startswith('{"specversion":"1.0"')


def test_dead_letter_file_replays_as_input(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    run(capsysbinary, "translate", "--dead-letter", str(dead), str(EVENTS / "batch_array.json"))
    fixed = tmp_path / "fixed.jsonl"
    with fixed.open("w") as out:
        for line in dead.read_text().splitlines():
            event = json.loads(line)["event"]
            event["type"] = event["type"].replace(".webhook.", ".")
            out.write(json.dumps(event) + "\n")
    code, messages, _ = run(capsysbinary, "translate", str(fixed))
    assert code == 0
    assert [m["event"] for m in messages] == ["Call Answered"]


def test_gzip_input(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress((EXAMPLES / "events.jsonl").read_bytes()))
    code, messages, _ = run(capsysbinary, "translate", str(gz))
    assert (code, len(messages)) == (0, 21)


def test_quiet_keeps_the_summary(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, _, err = run(capsysbinary, "translate", "--quiet", str(EXAMPLES / "mixed.jsonl"))
    assert code == 1
    assert err.count("\n") == 1
    assert "refused 4" in err


@pytest.mark.parametrize("name", sorted(path.name for path in BROKEN.iterdir()))
def test_broken_input_is_one_line_never_a_traceback(capsysbinary: pytest.CaptureFixture[bytes], name: str) -> None:
    code, messages, err = run(capsysbinary, "translate", str(BROKEN / name))
    assert code == 1
    assert messages == []
    assert "Traceback" not in err
    assert len(err.splitlines()) == 2


def test_unreadable_path_exits_2(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    code, _, err = run(capsysbinary, "translate", str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert err.strip() == f"segment-bridge: error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory"


def test_bad_mapping_exits_2(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text('[events]\n"com.twilio.voice.status-callback.call.ringing" = "Call Ringing"\n[propertys]\n')
    code, _, err = run(capsysbinary, "translate", "--mapping", str(mapping), str(EXAMPLES / "events.jsonl"))
    assert code == 2
    assert "propertys: unknown key (did you mean 'properties'?)" in err
    assert len(err.splitlines()) == 1


def test_mapping_from_environment(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, monkeypatch) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[events]\n"com.twilio.voice.status-callback.call.ringing" = "Phone Rang"\n'
        '[properties]\nstatus = { from = ["param:CallStatus"] }\n'
    )
    monkeypatch.setenv("SEGMENT_BRIDGE_MAPPING", str(mapping))
    code, messages, _err = run(capsysbinary, "translate", str(EVENTS / "real_inbound_ringing.json"))
    assert code == 0
    assert messages[0]["event"] == "Phone Rang"
    assert messages[0]["properties"] == {"status": "ringing"}


def test_hash_key_file(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        (ROOT / "mappings" / "twilio_voice.toml").read_text().replace("phone_numbers = false", "phone_numbers = true")
    )
    code, _, err = run(capsysbinary, "translate", "--mapping", str(mapping), str(EVENTS / "real_inbound_ringing.json"))
    assert code == 2
    assert "no hash key" in err
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    code, messages, err = run(
        capsysbinary,
        "translate",
        "--mapping",
        str(mapping),
        "--hash-key-file",
        str(key),
        str(EVENTS / "real_inbound_ringing.json"),
    )
    assert code == 0
    assert "+1415" not in json.dumps(messages)
    assert "s3cret" not in err


def test_check_mapping(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    code, _, err = run(capsysbinary, "check-mapping")
    assert code == 0
    assert "valid; 4 event types" in err
    linty = tmp_path / "m.toml"
    linty.write_text('[events]\n"com.twilio.voice.status-callback.call.ringing" = "ringing"\n')
    code, _, err = run(capsysbinary, "check-mapping", str(linty))
    assert code == 1
    assert "not Title Case" in err
    broken = tmp_path / "b.toml"
    broken.write_text("[events\n")
    code, _, err = run(capsysbinary, "check-mapping", str(broken))
    assert code == 2
    assert "not valid TOML" in err


@pytest.mark.parametrize("command", ["translate", "check-mapping"])
def test_help_teaches_with_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "exit status:" in out


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["translate", "--no-such-flag"])
    assert exited.value.code == 2


@pytest.mark.slow
def test_entry_points_run_as_processes() -> None:
    data = (EXAMPLES / "events.jsonl").read_bytes()
    for argv in (
        [sys.executable, "-m", "segment_bridge", "translate", "-"],
        [str(Path(sys.executable).parent / "segment-bridge"), "translate"],
    ):
        result = subprocess.run(argv, input=data, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 21


@pytest.mark.slow
def test_broken_pipe_is_quiet() -> None:
    code = f"{sys.executable} -m segment_bridge translate {EXAMPLES / 'events.jsonl'} | head -n 1 > /dev/null"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", code], capture_output=True, timeout=60, check=False)
    assert b"Traceback" not in result.stderr
