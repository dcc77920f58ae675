"""A stand-in for Segment's ``POST /v1/batch`` on 127.0.0.1, for tests and benchmarks.

It checks what Segment checks (Basic auth ``base64("KEY:")``, request and message sizes, JSON) and what Segment
silently drops after a 200 (message shape: ``type`` track, ``event``, ``anonymousId`` or ``userId``,
``messageId``), records every accepted ``messageId``, and injects faults on demand::

    with StandIn(write_key="test-key") as segment:
        segment.script(Fault.ERROR_500, Fault.RATE_LIMIT)      # the next two requests fail, then normal
        transport = SegmentTransport("test-key", host=segment.url)
        ...
        assert segment.accepted_ids == expected_ids
        assert segment.violations == []

Faults (:class:`Fault`): ``ERROR_500``; ``RATE_LIMIT`` (429 with ``Retry-After``); ``SLOW`` (answers after
``slow_seconds``, having accepted the batch); ``DROP_BEFORE`` (closes the connection without processing);
``DROP_AFTER`` (accepts the batch, then closes without answering: the ambiguous case). Use :meth:`StandIn.script`
for exact sequences, or ``fault_rate`` (seeded) for a random share of requests. ``latency`` adds a delay to every
answer. ``GET /__standin/stats`` returns counts as JSON, for a stand-in run in another process
(``python tests/standin.py --latency 0.05`` prints its URL on the first line, then serves until stdin closes).

Every server a test starts must be stopped: use it as a context manager (or call :meth:`StandIn.stop`).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import gzip
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

__all__ = ["MAX_MESSAGE_BYTES", "MAX_REQUEST_BYTES", "Fault", "RequestRecord", "StandIn", "StandInProcess"]

#: Segment answers 400 above 500 KB per request (the stand-in reads KB as 1,000 bytes, the strict reading).
MAX_REQUEST_BYTES = 500_000
#: Segment answers 400 above 32 KB per message.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_MESSAGES = 2_500


class Fault(enum.Enum):
    """A failure the stand-in can inject into one request."""

    ERROR_500 = "error_500"
    RATE_LIMIT = "rate_limit"
    SLOW = "slow"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the stand-in answered (or dropped)."""

    status: int | None  # None when the connection was dropped without an answer
    messages: int
    body_bytes: int
    fault: Fault | None
    retry_count: int  # the X-Retry-Count header the SDK sends on retries, 0 when absent


class StandIn:
    """A threaded HTTP server on 127.0.0.1 (port 0) that behaves like Segment's batch endpoint.

    Args:
        write_key: the key requests must authenticate with.
        latency: seconds added before every answer (settable later through the attribute).
        fault_rate: share of requests (0..1) that get a random fault from ``faults``.
        faults: the faults drawn when ``fault_rate`` is set.
        seed: seed of the fault draws, so a run's mix of faults is reproducible.
        retry_after: the ``Retry-After`` seconds a ``RATE_LIMIT`` fault sends.
        slow_seconds: how late a ``SLOW`` fault answers.
    """

    def __init__(
        self,
        write_key: str = "test-key",
        *,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        faults: Iterable[Fault] = tuple(Fault),
        seed: int = 0,
        retry_after: int = 1,
        slow_seconds: float = 0.5,
    ) -> None:
        self.write_key = write_key
        self.latency = latency
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self._auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._script: list[Fault | int | None] = []
        self._accepted: Counter[str] = Counter()
        self._requests: list[RequestRecord] = []
        self._violations: list[str] = []
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> StandIn:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        server = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="segment-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close kept-alive connections and the listening socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        # Handler threads are daemons that server_close() does not join: let the requests being answered finish
        # (a SLOW answer, a latency), so what a test reads after stop() is settled.
        self.wait_idle(timeout=10)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to give the transport as ``host`` (``/v1/batch`` is appended by the SDK)."""
        if self._server is None:
            raise RuntimeError("stand-in not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- control and observations ----------------------------------------------------------------------------

    def script(self, *answers: Fault | int | None) -> None:
        """Queue answers for the next requests, in order, then serve normally.

        Each is a :class:`Fault`, a bare HTTP status (answered without looking at the batch, accepting
        nothing), or ``None`` for normal service.
        """
        with self._lock:
            self._script.extend(answers)

    @property
    def accepted(self) -> Counter[str]:
        """How many times each ``messageId`` was accepted (above 1 means it was re-sent)."""
        with self._lock:
            return Counter(self._accepted)

    @property
    def accepted_ids(self) -> set[str]:
        """The ``messageId`` s accepted at least once."""
        with self._lock:
            return set(self._accepted)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request seen, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def violations(self) -> list[str]:
        """Messages Segment would have dropped after answering 200 (bad shape, too many per batch)."""
        with self._lock:
            return list(self._violations)

    def wait_accepted(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` distinct messageIds were accepted; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._accepted) >= count, timeout=timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no request is being handled (all answered or dropped); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def stats(self) -> dict[str, int]:
        """Counts of requests, accepted messages (with and without repeats) and violations."""
        with self._lock:
            return {
                "requests": len(self._requests),
                "accepted": sum(self._accepted.values()),
                "unique": len(self._accepted),
                "violations": len(self._violations),
            }

    # -- request handling (called from handler threads) -----------------------------------------------------

    @contextlib.contextmanager
    def _handling(self) -> Iterator[None]:
        """Count a request from the moment it is read until it is answered, for :meth:`wait_idle`."""
        with self._changed:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _next_fault(self) -> Fault | int | None:
        with self._lock:
            if self._script:
                return self._script.pop(0)
            if self.fault_rate and self._random.random() < self.fault_rate:
                return self._random.choice(self.faults)
        return None

    def _admit(self, messages: int) -> tuple[int, dict[str, str]] | None:
        """Whether a well-formed batch of ``messages`` is taken: ``None``, or the status and headers to refuse it.

        Always taken here; ``ratelimit_standin.RateLimitedStandIn`` refuses above a workspace rate.
        """
        return None

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _accept(self, body: dict[str, Any]) -> None:
        """Keep the well-formed messages; note the ones Segment would silently drop."""
        batch = body["batch"]
        accepted: list[str] = []
        problems: list[str] = []
        if len(batch) > MAX_BATCH_MESSAGES:
            problems.append(f"{len(batch)} messages in one batch: Segment drops them all")
            batch = []
        for index, message in enumerate(batch):
            problem = _shape_problem(message)
            if problem:
                problems.append(f"batch[{index}]: {problem}")
            else:
                accepted.append(message["messageId"])
        if "sentAt" not in body:
            problems.append("no sentAt in the request body")
        with self._lock:
            self._accepted.update(accepted)
            self._violations.extend(problems)
            self._changed.notify_all()


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (timeout, closed connection) is expected here, not an error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _shape_problem(message: Any) -> str:
    if not isinstance(message, dict):
        return "not an object"
    if message.get("type") != "track":
        return "type is not track"
    if not isinstance(message.get("event"), str) or not message["event"]:
        return "no event name"
    if not (message.get("anonymousId") or message.get("userId")):
        return "no anonymousId or userId"
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not message_id or len(message_id) > 100:
        return "messageId missing or over 100 characters"
    return ""


def _make_handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive like the real endpoint, so clients reuse connections as they would in production.
        protocol_version = "HTTP/1.1"
        # An idle kept-alive connection frees its thread after this long.
        timeout = 10
        # TCP_NODELAY: the handler writes headers and body in two sends, and Nagle's algorithm against the
        # client's delayed ACK would add ~40 ms to every kept-alive answer, which the real endpoint does not.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with standin._lock:
                standin._connections.add(self.connection)

        def finish(self) -> None:
            with standin._lock:
                standin._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: tests read the records instead."""

        def do_GET(self) -> None:
            with standin._handling():
                self._get()

        def do_POST(self) -> None:
            with standin._handling():
                self._post()

        def _get(self) -> None:
            if self.path == "/__standin/stats":
                self._answer(200, standin.stats())
            else:
                self._answer(404, {"code": "not_found", "message": "no such path"})

        def _post(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            retry_count = int(self.headers.get("X-Retry-Count", "0"))
            if self.path != "/v1/batch":
                self._answer(404, {"code": "not_found", "message": "no such path"})
                return
            fault = standin._next_fault()
            if fault is Fault.DROP_BEFORE:
                standin._record(RequestRecord(None, 0, len(raw), fault, retry_count))
                self._drop()
                return
            if isinstance(fault, int):
                standin._record(RequestRecord(fault, 0, len(raw), None, retry_count))
                self._answer(fault, {"code": "injected", "message": f"injected {fault}"})
                return
            status, payload, messages = self._check(raw)
            if status != 200:
                standin._record(RequestRecord(status, messages, len(raw), None, retry_count))
                self._answer(status, payload)
                return
            if fault is Fault.ERROR_500:
                standin._record(RequestRecord(500, messages, len(raw), fault, retry_count))
                self._answer(500, {"code": "internal", "message": "injected server error"})
                return
            if fault is Fault.RATE_LIMIT:
                standin._record(RequestRecord(429, messages, len(raw), fault, retry_count))
                self._answer(
                    429,
                    {"code": "rate_limited", "message": "slow down"},
                    {"Retry-After": str(standin.retry_after)},
                )
                return
            refused = standin._admit(messages)
            if refused is not None:
                status, headers = refused
                standin._record(RequestRecord(status, messages, len(raw), None, retry_count))
                self._answer(status, {"code": "rate_limited", "message": "too many events"}, headers)
                return
            standin._accept(payload)
            if fault is Fault.DROP_AFTER:
                standin._record(RequestRecord(None, messages, len(raw), fault, retry_count))
                self._drop()
                return
            # Recorded before the delay, like every other answer: a client that gave up on a slow answer has
            # seen the request, so a test that reads the records then must find it there.
            standin._record(RequestRecord(200, messages, len(raw), fault, retry_count))
            if fault is Fault.SLOW:
                time.sleep(standin.slow_seconds)
            self._answer(200, {"success": True})

        def _check(self, raw: bytes) -> tuple[int, dict[str, Any], int]:
            """Segment's own refusals: auth, size and JSON. Returns (status, parsed body or error, count)."""
            if self.headers.get("Authorization") != standin._auth:
                return 401, {"code": "unauthorized", "message": "bad write key"}, 0
            if self.headers.get("Content-Encoding") == "gzip":
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError):
                    return 400, {"code": "invalid_request", "message": "bad gzip"}, 0
            if len(raw) > MAX_REQUEST_BYTES:
                return 400, {"code": "invalid_request", "message": "Request too large"}, 0
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return 400, {"code": "invalid_json", "message": "Invalid JSON"}, 0
            if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
                return 400, {"code": "invalid_request", "message": "no batch array"}, 0
            if body.get("writeKey", standin.write_key) != standin.write_key:
                return 401, {"code": "unauthorized", "message": "bad write key"}, 0
            batch = body["batch"]
            for message in batch:
                if len(orjson.dumps(message)) > MAX_MESSAGE_BYTES:
                    return 400, {"code": "invalid_request", "message": "Message too large"}, len(batch)
            return 200, body, len(batch)

        def _answer(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            if standin.latency:
                time.sleep(standin.latency)
            data = orjson.dumps(payload)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


class StandInProcess:
    """A stand-in in its own process (for benchmarks: its work then shares no GIL with what is measured).

    It prints its URL, then serves until its standard input closes; use it as a context manager.
    """

    def __init__(self, write_key: str, *, latency: float = 0.0, fault_rate: float = 0.0) -> None:
        self._start([__file__, "--write-key", write_key, "--latency", str(latency), "--fault-rate", str(fault_rate)])

    def _start(self, arguments: list[str]) -> None:
        """Run ``python ARGUMENTS`` (a stand-in script) and read the URL it prints first."""
        self.process = subprocess.Popen(
            [sys.executable, *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            self.close()
            raise RuntimeError("the stand-in process did not start")

    def stats(self) -> dict[str, int]:
        """The stand-in's counters (``GET /__standin/stats``)."""
        with urllib.request.urlopen(self.url + "/__standin/stats", timeout=10) as answer:  # noqa: S310 - 127.0.0.1
            return dict(orjson.loads(answer.read()))

    def close(self) -> None:
        """Stop the process: closing its stdin ends it; kill it if it does not end in time."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> StandInProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str]) -> int:
    """Serve until standard input closes; print the base URL first (for benchmarks in another process)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write-key", default="test-key")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    with StandIn(args.write_key, latency=args.latency, fault_rate=args.fault_rate) as standin:
        print(standin.url, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
