"""Slow and unauthenticated clients against a real ``serve`` (uvicorn on 127.0.0.1, a subprocess): they must never
keep Twilio's signed requests out, and the connections they hold are closed after the bounds."""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

import orjson
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
twilio_validator = pytest.importorskip("twilio.request_validator")

from standin import StandIn  # noqa: E402

from segment_bridge.samples import call_events  # noqa: E402

pytestmark = pytest.mark.slow

TOKEN = "tw_auth_T0ken-for-slow-clients-0123456"
PUBLIC_URL = "https://bridge.example.com/events"
#: How long a test waits for something the server must do; never reached when the server behaves.
PATIENCE = 20.0
_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class Serve:
    def __init__(self, url: str, log: IO[bytes]) -> None:
        self.url = url
        self._log = log

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


@contextmanager
def running(standin: StandIn, write_key: str, *args: str) -> Iterator[Serve]:
    """``segment-bridge serve`` in a subprocess (its own working directory), delivering to the stand-in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGMENT_", "TWILIO_"))}
    env.update(TWILIO_AUTH_TOKEN=TOKEN, SEGMENT_WRITE_KEY=write_key, SEGMENT_HOST=standin.url)
    command = [sys.executable, "-m", "segment_bridge", "serve", "--port", "0", "--public-url", PUBLIC_URL, *args]
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + PATIENCE
            match = None
            while match is None and process.poll() is None and time.monotonic() < deadline:
                log.seek(0)
                match = _RUNNING.search(log.read().decode(errors="replace"))
                if match is None:
                    threading.Event().wait(0.02)  # polling the log file for the port line, not synchronising
            log.seek(0)
            assert match is not None, "serve did not start:\n" + log.read().decode(errors="replace")
            yield Serve(f"http://127.0.0.1:{match.group(1)}", log)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def signed(body: bytes) -> tuple[str, dict[str, str]]:
    """The query and headers Twilio would send with ``body``, from twilio's own validator."""
    oracle = twilio_validator.RequestValidator(TOKEN)
    url = f"{PUBLIC_URL}?bodySHA256={oracle.compute_hash(body.decode())}"
    return url.partition("?")[2], {"X-Twilio-Signature": oracle.compute_signature(url, {})}


class SlowClients:
    """Raw sockets that send a request a byte at a time (one thread for all), recording when the server closes each.

    ``opened[i]`` is when socket ``i`` began to connect; ``closed[i]`` when this side saw the server close it.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []
        self.pending: list[bytes] = []
        self.opened: list[float] = []
        self.closed: dict[int, float] = {}
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def open(self, head: bytes, rest: bytes) -> None:
        """Connect, send ``head`` at once, then ``rest`` one byte per turn of the dribbling thread."""
        opened = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(head)
        sock.setblocking(False)
        with self._lock:
            self._selector.register(sock, selectors.EVENT_READ, len(self.sockets))
            self.opened.append(opened)
            self.sockets.append(sock)
            self.pending.append(rest)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for key, _ in self._selector.select(timeout=0.02) if self._selector.get_map() else ():
                    self._read(key.fileobj, key.data)  # type: ignore[arg-type]
                for index, sock in enumerate(self.sockets):
                    if index in self.closed or not self.pending[index]:
                        continue
                    try:
                        sock.send(self.pending[index][:1])
                        self.pending[index] = self.pending[index][1:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._mark_closed(index, sock)
            if not self._selector.get_map():
                self._stop.wait(0.02)  # nothing open yet: idle without spinning

    def _read(self, sock: socket.socket, index: int) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._mark_closed(index, sock)

    def _mark_closed(self, index: int, sock: socket.socket) -> None:
        if index in self.closed:
            return
        self._selector.unregister(sock)
        with self._changed:
            self.closed[index] = time.monotonic()
            self._changed.notify_all()

    def count_closed(self, indices: range) -> int:
        with self._changed:
            return sum(1 for index in indices if index in self.closed)

    def wait(self, predicate: Callable[[], bool], timeout: float = PATIENCE) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()
        self._selector.close()


@contextmanager
def slow_clients(port: int) -> Iterator[SlowClients]:
    clients = SlowClients(port)
    try:
        yield clients
    finally:
        clients.close()


def slow_header(port: int) -> tuple[bytes, bytes]:
    """A request whose headers never end."""
    return f"POST /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode(), b"X-Pad: " + b"a" * 10_000


def slow_body(port: int, number: int) -> tuple[bytes, bytes]:
    """Complete headers (unsigned, or with a forged signature), then a body that never ends."""
    forged = f"X-Twilio-Signature: forged{number}=\r\n" if number % 2 else ""
    head = (
        f"POST /events?bodySHA256={number:064x} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{forged}Content-Length: 100000\r\n\r\n"
    )
    return head.encode(), b"[" + b" " * 10_000


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def post_signed(client: httpx.Client, number: int) -> int:
    body = orjson.dumps(call_events(number)[0])
    query, headers = signed(body)
    headers["Content-Type"] = "application/json"
    return int(client.post(f"/events?{query}", content=body, headers=headers).status_code)


def test_slow_unsigned_requests_hold_no_slot_and_are_closed_after_the_read_timeout(
    standin: StandIn, write_key: str
) -> None:
    read_timeout = 2.0
    slow_bodies, slow_headers = 40, 20
    args = ("--max-concurrency", "10", "--read-timeout", str(read_timeout), "--log-level", "info")
    with running(standin, write_key, *args) as served:
        url = served.url
        port = int(url.rsplit(":", 1)[1])
        with slow_clients(port) as clients, httpx.Client(base_url=url, timeout=10) as client:
            for number in range(slow_bodies):
                clients.open(*slow_body(port, number))
            for _ in range(slow_headers):
                clients.open(*slow_header(port))

            def held() -> bool:
                # Every slow body reached the app: still arriving (this version), holding a slot (before it), or
                # closed already (a slow machine).
                text = client.get("/metrics").text
                arriving = metric(text, "segment_bridge_requests_receiving")
                in_progress = metric(text, "segment_bridge_requests_in_progress")
                gone = clients.count_closed(range(slow_bodies))
                return arriving + in_progress + gone >= slow_bodies or in_progress >= 10

            deadline = time.monotonic() + PATIENCE
            while not held():
                assert time.monotonic() < deadline, "the server never saw the slow requests' headers"
            statuses = [post_signed(client, number) for number in range(20)]
            assert statuses == [200] * 20
            assert standin.wait_accepted(20)

            assert clients.wait(lambda: len(clients.closed) == slow_bodies + slow_headers), (
                f"{slow_bodies + slow_headers - len(clients.closed)} slow connections still open"
            )
            # Closed for the time they took to arrive, although each kept sending: not before the bound.
            took = [clients.closed[i] - clients.opened[i] for i in clients.closed]
            assert min(took) >= read_timeout
            assert not any(clients.pending[i] == b"" for i in clients.closed), "a slow request was sent whole"
        # Counted in one WARNING line (at most every 10 s), not one line per closed connection.
        log = served.log()
        assert '"event":"connections_closed"' in log
        assert '"disconnected":true' not in log


def test_over_max_connections_the_longest_waiting_connection_makes_room(standin: StandIn, write_key: str) -> None:
    with running(standin, write_key, "--max-connections", "30", "--read-timeout", "60") as served:
        url = served.url
        port = int(url.rsplit(":", 1)[1])
        with slow_clients(port) as clients, httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(40):
                clients.open(b"", b"")  # connected, silent
            assert post_signed(client, 1) == 200
            # 40 silent connections and the signed one: the 11 opened first were closed, none of the newest.
            assert clients.wait(lambda: len(clients.closed) >= 11)
            assert set(clients.closed) == set(range(11)), sorted(clients.closed)
            assert standin.wait_accepted(1)


def test_over_max_arriving_bytes_the_longest_arriving_request_is_closed(standin: StandIn, write_key: str) -> None:
    args = ("--max-body-size", "100000", "--max-arriving-bytes", "200000", "--read-timeout", "60")
    with running(standin, write_key, *args) as served:
        url = served.url
        port = int(url.rsplit(":", 1)[1])
        with slow_clients(port) as clients, httpx.Client(base_url=url, timeout=10) as client:
            head = (
                b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            )
            for _ in range(5):
                clients.open(head + b" " * 60_000, b"")
            assert post_signed(client, 2) == 200
            # 5 x 60 kB held in at most 200 kB: the two opened first went (whatever order the server read the bytes
            # in, the one evicted is the oldest still holding bytes), never a newer one.
            assert clients.wait(lambda: len(clients.closed) >= 2)
            assert set(clients.closed) == {0, 1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"read_timeout": 0}, "read timeout must be between 0 and 300 seconds"),
        ({"read_timeout": 301}, "read timeout must be between 0 and 300 seconds"),
        ({"max_connections": 0}, "max connections must be at least 1"),
        ({"max_body_size": 1000, "max_arriving_bytes": 999}, "max arriving bytes must be at least the max body size"),
    ],
)
def test_bounds_that_cannot_work_are_refused_at_start(changes: dict[str, float], message: str) -> None:
    from segment_bridge.exceptions import ConfigurationError
    from segment_bridge.server import ServerConfig

    with pytest.raises(ConfigurationError, match=message):
        ServerConfig(public_url=PUBLIC_URL, **changes)  # type: ignore[arg-type]


def test_the_default_bounds_follow_the_body_size_and_the_descriptor_limit() -> None:
    import resource

    from segment_bridge.server import ServerConfig, uvicorn_http_protocol

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    protocol = uvicorn_http_protocol(ServerConfig(public_url=PUBLIC_URL, max_body_size=32 * 1024 * 1024))
    assert protocol.keywords == {
        "read_timeout": 5.0,
        "max_connections": max(64, soft - 128),
        "max_arriving_bytes": 128 * 1024 * 1024,
    }
