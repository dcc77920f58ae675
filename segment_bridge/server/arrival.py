"""Bounds on requests still arriving, below the ASGI app: uvicorn's h11 protocol with an arrival deadline.

uvicorn has no timeout for a request that is arriving: a client may send its headers, or its body, one byte at a
time for as long as it likes, holding a connection (a file descriptor) and buffered bytes. Against ``serve`` that
lets anyone who can reach it, signature or not, shut Twilio out. :class:`ArrivalGuardedH11Protocol` bounds, per
uvicorn server:

* **time**: a request must arrive whole (request line, headers and body) within ``read_timeout`` seconds of its
  first byte, or of the connection's opening for a new connection; otherwise the connection is closed;
* **connections**: over ``max_connections`` open connections, a new one closes the connection that has waited
  longest for a request (arriving or idle between requests), never one whose request is being handled;
* **buffered bytes**: over ``max_arriving_bytes`` held by requests not yet complete, the connection that has been
  arriving longest is closed.

A genuine Twilio request arrives in milliseconds, so it is never the one that waited longest; the app verifies its
signature as soon as it is whole, before it takes a delivery slot. Closed connections are counted in one WARNING
line at most every :data:`_LOG_INTERVAL` seconds, so an attack cannot flood the log.

Imports uvicorn and h11 (the ``[server]`` extra); :mod:`segment_bridge.server.run` imports it only when serving.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import time
import weakref
from collections import OrderedDict
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from segment_bridge.server.logs import _line, logger

__all__ = ["ArrivalGuardedH11Protocol", "check_uvicorn", "default_max_connections", "protocol_factory"]


#: File descriptors kept free for everything but client connections: the dead-letter file, Segment connections,
#: worker threads' files, the listening socket, logs.
_FD_RESERVE = 128
#: Seconds between two WARNING lines about closed connections.
_LOG_INTERVAL = 10.0
#: The request has arrived whole (or the connection is over): nothing is arriving.
_ARRIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


def default_max_connections() -> int:
    """Open connections one process can hold: its file-descriptor limit less a reserve (at least 64)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 16
    return max(64, soft - _FD_RESERVE)


class _Waiting:
    """Per uvicorn server: connections without a request being handled, longest-waiting first, and their bytes."""

    def __init__(self) -> None:
        self.connections: OrderedDict[ArrivalGuardedH11Protocol, None] = OrderedDict()
        self.arriving_bytes = 0
        self.closed: dict[str, int] = {}
        self.last_log = -_LOG_INTERVAL

    def count_closed(self, why: str) -> None:
        self.closed[why] = self.closed.get(why, 0) + 1
        now = time.monotonic()
        if now - self.last_log >= _LOG_INTERVAL:
            self.last_log = now
            counts, self.closed = self.closed, {}
            logger.warning(
                _line(
                    "connections_closed",
                    **counts,
                    message="closed connections whose request did not arrive in time, or to make room "
                    "(counts since the last such line)",
                )
            )


_servers: weakref.WeakKeyDictionary[ServerState, _Waiting] = weakref.WeakKeyDictionary()


class ArrivalGuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with bounds on requests still arriving (see the module's docstring).

    Args:
        read_timeout: seconds a request may take to arrive whole.
        max_connections: open connections before the longest-waiting one is closed for a new one.
        max_arriving_bytes: bytes held by incomplete requests before the longest-arriving one is closed.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        read_timeout: float,
        max_connections: int,
        max_arriving_bytes: int,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_arriving_bytes = max_arriving_bytes
        waiting = _servers.get(server_state)
        if waiting is None:
            waiting = _servers[server_state] = _Waiting()
        self._waiting = waiting
        #: When the request now arriving began to (``loop.time()``), ``None`` when none is; its timer, once armed.
        self._since: float | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._arriving = 0

    # ----- the protocol's events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection starts waiting for its first request."""
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            victim = next(iter(self._waiting.connections), None)
            if victim is None:
                # Every other connection carries a request being handled: this one cannot be held.
                self._close("over_max_connections")
                return
            victim._close("evicted_for_new_connection")
        # A new connection is timed from its opening: a client has no reason to connect and then say nothing.
        since = self._start_arriving()
        self._deadline = self.loop.call_at(since + self.read_timeout, self._on_deadline)

    def data_received(self, data: bytes) -> None:
        """Bytes of a request arrive; the deadline starts with the first."""
        if self._since is None and self.conn.their_state not in _ARRIVED:
            # The first byte of a request on a kept-alive connection: its clock starts now.
            self._start_arriving()
        if self._since is not None:
            self._arriving += len(data)
            self._waiting.arriving_bytes += len(data)
        super().data_received(data)
        self._settle()
        if self._waiting.arriving_bytes > self.max_arriving_bytes:
            self._make_room()

    def on_response_complete(self) -> None:
        """The answer is sent; a kept-alive connection waits again."""
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY and self._since is None:
            # The next request (pipelined) is arriving: it is timed like any other.
            self._start_arriving()
        elif self._since is None and self.conn.their_state is h11.IDLE and self not in self._waiting.connections:
            # Idle between requests (uvicorn's keep-alive timeout closes it): first to go for a new connection.
            # Not when a pipelined request arrived whole and is being handled now (DONE): that one is never closed.
            self._waiting.connections[self] = None
        self._settle()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone; it no longer waits."""
        self._done_waiting()
        super().connection_lost(exc)

    # ----- bookkeeping

    def _start_arriving(self) -> float:
        """A request starts arriving: note when (returned); join the waiting connections, at the end if new."""
        self._since = since = self.loop.time()
        if self not in self._waiting.connections:
            self._waiting.connections[self] = None
        return since

    def _settle(self) -> None:
        """After h11 has read what came: done with a request that arrived whole, else make sure its clock runs.

        The timer is armed only for a request still incomplete after a read: most arrive in one read and need none.
        """
        if self._since is None:
            return
        if self.conn.their_state in _ARRIVED:
            self._done_waiting()
        elif self._deadline is None:
            self._deadline = self.loop.call_at(self._since + self.read_timeout, self._on_deadline)

    def _done_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._since = None
        self._waiting.arriving_bytes -= self._arriving
        self._arriving = 0
        self._waiting.connections.pop(self, None)

    def _on_deadline(self) -> None:
        self._deadline = None
        self._close("read_timeout")

    def _make_room(self) -> None:
        for victim in list(self._waiting.connections):
            if self._waiting.arriving_bytes <= self.max_arriving_bytes:
                return
            if victim._arriving:
                victim._close("max_arriving_bytes")

    def _close(self, why: str) -> None:
        self._done_waiting()
        if self.transport.is_closing():
            return
        self._waiting.count_closed(why)
        # abort(), not close(): the descriptor is free at once, whatever the peer does.
        self.transport.abort()


#: What :class:`ArrivalGuardedH11Protocol` relies on in uvicorn's (private) h11 protocol: its constructor's
#: parameters, and the hooks it overrides. Checked when serving starts, so a uvicorn that changed them stops
#: ``serve`` with one line instead of leaving it silently without its bounds. Tested with uvicorn 0.30 to 0.55.
_INIT_PARAMETERS = ("self", "config", "server_state", "app_state", "_loop")
_HOOKS = ("connection_made", "data_received", "on_response_complete", "connection_lost", "handle_events")


def check_uvicorn() -> None:
    """Raise :class:`~segment_bridge.exceptions.ConfigurationError` if the installed uvicorn lacks what is used."""
    import inspect

    from segment_bridge.exceptions import ConfigurationError

    parameters = tuple(inspect.signature(H11Protocol.__init__).parameters)
    missing = [name for name in _HOOKS if not callable(getattr(H11Protocol, name, None))]
    if parameters != _INIT_PARAMETERS or missing:
        from importlib.metadata import version

        raise ConfigurationError(
            f"uvicorn {version('uvicorn')} is not supported by serve's bounds on slow requests "
            "(tested with 0.30 to 0.55): install one of those, e.g. pip install 'uvicorn>=0.30,<0.56'"
        )


def protocol_factory(read_timeout: float, max_connections: int, max_arriving_bytes: int) -> functools.partial[Any]:
    """What to give ``uvicorn.Config(http=...)``; a partial of a module-level class, so ``--workers`` can pickle it.

    Raises:
        ConfigurationError: the installed uvicorn's h11 protocol is not what the subclass was written for.
    """
    check_uvicorn()
    return functools.partial(
        ArrivalGuardedH11Protocol,
        read_timeout=read_timeout,
        max_connections=max_connections,
        max_arriving_bytes=max_arriving_bytes,
    )
