"""``serve``'s exit statuses and secret files, run as a real process on 127.0.0.1.

README, Commands: 0 stopped by SIGTERM after draining, 130 by Ctrl-C (SIGINT) after draining, both after a summary
of the counts; 2 for configuration (an address in use included), in one line.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from servehelp import ServeProcess, base_env
from standin import StandIn

from segment_bridge.mapping import load_mapping
from segment_bridge.samples import call_events
from segment_bridge.translate import translate_record

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow

UNKNOWN = {"specversion": "1.0", "type": "com.example.unknown", "id": "X1", "source": "/x"}
REPO = Path(__file__).resolve().parents[2]
HASH_KEY = "hk_Serve-Hash-Key-File-0123456789"


def lines_of(log: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in log.splitlines()]


def summary_of(log: str) -> dict[str, Any]:
    (summary,) = [line for line in lines_of(log) if line.get("event") == "summary"]
    return summary


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_stopped_server_drains_logs_its_counts_and_exits_as_documented(
    signum: signal.Signals, status: int, tmp_path: Path
) -> None:
    args = ["--insecure-no-signature", "--dry-run", "--out", str(tmp_path / "out.jsonl")]
    with ServeProcess([*args, "--dead-letter", str(tmp_path / "dl.jsonl")], base_env()) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            delivered = client.post("/events", content=orjson.dumps(call_events(3)))
            refused = client.post("/events", content=orjson.dumps(UNKNOWN))
        code = server.stop(signum)
    assert delivered.status_code == refused.status_code == 200
    assert code == status
    summary = summary_of(server.log)
    assert (summary["delivered"], summary["refused"], summary["failed"]) == (3, 1, 0)
    assert summary["refused_reasons"] == {"unknown_event_type": 1}
    assert summary["responses"] == {"200": 2}
    (exit_line,) = [line for line in lines_of(server.log) if line.get("event") == "exit"]
    assert exit_line == {**exit_line, "signal": signum.name, "status": status}


def test_a_port_in_use_is_one_line_naming_the_address_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "segment_bridge", "serve", "--port", str(port)]
        command += ["--insecure-no-signature", "--dry-run", "--no-dead-letter"]
        result = subprocess.run(command, env=base_env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    message = orjson.loads(line)["message"]
    assert f"127.0.0.1:{port}" in message
    assert "address already in use" in message


def test_serve_reads_the_write_key_from_write_key_file(tmp_path: Path, write_key: str) -> None:
    key_file = tmp_path / "segment-key"
    key_file.write_text(write_key + "\n")
    with StandIn(write_key=write_key) as segment:
        args = ["--insecure-no-signature", "--no-dead-letter", "--segment-host", segment.url]
        with ServeProcess([*args, "--write-key-file", str(key_file)], base_env()) as server:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                answer = client.post("/events", content=orjson.dumps(call_events(2)))
            server.stop()
        accepted = segment.accepted_ids
    assert answer.status_code == 200, answer.text
    sent = translate_record(orjson.dumps(call_events(2)), load_mapping())
    assert accepted == {t.track.message_id for t in sent if t.track is not None}
    assert write_key not in server.log


def hashing_mapping(tmp_path: Path) -> Path:
    path = tmp_path / "hashing.toml"
    text = (REPO / "mappings" / "twilio_voice.toml").read_text()
    path.write_text(re.sub(r"phone_numbers\s*=\s*false", "phone_numbers = true", text))
    assert "phone_numbers = true" in path.read_text()
    return path


def test_serve_reads_the_hash_key_from_hash_key_file(tmp_path: Path) -> None:
    mapping = hashing_mapping(tmp_path)
    key_file = tmp_path / "hash-key"
    key_file.write_text(HASH_KEY + "\n")
    out = tmp_path / "out.jsonl"
    body = orjson.dumps(call_events(4)[0])
    args = ["--insecure-no-signature", "--no-dead-letter", "--dry-run", "--out", str(out), "--mapping", str(mapping)]
    with ServeProcess([*args, "--hash-key-file", str(key_file)], base_env()) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answer = client.post("/events", content=body)
        server.stop()
    assert answer.status_code == 200, answer.text
    (expected,) = translate_record(body, load_mapping(mapping, hash_key=HASH_KEY.encode()))
    assert expected.track is not None
    (batch,) = (orjson.loads(line)["batch"] for line in out.read_bytes().splitlines())
    assert batch[0]["anonymousId"] == expected.track.message["anonymousId"]
    assert re.fullmatch(r"[0-9a-f]{64}", batch[0]["anonymousId"])  # a digest, not the phone number
    assert HASH_KEY not in server.log


def test_a_hashing_mapping_without_a_key_names_the_option_and_exits_2(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "segment_bridge", "serve", "--port", "0", "--insecure-no-signature"]
    command += ["--dry-run", "--no-dead-letter", "--mapping", str(hashing_mapping(tmp_path))]
    result = subprocess.run(command, env=base_env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "--hash-key-file" in orjson.loads(line)["message"]
