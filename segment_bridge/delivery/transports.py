"""Transports: where batches go. The one seam through which delivery does I/O.

:class:`SegmentTransport` posts to Segment's ``/v1/batch`` through segment-analytics-python's wire code
(``segment.analytics.request.post``: endpoint, Basic auth, headers, gzip, ``sentAt``), on a ``requests`` session of
its own that reads the proxy and CA bundle settings from the environment once; :class:`DryRunTransport` and
:class:`FileTransport` show or keep the batches instead. This is the only module that imports ``requests`` or
``segment.analytics``; their exceptions are translated once, in :func:`_translated_errors`, into the
``DeliveryError`` tree::

    RetryableDeliveryError   408, 429 (with ``retry_after``), 5xx but 501/505, connection errors, timeouts
    PermanentDeliveryError   any other status (4xx, 3xx, 501, 505), a host URL requests cannot use
    PayloadTooLargeError     400/413 that says "too large": the batch is split in half and each half retried

``retry_after`` is Segment's ``Retry-After`` (seconds or an HTTP date) or, when it sends only that,
``X-RateLimit-Reset`` (a Unix time in seconds) turned into seconds from now.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, runtime_checkable

import requests
from pydantic import SecretStr
from segment.analytics import request as segment_request

from segment_bridge.delivery.retry import is_retryable_status
from segment_bridge.exceptions import (
    ConfigurationError,
    DeliveryError,
    PayloadTooLargeError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from segment_bridge.settings import DEFAULT_HOST, EU_HOST
from segment_bridge.track import TrackCall

__all__ = [
    "DEFAULT_HOST",
    "EU_HOST",
    "DryRunTransport",
    "FileTransport",
    "SegmentTransport",
    "Transport",
]

#: Messages per request by default: well under Segment's 2,500 (above which it answers 200 and drops
#: events), and small enough that a retried or split batch re-sends little.
_SEGMENT_LOGGER = "segment"
# Segment's 400 for an oversized request has no documented code; match the words it and the SDK use.
_TOO_LARGE = re.compile(r"too[ _-]?large|exceed|size", re.IGNORECASE)


class _NoDebugFilter(logging.Filter):
    """Drops the ``segment`` logger's DEBUG records: ``request.post`` logs the body, write key included."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_NO_DEBUG = _NoDebugFilter()


def _silence_sdk_debug() -> None:
    """Keep the SDK's logger above DEBUG, whatever level the application configures."""
    logger = logging.getLogger(_SEGMENT_LOGGER)
    if logger.getEffectiveLevel() <= logging.DEBUG:
        logger.setLevel(logging.INFO)
    # The level alone is not enough: an application may lower it later; the filter still drops the records.
    if _NO_DEBUG not in logger.filters:
        logger.addFilter(_NO_DEBUG)


@contextmanager
def _translated_errors(count: int) -> Iterator[None]:
    """Turn the SDK's and ``requests``' exceptions into ours, once, without payloads or the write key.

    The foreign exception is not chained (``from None``): an ``APIError`` carries Segment's response text
    and a ``requests`` error its request, neither of which belongs in our tracebacks or logs.
    """
    try:
        yield
    except segment_request.APIError as exc:
        raise _from_api_error(exc, count) from None
    except requests.Timeout as exc:
        raise RetryableDeliveryError(
            f"timed out posting {count} messages ({type(exc).__name__})", kind="timeout", count=count
        ) from None
    except requests.ConnectionError as exc:
        raise RetryableDeliveryError(
            f"connection error posting {count} messages ({type(exc).__name__})",
            kind="connection",
            count=count,
        ) from None
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.InvalidSchema,
        requests.exceptions.MissingSchema,
    ) as exc:
        # The host itself is unusable (a port out of range, no scheme): every attempt would fail the same way.
        raise PermanentDeliveryError(
            f"the Segment host is not a usable URL ({type(exc).__name__}) posting {count} messages; "
            "check SEGMENT_HOST / --segment-host",
            kind="invalid_url",
            count=count,
        ) from None
    except requests.RequestException as exc:
        # Anything else requests raises (a broken chunked answer, too many redirects) says nothing about
        # the batch itself; another attempt is the safe reading.
        raise RetryableDeliveryError(
            f"request failed posting {count} messages ({type(exc).__name__})", kind="request", count=count
        ) from None


def _from_api_error(exc: Any, count: int) -> DeliveryError:
    status = int(exc.status)
    detail = f"{exc.code} {exc.message}" if isinstance(exc.message, str) else str(exc.code)
    if is_retryable_status(status):
        response = getattr(exc, "response", None)
        return RetryableDeliveryError(
            f"Segment answered HTTP {status} to {count} messages",
            status=status,
            kind="http",
            count=count,
            retry_after=_retry_after(response) if response is not None else None,
        )
    if status == 413 or (status == 400 and _TOO_LARGE.search(detail)):
        return PayloadTooLargeError(
            f"Segment answered HTTP {status} (too large) to {count} messages",
            status=status,
            kind="too_large",
            count=count,
        )
    kind = "redirect" if 300 <= status < 400 else "http"
    return PermanentDeliveryError(
        f"Segment answered HTTP {status} to {count} messages", status=status, kind=kind, count=count
    )


def _retry_after(response: Any, now: Callable[[], float] = time.time) -> float | None:
    """Seconds Segment asks to wait: ``Retry-After`` when it sends one, else ``X-RateLimit-Reset`` (a Unix time).

    A reset time already past, or a header that is not a number, is no wait at all (``None``): the policy's
    backoff applies.
    """
    retry_after = segment_request.parse_retry_after(response)
    if retry_after is not None:
        return float(retry_after)
    raw = response.headers.get("X-RateLimit-Reset") if getattr(response, "headers", None) is not None else None
    if not raw:
        return None
    try:
        reset = float(raw)
    except ValueError:
        return None
    wait = reset - now()
    return wait if 0 < wait < float("inf") else None


@runtime_checkable
class Transport(Protocol):
    """Where batches go. The one seam through which delivery does I/O.

    ``send`` either returns (the whole batch was accepted) or raises a ``RetryableDeliveryError``,
    ``PermanentDeliveryError`` or ``PayloadTooLargeError``. It must be safe to call from several threads.
    """

    def send(self, batch: Sequence[TrackCall]) -> None:
        """Send one batch; raise a ``DeliveryError`` subclass if it was not accepted."""

    def close(self) -> None:
        """Release what the transport holds (files, connections)."""


class SegmentTransport:
    """Posts batches to Segment's HTTP Tracking API through segment-analytics-python's ``request.post``.

    The posts go through a ``requests`` session of this transport's own, never the SDK's module-level one (which an
    application's own ``analytics`` client shares). Its proxies (``HTTPS_PROXY``, ``NO_PROXY``...) and CA bundle
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) are read from the environment when the transport is made, not at
    every post: requests' per-call lookup scans the whole environment and cost about a quarter of a batch's CPU.
    ``.netrc`` is not read: the write key is Segment's only credential, and a ``.netrc`` entry for the host would
    have replaced it.

    Args:
        write_key: the source's write key; kept as a :class:`pydantic.SecretStr` and never shown.
        host: base URL; ``/v1/batch`` is appended. Use :data:`EU_HOST` for EU workspaces.
        timeout: seconds, for connecting and for reading the answer.
        gzip: compress request bodies.
    """

    def __init__(
        self,
        write_key: str | SecretStr,
        *,
        host: str = DEFAULT_HOST,
        timeout: float = 10.0,
        gzip: bool = False,
    ) -> None:
        self._write_key = write_key if isinstance(write_key, SecretStr) else SecretStr(write_key)
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.gzip = gzip
        self._session = _environment_session(f"{self.host}/v1/batch")
        self._post = _post_through(self._session)
        _silence_sdk_debug()

    def __repr__(self) -> str:
        return f"SegmentTransport(host={self.host!r}, write_key=SecretStr('**********'), timeout={self.timeout})"

    def send(self, batch: Sequence[TrackCall]) -> None:
        """Post ``batch`` as one ``/v1/batch`` request."""
        with _translated_errors(len(batch)):
            response = self._post(
                self._write_key.get_secret_value(),
                host=self.host,
                gzip=self.gzip,
                timeout=self.timeout,
                batch=[call.message for call in batch],
            )
        if response.history:
            # requests follows redirects, and a 301/302 turns the POST into a GET whose 200 says nothing about
            # the batch: it was not delivered. A wrong host or a proxy is the usual cause; never follow it blindly.
            status = response.history[0].status_code
            raise PermanentDeliveryError(
                f"the Segment host redirected (HTTP {status}) the post of {len(batch)} messages; "
                "set SEGMENT_HOST / --segment-host to the endpoint itself",
                status=status,
                kind="redirect",
                count=len(batch),
            )

    def close(self) -> None:
        """Close the session's connections; a later ``send`` opens new ones."""
        self._session.close()


def _environment_session(url: str) -> requests.Session:
    """A session with what ``trust_env`` would look up at every request for ``url``, looked up now instead."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


def _post_through(session: requests.Session) -> Callable[..., requests.Response]:
    """The SDK's ``request.post``, unchanged, but reading ``session`` where it reads its module-level ``_session``.

    A copy of the function with its own globals, so the SDK's module (shared with an application's own client) is
    left as it is. Should a later SDK no longer read ``_session``, the SDK's function is returned as it is (slower,
    same behaviour); ``tests/edges/test_server.py`` checks that the copy is in use.
    """
    post = segment_request.post
    if "_session" not in post.__code__.co_names:
        return post  # type: ignore[no-any-return]
    namespace = dict(vars(segment_request), _session=session)
    copy = types.FunctionType(post.__code__, namespace, post.__name__, post.__defaults__, post.__closure__)
    copy.__kwdefaults__ = post.__kwdefaults__
    return copy


def _batch_line(batch: Sequence[TrackCall]) -> bytes:
    # Reuse each message's serialized bytes rather than encoding the batch again.
    return b'{"batch":[' + b",".join(call.body for call in batch) + b"]}\n"


@contextmanager
def _output_errors(what: str) -> Iterator[None]:
    """Turn an ``OSError`` writing an output into a one-line ``ConfigurationError``, as the dead-letter file does.

    A ``BrokenPipeError`` passes through: a reader that went away (``| head``) is not a configuration error, and
    the CLI stops quietly on it.
    """
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as error:
        raise ConfigurationError(f"cannot write {what}: {error.strerror or type(error).__name__}") from None


class DryRunTransport:
    """Writes each batch as one JSON line ``{"batch": [...]}`` to a text stream instead of sending it.

    Args:
        stream: where to write; standard output when omitted.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "DryRunTransport()"

    def send(self, batch: Sequence[TrackCall]) -> None:
        """Write ``batch`` as one line.

        Raises:
            ConfigurationError: the stream cannot be written (a full disk, ``> /dev/full``).
            BrokenPipeError: the reader went away (``| head``); left to the caller, which may stop quietly.
        """
        line = _batch_line(batch).decode()
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock, _output_errors("--dry-run output"):
            stream.write(line)
            stream.flush()

    def close(self) -> None:
        """Flush the stream; it belongs to the caller and stays open.

        Raises:
            ConfigurationError: the stream cannot be written.
        """
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock, _output_errors("--dry-run output"):
            stream.flush()


class FileTransport:
    """Appends JSON Lines of the batches that would be posted (``{"batch": [...]}``) to a file.

    For teams without a Segment account, or who load Segment-format data elsewhere. Each batch is flushed
    to the operating system before ``send`` returns, so a batch counts as delivered once it is in the file.

    The file is opened (created if missing) when the transport is made, so a path that cannot be written (a
    directory, a missing folder, no permission) stops the run before anything is sent.

    Args:
        path: the file; created if missing, appended to otherwise.

    Raises:
        ConfigurationError: the file cannot be opened.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = self._open()

    def __repr__(self) -> str:
        return f"FileTransport({str(self.path)!r})"

    def _open(self) -> IO[bytes]:
        with _output_errors(f"--out {self.path}"):
            return self.path.open("ab")

    def send(self, batch: Sequence[TrackCall]) -> None:
        """Append ``batch`` as one line (reopening the file if it was closed).

        Raises:
            ConfigurationError: the file cannot be written (a full disk, a lost mount).
        """
        line = _batch_line(batch)
        with self._lock:
            if self._file is None:
                self._file = self._open()
            with _output_errors(f"--out {self.path}"):
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        """Close the file.

        Raises:
            ConfigurationError: what was still buffered cannot be written.
        """
        with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                with _output_errors(f"--out {self.path}"):
                    file.close()
