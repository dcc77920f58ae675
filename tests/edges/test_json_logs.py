"""Every line ``serve`` and the Lambda handler write is one JSON object; ``replay`` prints no SDK lines of its own.

Segment answers 500 with a text body here (as a proxy in front of it does): the Segment SDK cannot read that answer
and logs ``Unknown error: [500] ...`` for each attempt, a duplicate of what the bridge reports itself.
"""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import sys
from typing import Any

import orjson
import pytest
from kinesis_events import FakeContext, KinesisRecord, encoded, lambda_event, sequence_numbers
from servehelp import PlainErrorSegment, ServeProcess, base_env

from segment_bridge import aws_lambda
from segment_bridge.samples import call_events

httpx = pytest.importorskip("httpx")
twilio_validator = pytest.importorskip("twilio.request_validator")

TOKEN = "tw_auth_T0ken-for-json-logs-0123456789"
PUBLIC_URL = "https://bridge.example.com/events"


def json_objects(text: str) -> list[dict[str, Any]]:
    """Each line of ``text`` parsed; fails the test on a line that is not one JSON object."""
    parsed = []
    for line in text.splitlines():
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


def signed(body: bytes) -> tuple[str, dict[str, str]]:
    oracle = twilio_validator.RequestValidator(TOKEN)
    url = f"{PUBLIC_URL}?bodySHA256={oracle.compute_hash(body.decode())}"
    return url.partition("?")[2], {"X-Twilio-Signature": oracle.compute_signature(url, {})}


@pytest.mark.slow
def test_every_line_serve_writes_is_a_json_object_while_segment_fails(write_key: str) -> None:
    env = base_env(SEGMENT_WRITE_KEY=write_key, TWILIO_AUTH_TOKEN=TOKEN)
    body = orjson.dumps(call_events(3))
    with (
        PlainErrorSegment() as segment,
        ServeProcess(
            ["--public-url", PUBLIC_URL, "--segment-host", segment.url, "--delivery-budget", "1", "--no-dead-letter"],
            env,
        ) as server,
    ):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            query, headers = signed(body)
            failed = client.post(f"/events?{query}", content=body, headers=headers)
            forged = client.post(f"/events?{query}", content=body + b" ", headers=headers)
        code = server.stop(signal.SIGTERM)
    assert failed.status_code == 503
    assert segment.posts >= 2  # retried, so the SDK had several answers to log about
    assert forged.status_code == 403
    assert code == 0
    lines = json_objects(server.log)
    assert server.out == ""
    assert all({"time", "level", "logger"} <= line.keys() for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "segment_bridge.server"} <= loggers
    assert "Unknown error" not in server.log  # the SDK's duplicate of the failure the bridge reports
    assert any(line.get("event") == "request" and line.get("status") == 503 for line in lines)
    assert write_key not in server.log
    assert TOKEN not in server.log


@pytest.fixture
def runtime_root_handler() -> Any:
    """The Lambda runtime's own plain-text handler on the root logger, writing to the captured stdout."""

    class Current(logging.StreamHandler):  # type: ignore[type-arg]
        def emit(self, record: logging.LogRecord) -> None:
            self.stream = sys.stdout
            super().emit(record)

    handler = Current(io.StringIO())
    handler.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s\t%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.mark.usefixtures("fresh_lambda_runtime", "runtime_root_handler")
def test_every_line_the_lambda_writes_is_a_json_object_while_segment_fails(
    monkeypatch: pytest.MonkeyPatch, write_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with PlainErrorSegment() as segment:
        monkeypatch.setenv("SEGMENT_WRITE_KEY", write_key)
        monkeypatch.setenv("SEGMENT_HOST", segment.url)
        monkeypatch.setenv("SEGMENT_BRIDGE_RETRY_BACKOFF", "0")
        monkeypatch.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "2")
        events = call_events(3)
        records = [KinesisRecord(encoded(e), seq) for e, seq in zip(events, sequence_numbers(3), strict=True)]
        answer = aws_lambda.handler(lambda_event(records), FakeContext())
    assert len(answer["batchItemFailures"]) == 3  # Segment took nothing: every record is retried by Lambda
    assert segment.posts == 2
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = json_objects(captured.out)
    assert "Unknown error" not in captured.out
    assert any(line.get("event") == "delivery_failed" for line in lines), lines
    assert write_key not in captured.out


def test_replay_prints_no_sdk_lines_even_quiet(tmp_path: Any, write_key: str) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(e) for e in call_events(4)) + b"\n")
    with PlainErrorSegment() as segment:
        command = [sys.executable, "-m", "segment_bridge", "replay", "-q", "--max-attempts", "2"]
        command += ["--retry-budget", "5", "--segment-host", segment.url, "--log-level", "warning", str(source)]
        env = base_env(SEGMENT_WRITE_KEY=write_key)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3
    assert segment.posts == 2
    assert "Unknown error" not in result.stderr
    # -q without a dead-letter file: the failed events are listed, then the summary; nothing else.
    summary = result.stderr.splitlines()[-1]
    assert summary.startswith("segment-bridge: delivered 0,")
    failures = [line for line in result.stderr.splitlines()[:-1] if ": failed " in line and "delivery_failed" in line]
    assert len(failures) == len(result.stderr.splitlines()) - 1 == 3, result.stderr


def test_replay_log_level_debug_is_human_lines_and_never_the_write_key(tmp_path: Any, standin: Any) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(e) for e in call_events(4)) + b"\n")
    command = [sys.executable, "-m", "segment_bridge", "replay", "--segment-host", standin.url]
    command += ["--log-level", "debug", str(source)]
    env = base_env(SEGMENT_WRITE_KEY=standin.write_key)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("segment-bridge: DEBUG: urllib3.") for line in lines), lines  # debug really is on
    assert all(line.startswith("segment-bridge: ") for line in lines), lines
    assert standin.write_key not in result.stderr  # the SDK logs the request body, key included, at DEBUG
    assert lines[-1].startswith("segment-bridge: delivered ")
