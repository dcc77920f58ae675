"""The real server: uvicorn on 127.0.0.1 (port 0) in a subprocess, delivering to the stand-in Segment."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
twilio_validator = pytest.importorskip("twilio.request_validator")

from standin import StandIn  # noqa: E402

from segment_bridge.mapping import load_mapping  # noqa: E402
from segment_bridge.samples import call_events  # noqa: E402
from segment_bridge.translate import translate_record  # noqa: E402

pytestmark = pytest.mark.slow

TOKEN = "tw_auth_T0ken-for-e2e-0123456789abcd"
PUBLIC_URL = "https://bridge.example.com/events"
_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class ServerProcess:
    """A ``serve`` subprocess; collects its stderr on a thread so the pipe never fills."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        # A working directory of its own: the default dead-letter file is created there, not in the checkout.
        self._cwd = tempfile.TemporaryDirectory()
        self.cwd = Path(self._cwd.name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "segment_bridge", "serve", "--port", "0", *args],
            env=env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._port: int | None = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            match = _RUNNING.search(line)
            if match:
                self._port = int(match.group(1))
                self._ready.set()
        self._ready.set()

    @property
    def url(self) -> str:
        if not self._ready.wait(20) or self._port is None:
            raise AssertionError("server did not start:\n" + "".join(self.lines))
        return f"http://127.0.0.1:{self._port}"

    def stop(self) -> int:
        """SIGTERM (graceful), then wait; kill only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Only the reader thread reads stderr; it ends at EOF, once the process is gone.
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode

    def cleanup(self) -> None:
        self._cwd.cleanup()

    @property
    def log(self) -> str:
        return "".join(self.lines)


@contextmanager
def serve(args: Sequence[str], env: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess(args, env)
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


def base_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGMENT_", "TWILIO_"))}
    env.update(extra)
    return env


def signed(body: bytes) -> tuple[str, dict[str, str]]:
    oracle = twilio_validator.RequestValidator(TOKEN)
    url = f"{PUBLIC_URL}?bodySHA256={oracle.compute_hash(body.decode())}"
    return url.partition("?")[2], {"X-Twilio-Signature": oracle.compute_signature(url, {})}


def test_real_server_delivers_verifies_and_stops_gracefully(standin: StandIn, write_key: str, tmp_path: Path) -> None:
    dead_letter = tmp_path / "dead.jsonl"
    env = base_env(SEGMENT_WRITE_KEY=write_key, TWILIO_AUTH_TOKEN=TOKEN, SEGMENT_HOST=standin.url)
    body = orjson.dumps(call_events(7))
    expected = {t.track.message_id for t in translate_record(body, load_mapping()) if t.track is not None}
    with serve(
        ["--public-url", PUBLIC_URL, "--dead-letter", str(dead_letter), "--delivery-budget", "2"], env
    ) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            query, headers = signed(body)
            ok = client.post(f"/events?{query}", content=body, headers=headers)
            again = client.post(f"/events?{query}", content=body, headers=headers)
            forged = client.post(f"/events?{query}", content=body + b" ", headers=headers)
            bad_query, bad_headers = signed(b"not json")
            malformed = client.post(f"/events?{bad_query}", content=b"not json", headers=bad_headers)
            health = client.get("/healthz").json()
            metrics = client.get("/metrics").text
        code = server.stop()
    assert ok.status_code == 200, ok.text
    assert {event["outcome"] for event in ok.json()["events"]} == {"delivered"}
    assert expected <= standin.accepted_ids
    assert again.status_code == 200
    assert len(standin.requests) == 1, "the redelivery must be answered without Segment"
    assert forged.status_code == 403
    assert forged.json()["check"] == "body_hash_mismatch"
    assert malformed.status_code == 400
    assert orjson.loads(dead_letter.read_bytes().splitlines()[0])["reason"] == "invalid_json"
    assert health["segment"]["answered_recently"] is True
    assert 'segment_bridge_http_responses_total{status="403"} 1.0' in metrics
    # uvicorn re-raises the SIGTERM it caught once shutdown is complete, so the exit status is the signal's.
    assert code in (0, -signal.SIGTERM)
    log = server.log
    assert '"event":"stopped"' in log
    assert "Traceback" not in log
    assert write_key not in log
    assert TOKEN not in log
    assert '"check":"body_hash_mismatch"' in log


def test_dry_run_writes_batches_to_out(tmp_path: Path) -> None:
    out = tmp_path / "batches.jsonl"
    body = orjson.dumps(call_events(8))
    unknown = orjson.dumps({"specversion": "1.0", "type": "com.example.unknown", "id": "X1", "source": "/x"})
    with serve(["--insecure-no-signature", "--dry-run", "--out", str(out)], base_env()) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            response = client.post("/events", content=body)
            refused = client.post("/events", content=unknown)
        code = server.stop()
        # Without --dead-letter, a refused event is kept in the default file of the working directory.
        (record,) = (server.cwd / "segment-bridge-refused.jsonl").read_bytes().splitlines()
    assert orjson.loads(record)["reason"] == "unknown_event_type"
    assert refused.status_code == 200
    assert response.status_code == 200
    assert code in (0, -signal.SIGTERM)
    assert '"event":"stopped"' in server.log
    (line,) = out.read_bytes().splitlines()
    assert len(orjson.loads(line)["batch"]) == len(call_events(8))
    assert "NOT verified" in server.log


def test_workers_log_each_request_like_a_single_process() -> None:
    # Each worker is a fresh process: the per-request line and the sink test id must reach the log there too.
    body = orjson.dumps(call_events(9)[0])
    with serve(["--insecure-no-signature", "--dry-run", "--workers", "2"], base_env()) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            # The parent prints the address before the workers listen on it.
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.ConnectError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            response = client.post("/events", content=body)
        server.stop()
        # Nothing was refused, so no dead-letter file was left behind.
        assert list(server.cwd.iterdir()) == []
    assert response.status_code == 200
    log = server.log
    assert log.count('"event":"started"') == 2
    assert re.search(r'"level":"info","logger":"segment_bridge\.server","event":"request","status":200', log), log


def serve_at_start(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``serve --dry-run`` with ``args`` where it is expected to stop at start, before it listens."""
    command = [sys.executable, "-m", "segment_bridge", "serve", "--port", "0", "--dry-run", *args]
    return subprocess.run(command, env=base_env(), capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dead-letter", "/nonexistent-dir/refused.jsonl"], "its directory does not exist"),
        (["--dead-letter", "/"], "it is a directory"),
        (["--dead-letter", "x.jsonl", "--no-dead-letter"], "not allowed with argument"),
    ],
)
def test_dead_letter_file_problems_are_one_line_and_exit_2(args: list[str], expected: str) -> None:
    result = serve_at_start(["--insecure-no-signature", *args])
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_auth_token_is_one_line_and_exit_2() -> None:
    result = serve_at_start(["--public-url", PUBLIC_URL])
    assert result.returncode == 2
    assert "TWILIO_AUTH_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
