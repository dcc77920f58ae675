"""Delivery: batches of track calls to Segment, with retries, and nothing dropped silently.

All network I/O goes through one small seam, :class:`Transport`. :class:`SegmentTransport` posts to
Segment's ``/v1/batch`` through segment-analytics-python's wire code (``segment.analytics.request.post``:
endpoint, Basic auth, headers, gzip, ``sentAt``), on a ``requests`` session of its own that reads the proxy and CA
bundle settings from the environment once; :class:`DryRunTransport` and :class:`FileTransport` show or keep the
batches instead. This is the only module that imports ``requests`` or ``segment.analytics``;
their exceptions are translated once, in :func:`_translated_errors`, into the ``DeliveryError`` tree::

    RetryableDeliveryError   408, 429 (with ``retry_after``), 5xx but 501/505, connection errors, timeouts
    PermanentDeliveryError   any other status (4xx, 3xx, 501, 505), a host URL requests cannot use
    PayloadTooLargeError     400/413 that says "too large": the batch is split in half and each half retried

:func:`send_batch` retries one batch under a :class:`RetryPolicy` (tenacity: attempt limit *and* time
budget, ``Retry-After`` honoured up to a cap, otherwise exponential backoff with jitter; sleep and clock
injectable) and returns one :class:`BatchResult` per sub-batch. :func:`deliver` is the synchronous
convenience used by receivers; :mod:`segment_bridge.replay` runs :func:`send_batch` on several threads.

A retried batch keeps its messages, hence their ``messageId`` s, so an ambiguous timeout followed by a
retry is deduplicated by Segment; ``request.post`` stamps a fresh ``sentAt`` at every attempt.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, runtime_checkable

import requests
from pydantic import SecretStr
from segment.analytics import request as segment_request
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_any
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from segment_bridge.exceptions import (
    ConfigurationError,
    DeliveryError,
    PayloadTooLargeError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from segment_bridge.outcomes import Refusal, RefusalReason
from segment_bridge.settings import DEFAULT_HOST, EU_HOST
from segment_bridge.track import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, TrackCall, batch_growth

__all__ = [
    "DEFAULT_BATCH_MESSAGES",
    "DEFAULT_HOST",
    "EU_HOST",
    "BatchResult",
    "DeliveryReport",
    "DryRunTransport",
    "FileTransport",
    "RetryPolicy",
    "SegmentTransport",
    "Transport",
    "deliver",
    "failure_refusal",
    "is_retryable_status",
    "iter_batches",
    "send_batch",
]

#: Messages per request by default: well under Segment's 2,500 (above which it answers 200 and drops
#: events), and small enough that a retried or split batch re-sends little.
DEFAULT_BATCH_MESSAGES = 500

Sleep = Callable[[float], None]
Clock = Callable[[], float]

_SEGMENT_LOGGER = "segment"
# Segment's 400 for an oversized request has no documented code; match the words it and the SDK use.
_TOO_LARGE = re.compile(r"too[ _-]?large|exceed|size", re.IGNORECASE)


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status from Segment is worth another attempt.

    408 and 429 are; 5xx are, except 501 (Not Implemented) and 505 (HTTP Version Not Supported), which
    will not change on retry. Every other status, including 3xx and the remaining 4xx, is permanent.
    """
    if status in (408, 429):
        return True
    return 500 <= status < 600 and status not in (501, 505)


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
        retry_after = segment_request.parse_retry_after(response) if response is not None else None
        return RetryableDeliveryError(
            f"Segment answered HTTP {status} to {count} messages",
            status=status,
            kind="http",
            count=count,
            retry_after=None if retry_after is None else float(retry_after),
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


class _StopAt(stop_base):
    """Stop when the next attempt would start at or after ``limit`` on ``clock`` (which tests can fake).

    tenacity's ``stop_before_delay`` reads the real monotonic clock, so a test with an injected sleep could
    never use up a budget; this one reads the same clock as the injected sleep.
    """

    def __init__(self, limit: float, clock: Clock) -> None:
        self.limit = limit
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() + retry_state.upcoming_sleep >= self.limit


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one batch: an attempt limit *and* a time budget, whichever ends first.

    Attributes:
        max_attempts: attempts per batch, the first included.
        budget_seconds: time from the first attempt after which no new attempt starts; a wait that would
            end past it (a long ``Retry-After``) gives up at once instead.
        max_retry_after: cap on a server-supplied ``Retry-After`` wait, in seconds.
        backoff_multiplier: first backoff wait; doubles at each further retry.
        backoff_max: cap on one backoff wait.
        jitter: up to this many seconds of random wait added to each backoff, so clients do not retry in step.
    """

    max_attempts: int = 8
    budget_seconds: float = 120.0
    max_retry_after: float = 60.0
    backoff_multiplier: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.budget_seconds < 0 or self.max_retry_after < 0 or self.backoff_max < 0 or self.jitter < 0:
            raise ValueError("budget_seconds, max_retry_after, backoff_max and jitter must not be negative")

    def wait_seconds(self, retry_state: RetryCallState) -> float:
        """The wait before the next attempt: ``Retry-After`` (capped) when Segment sent one, else backoff."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetryableDeliveryError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after)
        backoff = wait_exponential_jitter(multiplier=self.backoff_multiplier, max=self.backoff_max, jitter=self.jitter)
        return float(backoff(retry_state))

    def retrying(
        self, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic, deadline: float | None = None
    ) -> Retrying:
        """A tenacity ``Retrying`` for one batch, starting now by ``clock``.

        Args:
            sleep: how to wait; tests pass a recorder so they never sleep.
            clock: monotonic seconds; the budget and ``deadline`` are measured on it.
            deadline: an absolute ``clock()`` time no attempt may start after (a caller's own deadline, e.g. a
                webhook's answer time), on top of the budget.
        """
        limit = clock() + self.budget_seconds
        if deadline is not None:
            limit = min(limit, deadline)

        return Retrying(
            retry=retry_if_exception_type(RetryableDeliveryError),
            wait=self.wait_seconds,
            stop=stop_any(stop_after_attempt(self.max_attempts), _StopAt(limit, clock)),
            sleep=sleep,
            reraise=True,
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of one (sub-)batch.

    Attributes:
        calls: the messages of this batch, in order.
        error: ``None`` when Segment accepted the batch, else why not (``status``, ``kind``, ``attempts``).
        attempts: requests made for this batch (0 when it was refused before sending).
    """

    calls: Sequence[TrackCall]
    error: DeliveryError | None = None
    attempts: int = 1

    @property
    def delivered(self) -> bool:
        """Whether Segment accepted the batch."""
        return self.error is None

    def refusals(self) -> list[tuple[TrackCall, Refusal]]:
        """One ``delivery_failed`` refusal per message of a failed batch; empty when delivered."""
        if self.error is None:
            return []
        return [(call, failure_refusal(call, self.error, self.attempts)) for call in self.calls]


def failure_refusal(call: TrackCall, error: DeliveryError, attempts: int | None = None) -> Refusal:
    """The ``delivery_failed`` refusal of one message whose batch Segment did not accept.

    The message names the HTTP status or the error kind and the attempt count, never the payload.
    """
    tries = error.attempts if attempts is None else attempts
    cause = f"HTTP {error.status}" if error.status is not None else error.kind.replace("_", " ")
    if isinstance(error, RetryableDeliveryError):
        hint = "Segment or the network was unavailable; replay the event later (from the dead-letter file, if kept)."
    elif isinstance(error, PayloadTooLargeError):
        hint = "The message is too large for Segment even alone; shrink the mapping's properties."
    else:
        hint = "Segment refused the request; check the write key, host and message shape, then replay."
    plural = "attempt" if tries == 1 else "attempts"
    return Refusal(
        reason=RefusalReason.DELIVERY_FAILED,
        message=f"not delivered: {cause} after {tries} {plural}",
        hint=hint,
        event_id=call.event_id,
        event_type=call.event_type,
    )


def iter_batches(
    calls: Iterable[TrackCall],
    *,
    max_messages: int = DEFAULT_BATCH_MESSAGES,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[TrackCall]]:
    """Group calls, in order, into batches within Segment's limits.

    Args:
        calls: the messages; consumed lazily.
        max_messages: most messages per batch (at most 2,500, Segment's limit).
        max_bytes: most serialized message bytes per batch, separators included; a single larger message still
            gets a batch of its own (:func:`send_batch` refuses it before sending).

    Yields:
        Non-empty lists of calls.
    """
    if not 1 <= max_messages <= MAX_BATCH_MESSAGES:
        raise ValueError(f"max_messages must be between 1 and {MAX_BATCH_MESSAGES}")
    batch: list[TrackCall] = []
    size = 0
    for call in calls:
        added = batch_growth(len(batch), size, call, max_messages, max_bytes)
        if added is None:
            yield batch
            batch, size, added = [], 0, call.size
        batch.append(call)
        size += added
    if batch:
        yield batch


def send_batch(
    transport: Transport,
    batch: Sequence[TrackCall],
    policy: RetryPolicy,
    *,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    deadline: float | None = None,
) -> list[BatchResult]:
    """Send one batch with retries; split it in half when Segment says it is too large.

    Never raises a ``DeliveryError``: every message ends up in exactly one returned result, delivered or not.
    Messages over 32 KB are refused without a request (Segment would reject the whole batch).

    Args:
        transport: where to send.
        batch: the messages.
        policy: attempts and time budget per (sub-)batch.
        sleep: how to wait between attempts (injectable for tests).
        clock: monotonic seconds for the budget and ``deadline``.
        deadline: absolute ``clock()`` time after which no attempt starts.

    Returns:
        One result per sub-batch, in message order when no split happened.
    """
    results: list[BatchResult] = []
    sendable = [call for call in batch if call.size <= MAX_MESSAGE_BYTES]
    if len(sendable) < len(batch):
        oversized = [call for call in batch if call.size > MAX_MESSAGE_BYTES]
        error = PayloadTooLargeError(
            f"{len(oversized)} messages over {MAX_MESSAGE_BYTES} bytes, not sent",
            kind="too_large",
            attempts=0,
            count=len(oversized),
        )
        results.append(BatchResult(oversized, error, attempts=0))
    if sendable:
        _send_splitting(transport, sendable, policy, sleep, clock, deadline, results)
    return results


def _send_splitting(
    transport: Transport,
    batch: Sequence[TrackCall],
    policy: RetryPolicy,
    sleep: Sleep,
    clock: Clock,
    deadline: float | None,
    results: list[BatchResult],
) -> None:
    attempts = 0
    try:
        for attempt in policy.retrying(sleep=sleep, clock=clock, deadline=deadline):
            with attempt:
                attempts = attempt.retry_state.attempt_number
                transport.send(batch)
    except PayloadTooLargeError as exc:
        if len(batch) > 1:
            half = len(batch) // 2
            _send_splitting(transport, batch[:half], policy, sleep, clock, deadline, results)
            _send_splitting(transport, batch[half:], policy, sleep, clock, deadline, results)
            return
        exc.attempts = attempts
        results.append(BatchResult(batch, exc, attempts))
        return
    except DeliveryError as exc:
        exc.attempts = attempts
        results.append(BatchResult(batch, exc, attempts))
        return
    results.append(BatchResult(batch, None, attempts))


@dataclass(slots=True)
class DeliveryReport:
    """The outcome of :func:`deliver`.

    Attributes:
        delivered: messageIds Segment accepted, in order.
        failures: each message Segment did not accept, with its ``delivery_failed`` refusal.
        batches: requests' worth of batches sent (after splits).
        errors: the error of each failed batch (status, kind, attempts, count).
    """

    delivered: list[str] = field(default_factory=list)
    failures: list[tuple[TrackCall, Refusal]] = field(default_factory=list)
    batches: int = 0
    errors: list[DeliveryError] = field(default_factory=list)

    @property
    def delivered_count(self) -> int:
        """How many messages Segment accepted."""
        return len(self.delivered)

    @property
    def failed_count(self) -> int:
        """How many messages were not delivered."""
        return len(self.failures)

    @property
    def ok(self) -> bool:
        """Whether every message was delivered."""
        return not self.failures


def deliver(
    calls: Iterable[TrackCall],
    transport: Transport,
    policy: RetryPolicy | None = None,
    *,
    max_messages: int = DEFAULT_BATCH_MESSAGES,
    max_bytes: int = MAX_BATCH_BYTES,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    deadline: float | None = None,
) -> DeliveryReport:
    """Batch and send ``calls`` one batch at a time; report per message.

    Args:
        calls: the messages.
        transport: where to send them.
        policy: retries per batch; :class:`RetryPolicy` defaults when omitted.
        max_messages: most messages per request.
        max_bytes: most serialized message bytes per request.
        sleep: how to wait between attempts.
        clock: monotonic seconds for the budget and ``deadline``.
        deadline: absolute ``clock()`` time after which no attempt starts (a webhook answers within 5 s).

    Returns:
        Which messageIds were delivered and a refusal for each message that was not.
    """
    policy = policy if policy is not None else RetryPolicy()
    report = DeliveryReport()
    for batch in iter_batches(calls, max_messages=max_messages, max_bytes=max_bytes):
        for result in send_batch(transport, batch, policy, sleep=sleep, clock=clock, deadline=deadline):
            report.batches += 1
            if result.error is None:
                report.delivered.extend(call.message_id for call in result.calls)
            else:
                report.errors.append(result.error)
                report.failures.extend(result.refusals())
    return report
