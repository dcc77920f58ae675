"""One batch to Segment: grouping messages within Segment's limits, and sending a batch with retries and splits.

:func:`deliver` is these building blocks used one batch at a time on the calling thread, for a script that sends
a few messages; ``serve``, ``replay`` and the Lambda use the engine.

:func:`send_batch` retries one batch under a :class:`~segment_bridge.delivery.retry.RetryPolicy` and returns one
:class:`BatchResult` per sub-batch: a batch Segment answers "too large" (400/413) is split in half until each half
goes through or a message is alone, and a message over 32 KB is refused without a request. It runs on one of the
engine's worker threads (:mod:`segment_bridge.delivery.engine`); the transport is synchronous.

A retried batch keeps its messages, hence their ``messageId`` s, so an ambiguous timeout followed by a retry is
deduplicated by Segment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from segment_bridge.delivery.retry import Clock, RetryPolicy, Sleep
from segment_bridge.delivery.transports import Transport
from segment_bridge.exceptions import (
    DeliveryError,
    PayloadTooLargeError,
    RetryableDeliveryError,
)
from segment_bridge.outcomes import Refusal, RefusalReason
from segment_bridge.track import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, TrackCall, batch_growth

__all__ = [
    "DEFAULT_BATCH_MESSAGES",
    "BatchResult",
    "BeforeAttempt",
    "DeliveryReport",
    "deliver",
    "failure_refusal",
    "iter_batches",
    "send_batch",
]

#: Messages per request by default: well under Segment's 2,500 (above which it answers 200 and drops
#: events), and small enough that a retried or split batch re-sends little.
DEFAULT_BATCH_MESSAGES = 500

#: Called on the sending thread before every attempt with the attempt's messages; ``False`` means "do not send"
#: (the pacer says the deadline would pass first) and ends the (sub-)batch as timed out.
BeforeAttempt = Callable[[Sequence[TrackCall]], bool]


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
    before_attempt: BeforeAttempt | None = None,
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
        before_attempt: called before every request with its messages (the engine's pacer); when it returns
            ``False`` the (sub-)batch ends unsent with a ``RetryableDeliveryError`` of kind ``deadline``.

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
        _send_splitting(transport, sendable, policy, sleep, clock, deadline, results, before_attempt)
    return results


class _NotPaced(Exception):
    """``before_attempt`` said no: the request would start after the messages' deadline."""


def _send_splitting(
    transport: Transport,
    batch: Sequence[TrackCall],
    policy: RetryPolicy,
    sleep: Sleep,
    clock: Clock,
    deadline: float | None,
    results: list[BatchResult],
    before_attempt: BeforeAttempt | None = None,
) -> None:
    attempts = 0
    try:
        for attempt in policy.retrying(sleep=sleep, clock=clock, deadline=deadline):
            with attempt:
                if before_attempt is not None and not before_attempt(batch):
                    raise _NotPaced
                attempts = attempt.retry_state.attempt_number
                transport.send(batch)
    except _NotPaced:
        error = RetryableDeliveryError(
            f"{len(batch)} messages not sent: their deadline would pass first", kind="deadline", count=len(batch)
        )
        error.attempts = attempts
        results.append(BatchResult(batch, error, attempts))
        return
    except PayloadTooLargeError as exc:
        if len(batch) > 1:
            half = len(batch) // 2
            _send_splitting(transport, batch[:half], policy, sleep, clock, deadline, results, before_attempt)
            _send_splitting(transport, batch[half:], policy, sleep, clock, deadline, results, before_attempt)
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
    """Batch and send ``calls`` one batch at a time, on the calling thread; report per message.

    The engine's building blocks without its threads: for a script that sends a few messages.

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
