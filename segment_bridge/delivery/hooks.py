"""What the delivery engine hands back and the hooks it calls (the defaults do nothing).

* :class:`Pacer` (rate limit and shared back-off). Before every request, retries and split halves included, the
  engine awaits ``pacer.acquire(n_messages, deadline)`` on its event loop; ``False`` means the deadline would pass
  first, and those messages end ``TIMED_OUT`` unsent. After a 429 the engine calls ``pacer.pause(retry_after,
  events)`` (seconds from ``Retry-After`` or ``X-RateLimit-Reset``, ``None`` if Segment sent neither; the messages
  of the refused request) on the event loop, *before* the batch's own retry waits, so every batch's next
  ``acquire`` waits out the same pause. :class:`~segment_bridge.delivery.pacing.RatePacer` is the one to use.
* :class:`BatchStage` (identity lookup). Called once per batch, right before it is sent, with the batch's calls;
  returns per call the call to send (the same or an enriched new :class:`~segment_bridge.track.TrackCall`) or a
  :class:`StageFailure`, which settles that message ``FAILED`` with its error and reason without sending it. An
  ``async def`` stage runs on the event loop; a plain callable runs on the batch's worker thread.
* :class:`EngineMetrics` counts Segment requests by status, those in flight, batches and retries; subclass it to feed
  another metrics system (the server's Prometheus registry).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from segment_bridge.delivery.batches import BatchResult
from segment_bridge.exceptions import BridgeError
from segment_bridge.track import TrackCall

__all__ = [
    "BatchStage",
    "EngineMetrics",
    "MessageOutcome",
    "MessageStatus",
    "NoPacer",
    "Pacer",
    "StageFailure",
    "StageResult",
]


class MessageStatus(StrEnum):
    """What became of one message."""

    DELIVERED = "delivered"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """One message's outcome, in the order the caller submitted it.

    Attributes:
        call: the message as sent (the batch stage may have replaced it with an enriched one).
        status: delivered, failed or timed out.
        error: why it failed: the batch's :class:`~segment_bridge.exceptions.DeliveryError` (status, kind) or a
            stage's error; for a timed-out message, a ``RetryableDeliveryError`` of kind ``deadline`` when no request
            could start in time, ``None`` when the caller's deadline passed while it was queued or in flight.
        attempts: requests made for its (sub-)batch.
        reason: the batch stage's reason when the stage failed it (e.g. ``identity_lookup_failed``), else ``None``.
    """

    call: TrackCall
    status: MessageStatus
    error: BridgeError | None = None
    attempts: int = 0
    reason: str | None = None

    @property
    def delivered(self) -> bool:
        """Whether Segment accepted the message."""
        return self.status is MessageStatus.DELIVERED


@dataclass(frozen=True, slots=True)
class StageFailure:
    """A batch stage's verdict that one message must not be sent: it settles ``FAILED`` with this error and reason."""

    error: BridgeError
    reason: str


StageResult = TrackCall | StageFailure


@runtime_checkable
class Pacer(Protocol):
    """Paces requests to Segment (issue 12). Both methods are called on the engine's event loop."""

    async def acquire(self, messages: int, deadline: float | None) -> bool:
        """Wait until ``messages`` may be sent; ``False`` if that would be after ``deadline`` (engine clock)."""
        ...

    def pause(self, retry_after: float | None, events: int) -> None:
        """Segment answered 429 to ``events`` messages: hold every later ``acquire`` for ``retry_after`` seconds."""
        ...


class NoPacer:
    """The default pacer: never waits."""

    async def acquire(self, messages: int, deadline: float | None) -> bool:
        """Always ``True`` at once."""
        return True

    def pause(self, retry_after: float | None, events: int) -> None:
        """Nothing to pause."""


@runtime_checkable
class BatchStage(Protocol):
    """Runs on each batch's calls right before it is sent (issue 13): one call per batch.

    Returns one :data:`StageResult` per call, in order: the call to send, or a :class:`StageFailure`. Either a
    coroutine function (run on the event loop) or a plain callable (run on the batch's worker thread).
    """

    def __call__(self, calls: Sequence[TrackCall]) -> Sequence[StageResult] | Awaitable[Sequence[StageResult]]:
        """The calls to send, or why not, one per call."""
        ...


class EngineMetrics:
    """Counts of the engine's Segment requests; thread-safe. Subclass and extend the hooks to export them.

    Attributes:
        requests: requests made, by HTTP status (``"200"`` when accepted) or error kind (``timeout``...).
        in_flight: requests in progress now.
        batches: (sub-)batches settled.
        failed_batches: (sub-)batches Segment did not accept (their messages failed or timed out unsent).
        retries: requests that were retries of a batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.in_flight = 0
        self.batches = 0
        self.failed_batches = 0
        self.retries = 0

    def request_started(self) -> None:
        """A request to Segment starts (worker thread)."""
        with self._lock:
            self.in_flight += 1

    def request_finished(self, status: str, seconds: float) -> None:
        """A request ended with ``status`` after ``seconds`` (worker thread)."""
        with self._lock:
            self.in_flight -= 1
            self.requests[status] += 1

    def batch_settled(self, results: Sequence[BatchResult]) -> None:
        """A batch's results are in (event loop): one per sub-batch."""
        with self._lock:
            self.batches += len(results)
            self.failed_batches += sum(1 for result in results if result.error is not None)
            self.retries += sum(max(0, result.attempts - 1) for result in results)
