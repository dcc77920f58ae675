"""The arrival bounds rely on hooks of uvicorn's h11 protocol (``segment_bridge.server.arrival`` subclasses it).
A kept-alive connection idle between requests must be the first to go for a new connection, which works only when
uvicorn still calls the hook the subclass overrides after each response (``on_response_complete``): checked
against a real ``serve`` with the uvicorn installed, and the hooks' presence checked directly, so a uvicorn that
renamed them fails here instead of leaving ``serve`` silently unguarded."""

from __future__ import annotations

import inspect
import selectors
import socket
import threading
from typing import Any

import orjson
import pytest

pytest.importorskip("uvicorn")

from servehelp import ServeProcess, base_env
from standin import StandIn

from segment_bridge.samples import call_events

PATIENCE = 10.0


def read_response(sock: socket.socket) -> bytes:
    sock.settimeout(PATIENCE)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "closed before answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_an_idle_kept_alive_connection_is_the_first_to_go_for_a_new_one() -> None:
    args = ["--insecure-no-signature", "--dry-run", "--max-connections", "3", "--read-timeout", "60"]
    with ServeProcess(args, base_env()) as serve:
        port = int(serve.url.rsplit(":", 1)[1])
        idle = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
        assert read_response(idle).startswith(b"HTTP/1.1 ")
        # Opened after the first one's answer: they have waited less long than the idle connection.
        silent = [socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) for _ in range(2)]
        newest = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
        try:
            with selectors.DefaultSelector() as selector:
                for sock in (idle, *silent):
                    selector.register(sock, selectors.EVENT_READ)
                ready = selector.select(PATIENCE)  # the first connection the server closes
            assert [key.fileobj for key, _ in ready] == [idle]
            for sock in silent:
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):  # still open, nothing to read
                    sock.recv(1)
        finally:
            for sock in (idle, *silent, newest):
                sock.close()


def test_the_uvicorn_hooks_the_arrival_bounds_override_exist() -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from segment_bridge.server.arrival import ArrivalGuardedH11Protocol, check_uvicorn

    check_uvicorn()
    for name in ("connection_made", "data_received", "on_response_complete", "connection_lost"):
        assert name in vars(H11Protocol), name
        assert name in vars(ArrivalGuardedH11Protocol), name
    # uvicorn hands the hook to each request's cycle, which calls it once the response is sent.
    assert "on_response=self.on_response_complete" in inspect.getsource(H11Protocol.handle_events)


class HoldingSegment(StandIn):
    """A Segment stand-in that holds each batch until released, so the request that sent it stays in progress."""

    def __init__(self, write_key: str) -> None:
        super().__init__(write_key)
        self.release = threading.Event()
        self.holding = threading.Event()

    def _accept(self, body: dict[str, Any]) -> None:
        self.holding.set()
        self.release.wait(PATIENCE)
        super()._accept(body)


def test_a_connection_handling_a_pipelined_request_is_never_evicted(write_key: str) -> None:
    body = orjson.dumps(call_events(1)[0])
    requests = (
        b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n"
        b"POST /events HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with HoldingSegment(write_key) as segment:
        env = base_env(SEGMENT_WRITE_KEY=write_key, SEGMENT_HOST=segment.url)
        args = ["--insecure-no-signature", "--no-dead-letter", "--max-connections", "2", "--read-timeout", "60"]
        with ServeProcess(args, env) as serve:
            port = int(serve.url.rsplit(":", 1)[1])
            busy = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
            busy.sendall(requests)  # two requests at once: the second is handled after the first's answer
            silent: socket.socket | None = None
            newest: socket.socket | None = None
            try:
                assert read_response(busy).startswith(b"HTTP/1.1 200")
                assert segment.holding.wait(PATIENCE)  # the pipelined POST is in progress, its batch held
                silent = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
                newest = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
                with selectors.DefaultSelector() as selector:
                    for sock in (busy, silent):
                        selector.register(sock, selectors.EVENT_READ)
                    ready = selector.select(PATIENCE)  # the connection closed to make room
                assert [key.fileobj for key, _ in ready] == [silent]
                segment.release.set()
                assert read_response(busy).startswith(b"HTTP/1.1 200")
            finally:
                segment.release.set()
                for sock in (busy, silent, newest):
                    if sock is not None:
                        sock.close()
