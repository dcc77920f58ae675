"""The app's Prometheus metrics (``GET /metrics``), and a transport wrapper counting and timing Segment requests.

``prometheus_client`` (the ``[server]`` extra) is imported when the metrics are created, not with this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from segment_bridge.exceptions import DeliveryError
from segment_bridge.server.health import _Health
from segment_bridge.track import TrackCall

if TYPE_CHECKING:
    from segment_bridge.delivery import Transport
    from segment_bridge.delivery.pacing import RatePacer
    from segment_bridge.identity import UserIdLookup


class _Metrics:
    """The app's Prometheus metrics, in a registry of its own (never the global default one)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "segment_bridge_events",
            "Events received, by outcome (delivered, acknowledged, refused, failed) and reason.",
            ["outcome", "reason"],
            registry=r,
        )
        self.responses = Counter(
            "segment_bridge_http_responses", "Answers to POST /events, by HTTP status.", ["status"], registry=r
        )
        self.signature_failures = Counter(
            "segment_bridge_signature_failures", "Requests refused with 403, by failed check.", ["check"], registry=r
        )
        self.segment_requests = Counter(
            "segment_bridge_segment_requests",
            "Requests to Segment, by HTTP status or error kind (timeout, connection).",
            ["status"],
            registry=r,
        )
        self.retries = Counter("segment_bridge_segment_retries", "Segment requests that were retries.", registry=r)
        self.batch_size = Histogram(
            "segment_bridge_batch_size",
            "Messages per Segment batch.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2500),
            registry=r,
        )
        self.request_latency = Histogram(
            "segment_bridge_request_duration_seconds",
            "Time to answer POST /events.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 4.0, 5.0, 10.0),
            registry=r,
        )
        self.segment_latency = Histogram(
            "segment_bridge_segment_request_duration_seconds",
            "Time for one Segment request.",
            buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.in_progress = Gauge("segment_bridge_requests_in_progress", "POST /events in progress.", registry=r)
        self.receiving = Gauge(
            "segment_bridge_requests_receiving",
            "POST /events whose body is still arriving (they hold no delivery slot until their signature holds).",
            registry=r,
        )
        self.pending = Gauge("segment_bridge_pending_events", "Events waiting for a Segment batch.", registry=r)
        self.segment_in_flight = Gauge(
            "segment_bridge_segment_requests_in_flight", "Requests to Segment in progress now.", registry=r
        )
        self.dead_letters = Counter(
            "segment_bridge_dead_letter_records", "Records written to the dead-letter file.", ["kind"], registry=r
        )
        self.rejections = Counter(
            "segment_bridge_segment_rejections",
            "Batches Segment rejected for good (wrong write key, 403, 404, a 400 not 'too large'), by status.",
            ["status"],
            registry=r,
        )
        self.rejecting = Gauge(
            "segment_bridge_segment_rejecting",
            "1 while Segment's latest answer to a batch was a rejection (events are answered 503), else 0.",
            registry=r,
        )
        # ``.labels()`` costs a lock and a tuple key per call; the hot path keeps the children it has made.
        self._event_children: dict[tuple[str, str], Any] = {}
        self._response_children: dict[int, Any] = {}
        self._segment_children: dict[str, Any] = {}

    def watch_identity(self, lookup: UserIdLookup) -> None:
        """Export the userId lookup's counters (read at each scrape)."""
        self.registry.register(_IdentityCollector(lookup))

    def count_event(self, outcome: str, reason: str) -> None:
        child = self._event_children.get((outcome, reason))
        if child is None:
            child = self._event_children[outcome, reason] = self.events.labels(outcome, reason)
        child.inc()

    def count_response(self, status: int) -> None:
        child = self._response_children.get(status)
        if child is None:
            child = self._response_children[status] = self.responses.labels(str(status))
        child.inc()

    def count_segment_request(self, status: str) -> None:
        # Called from the batch threads: a race makes the same child twice (``labels`` returns one per key).
        child = self._segment_children.get(status)
        if child is None:
            child = self._segment_children[status] = self.segment_requests.labels(status)
        child.inc()

    def watch_pacer(self, pacer: RatePacer) -> None:
        """Export the pacer's figures, read at each scrape: Segment's 429s, time paused, send rate, limit in force."""
        self.registry.register(_PacerCollector(pacer))


class _PacerCollector:
    """Reads :meth:`RatePacer.metrics` when ``/metrics`` is scraped (the pacer keeps its own counts)."""

    def __init__(self, pacer: RatePacer) -> None:
        self._pacer = pacer

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        figures = self._pacer.metrics()
        yield CounterMetricFamily(
            "segment_bridge_segment_rate_limited",
            "Segment's 429 answers; each paused all sending.",
            value=figures.rate_limited,
        )
        yield CounterMetricFamily(
            "segment_bridge_paced_seconds",
            "Seconds all sending to Segment was paused after its 429s.",
            value=figures.paused_seconds,
        )
        yield GaugeMetricFamily(
            "segment_bridge_send_rate",
            "Events sent to Segment per second, over the last 5 s.",
            value=figures.current_rate,
        )
        yield GaugeMetricFamily(
            "segment_bridge_max_rate",
            "Events/s sent to Segment at most now (--max-rate, lower for a while after a 429; 0: unlimited).",
            value=figures.rate_in_force,
        )


class _InstrumentedTransport:
    """Wraps a transport to count each Segment request (retries included) by status, and time it."""

    def __init__(self, inner: Transport, metrics: _Metrics, health: _Health) -> None:
        self.inner = inner
        self._metrics = metrics
        self._health = health

    def __repr__(self) -> str:
        return f"_InstrumentedTransport({self.inner!r})"

    def send(self, batch: Sequence[TrackCall]) -> None:
        started = time.monotonic()
        try:
            self.inner.send(batch)
        except DeliveryError as error:
            status = str(error.status) if error.status is not None else error.kind
            self._metrics.count_segment_request(status)
            self._health.last_failure = time.monotonic()
            self._health.last_failure_status = status
            raise
        finally:
            self._metrics.segment_latency.observe(time.monotonic() - started)
        self._metrics.count_segment_request("200")
        self._health.last_success = time.monotonic()

    def close(self) -> None:
        self.inner.close()


class _IdentityCollector:
    """``segment_bridge_identity_lookups_total{result}`` and ``segment_bridge_identity_queries_total``."""

    def __init__(self, lookup: UserIdLookup) -> None:
        self._lookup = lookup

    def describe(self) -> list[Any]:
        return []  # the families are only known at collection; nothing to register up front

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        counters = self._lookup.counters
        calls = CounterMetricFamily(
            "segment_bridge_identity_lookups",
            "Calls looked up in the customer table, by result (identity_lookup_failed: sent without userId, or kept "
            "back with on_error = retry).",
            labels=["result"],
        )
        for result, count in (
            ("found", counters.hits),
            ("not_found", counters.misses),
            ("conflict", counters.conflicts),
            ("identity_lookup_failed", counters.failed),
        ):
            calls.add_metric([result], count)
        yield calls
        yield CounterMetricFamily(
            "segment_bridge_identity_queries", "Queries sent to the customer table.", value=counters.queries
        )
