"""Helpers for tests that run ``segment-bridge serve`` as a real process, and a Segment that fails as a proxy does.

``ServeProcess`` starts ``python -m segment_bridge serve --port 0`` in a working directory of its own, collects its
stderr on a thread (so the pipe never fills) and finds its port in uvicorn's start-up line. ``PlainErrorSegment``
answers every ``POST`` with 500 and a text body (what a load balancer in front of Segment sends): the Segment SDK
cannot read that answer and logs a line of its own for it, which the stand-in's JSON errors never trigger.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["PlainErrorSegment", "ServeProcess", "base_env"]

_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment without any SEGMENT_* or TWILIO_* setting, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGMENT_", "TWILIO_"))}
    env.update(extra)
    return env


class ServeProcess:
    """A ``serve`` subprocess on 127.0.0.1 (any free port). Use as a context manager: it is always stopped."""

    def __init__(self, args: Sequence[str], env: dict[str, str], *, port: int = 0) -> None:
        self._cwd = tempfile.TemporaryDirectory()
        self.cwd = Path(self._cwd.name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "segment_bridge", "serve", "--port", str(port), *args],
            env=env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.out = ""
        self._port: int | None = None
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=self._read_out, daemon=True)
        self._out_reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                match = _RUNNING.search(line)
                if match:
                    self._port = int(match.group(1))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        self.out = self.process.stdout.read()

    def wait_for(self, text: str, timeout: float = 20.0) -> bool:
        """Block until a stderr line contains ``text`` (False when the process ended or time ran out)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or not self._reader.is_alive(), timeout=timeout
            ) and any(text in line for line in self.lines)

    @property
    def url(self) -> str:
        if not self.wait_for("Uvicorn running on") or self._port is None:
            raise AssertionError("server did not start:\n" + "".join(self.lines))
        return f"http://127.0.0.1:{self._port}"

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``signum`` (graceful), wait for the exit status; kill only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        self._out_reader.join(5)
        for stream in (self.process.stderr, self.process.stdout):
            if stream is not None:
                stream.close()
        return self.process.returncode

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL if exc[0] is not None else signal.SIGTERM)
        self._cwd.cleanup()


class PlainErrorSegment:
    """A Segment endpoint on 127.0.0.1 that answers every POST with 500 and a plain-text body."""

    def __init__(self) -> None:
        self.posts = 0
        self._changed = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = b"<html><body>Internal Server Error</body></html>"
                self.send_response(500)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with owner._changed:
                    owner.posts += 1
                    owner._changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_posts(self, count: int, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.posts >= count, timeout=timeout)

    def __enter__(self) -> PlainErrorSegment:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
