"""Delivery: batches of track calls to Segment, with retries, and nothing dropped silently.

The package, like httpx's ``_transports/``, sits behind this small surface:

* :mod:`~segment_bridge.delivery.transports`: the :class:`Transport` seam (the only I/O) and its members,
  :class:`SegmentTransport`, :class:`DryRunTransport`, :class:`FileTransport`;
* :mod:`~segment_bridge.delivery.retry`: :class:`RetryPolicy`, the one retry policy (tenacity), and which HTTP
  statuses are worth another attempt;
* :mod:`~segment_bridge.delivery.batches`: grouping messages within Segment's limits and sending one batch with
  retries and splits (:func:`send_batch`); :func:`deliver`, a batch at a time on the calling thread;
* :mod:`~segment_bridge.delivery.engine`: the one engine ``serve``, ``replay`` and the Lambda deliver through;
* :mod:`~segment_bridge.delivery.hooks`: its outcomes and hooks (:class:`Pacer`, :class:`BatchStage`,
  :class:`EngineMetrics`);
* :mod:`~segment_bridge.delivery.pacing`: :class:`RatePacer`, the engine's events/s limit and shared back-off
  after Segment's 429.
"""

from __future__ import annotations

from segment_bridge.delivery.batches import (
    DEFAULT_BATCH_MESSAGES,
    BatchResult,
    DeliveryReport,
    deliver,
    failure_refusal,
    iter_batches,
    send_batch,
)
from segment_bridge.delivery.engine import DeliveryEngine, EngineThread
from segment_bridge.delivery.hooks import (
    BatchStage,
    EngineMetrics,
    MessageOutcome,
    MessageStatus,
    NoPacer,
    Pacer,
    StageFailure,
    StageResult,
)
from segment_bridge.delivery.pacing import PacerMetrics, RatePacer
from segment_bridge.delivery.retry import Clock, RetryPolicy, Sleep, is_retryable_status
from segment_bridge.delivery.transports import (
    DEFAULT_HOST,
    EU_HOST,
    DryRunTransport,
    FileTransport,
    SegmentTransport,
    Transport,
)

__all__ = [
    "DEFAULT_BATCH_MESSAGES",
    "DEFAULT_HOST",
    "EU_HOST",
    "BatchResult",
    "BatchStage",
    "Clock",
    "DeliveryEngine",
    "DeliveryReport",
    "DryRunTransport",
    "EngineMetrics",
    "EngineThread",
    "FileTransport",
    "MessageOutcome",
    "MessageStatus",
    "NoPacer",
    "Pacer",
    "PacerMetrics",
    "RatePacer",
    "RetryPolicy",
    "SegmentTransport",
    "Sleep",
    "StageFailure",
    "StageResult",
    "Transport",
    "deliver",
    "failure_refusal",
    "is_retryable_status",
    "iter_batches",
    "send_batch",
]
