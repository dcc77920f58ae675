"""The delivery engine (placeholder during the package move; filled in by the next commit)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from segment_bridge.delivery.batches import DEFAULT_BATCH_MESSAGES, iter_batches, send_batch
from segment_bridge.delivery.retry import Clock, RetryPolicy, Sleep
from segment_bridge.delivery.transports import Transport
from segment_bridge.exceptions import DeliveryError
from segment_bridge.outcomes import Refusal
from segment_bridge.track import MAX_BATCH_BYTES, TrackCall

__all__ = ["DeliveryReport", "deliver"]


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
