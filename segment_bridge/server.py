"""The webhook receiver: an ASGI app (Starlette) that a Twilio Event Streams webhook sink posts to.

``create_app(settings)`` returns the app; ``segment-bridge serve`` runs it under uvicorn. Routes:

* ``POST /events`` (and ``POST`` at the public URL's path, exactly; never a redirect): verify
  ``X-Twilio-Signature``, translate, deliver to Segment, then answer Twilio;
* ``GET /healthz``: liveness, plus whether Segment answered recently;
* ``GET /metrics``: Prometheus text (a registry of the app's own, so several apps can live in one process).

**Status codes are the contract with Twilio**, which discards events answered with a 4xx other than 429 and retries
429 and 5xx for up to four hours:

=====  ======================================================================================================
200    every event in the request was accepted by Segment, acknowledged (test event, redelivery already
       delivered), refused by translation and recorded (dead-letter file; only logged with ``--no-dead-letter``),
       or refused by Segment *alone* as too large and recorded in the dead-letter file
400    the body is not JSON or holds no CloudEvent (recorded in the dead-letter file, truncated)
403    missing or bad signature: nothing is processed
404    a path not served (the body names the one to post to)
413    body over the size limit
429    the bridge is over its own concurrency limit
503    Segment did not accept every event within the delivery budget, or rejected a batch (401, 403, 404, a
       400 not "too large": a wrong write key must not lose events), with ``Retry-After``; or shutting down
=====  ======================================================================================================

**Group commit**: events of concurrent requests go into shared Segment batches (:class:`GroupCommitBatcher`); each
request awaits only its own events. A bounded cache of recently delivered ``messageId`` s answers Twilio's
redeliveries without calling Segment (Segment's ``messageId`` deduplication stays the backstop).

Nothing here logs the write key, the auth token or payloads: log lines carry counts, ids, types and reasons.
Importing this module needs the ``[server]`` extra; :func:`add_serve_arguments` and :func:`serve_main` do not, so
``segment-bridge serve --help`` works without it and ``serve`` can name the missing extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import SecretStr

from segment_bridge.exceptions import (
    BridgeError,
    ConfigurationError,
    DeliveryError,
    MissingExtraError,
    PayloadTooLargeError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from segment_bridge.outcomes import Outcome, Refusal, RefusalReason, Translation
from segment_bridge.track import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, TrackCall, batch_growth

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from segment_bridge.deadletter import DeadLetterWriter
    from segment_bridge.delivery import BatchResult, RetryPolicy, Transport
    from segment_bridge.mapping import CompiledMapping
    from segment_bridge.settings import Settings
    from segment_bridge.signature import SigningSecrets

__all__ = [
    "DEFAULT_DELIVERY_BUDGET",
    "DEFAULT_MAX_BODY_SIZE",
    "GroupCommitBatcher",
    "ServerConfig",
    "add_serve_arguments",
    "create_app",
    "serve_main",
]

logger = logging.getLogger("segment_bridge.server")

#: Largest request body accepted, in bytes (413 above it).
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
#: Seconds a request may spend delivering, retries included: Twilio waits at most 5 s for an answer.
DEFAULT_DELIVERY_BUDGET = 4.0
#: Requests handled at once before answering 429.
DEFAULT_MAX_CONCURRENCY = 1000
#: Seconds a request may take to arrive whole (headers and body), from its first byte or its connection's opening.
#: Twilio waits 5 s for the whole answer, and its requests arrive in milliseconds.
DEFAULT_READ_TIMEOUT = 5.0
#: Bytes held at once by requests still arriving, before the longest-arriving one is closed (at least 4 bodies).
DEFAULT_MAX_ARRIVING_BYTES = 64 * 1024 * 1024
#: A partial batch waits this long for company when nothing else is in flight.
DEFAULT_LINGER = 0.005
#: ...and at most this long when other batches are in flight (their completion flushes it sooner).
DEFAULT_MAX_LINGER = 0.02
#: Batches posted to Segment at once (one thread each).
DEFAULT_MAX_IN_FLIGHT = 4
#: Messages per Segment request. Every request waits for its own batch, so under load a batch goes as soon as this
#: many events wait: 30 keeps Segment requests per event near 0.04 (at most 1/30) while no request queues behind a
#: long batch; measured against 500 at 100 clients: +18-20% requests/s, p50 -20 ms (benchmarks/README.md §7.4).
DEFAULT_BATCH_MESSAGES = 30
#: Recently delivered messageIds remembered for redeliveries.
DEFAULT_DEDUP_CACHE = 100_000
#: Where ``segment-bridge serve`` keeps refused events unless told otherwise (relative to its working directory):
#: a refusal answered 200 must be kept somewhere it can be replayed from, not only in a log line.
DEFAULT_DEAD_LETTER_FILE = "segment-bridge-refused.jsonl"
#: Bytes of a malformed body kept in its dead-letter record.
DEFAULT_DEAD_LETTER_BODY_LIMIT = 64 * 1024
#: Bodies larger than this are translated on a worker thread rather than on the event loop.
_TRANSLATE_INLINE_LIMIT = 256 * 1024
#: How long a Segment answer counts as "recent" for /healthz.
_HEALTH_WINDOW = 300.0
#: A new attempt is not started in the last moments before the answer is due: it could not finish in time.
_ATTEMPT_RESERVE = 0.25
#: Default Retry-After (seconds) for 503 when Segment named none.
_DEFAULT_RETRY_AFTER = 5
#: Retry-After (seconds) when Segment rejected a batch for good (wrong write key...): the operator must act first.
_REJECTED_RETRY_AFTER = 60


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Options of the webhook receiver (Segment delivery options are in :class:`~segment_bridge.settings.Settings`).

    Attributes:
        public_url: the sink destination as configured in Twilio (``https://host/events``); the signature is
            checked over it plus each request's raw query string. Required unless ``insecure_no_signature``.
            Basic-auth user-info (``https://user:password@host/...``) is dropped here: Twilio signs the URL
            without it, so the password is never needed and never kept (nor in ``repr`` or worker options).
        auth_token: the Primary Auth Token of the account owning the sink (``TWILIO_AUTH_TOKEN``); masked.
        secondary_auth_token: a second Auth Token accepted as well, while rotating (``TWILIO_SECONDARY_AUTH_TOKEN``);
            masked.
        shared_keys: ``(key id, secret)`` pairs for requests signed with a shared key (Twilio's Webhooks
            configuration), which name the key id in ``X-Twilio-Webhooks-Signature-Settings``
            (``SEGMENT_BRIDGE_SHARED_KEYS``); a mapping is accepted too. Not in the repr.
        insecure_no_signature: accept unsigned requests (local testing only; logged loudly at start).
        max_body_size: bytes; larger bodies get 413.
        delivery_budget: seconds per request for delivery, retries included, before answering 503.
        max_concurrency: requests in progress at once before answering 429; only a complete request with a good
            signature takes one.
        read_timeout: seconds a request may take to arrive whole, headers and body (``serve`` closes the
            connection after that; see :mod:`segment_bridge._arrival`).
        max_connections: open connections before the one that has waited longest for a request is closed for a
            new one; ``None``: the file-descriptor limit less a reserve.
        max_arriving_bytes: bytes held by requests still arriving before the longest-arriving one is closed;
            ``None``: the larger of 64 MiB and 4 bodies of ``max_body_size``.
        linger: seconds a partial batch waits for more events when no batch is in flight.
        max_linger: seconds a partial batch waits at most while other batches are in flight.
        max_in_flight: Segment requests in flight at once.
        batch_messages: most messages per Segment request.
        dedup_cache_size: delivered messageIds remembered to answer redeliveries without Segment.
        dead_letter: JSON Lines file for refused events and malformed bodies; ``None`` logs them instead.
        dead_letter_body_limit: bytes of a malformed body kept in its dead-letter record.
        dead_letter_fsync: make a request's dead-letter records durable (``fsync``) before answering it; ``False``
            risks losing refused events answered 200 in a machine crash (for measuring what it costs).
        dry_run: send nothing; write each batch as a JSON line to ``out`` or standard output.
        out: with or without ``dry_run``, write batches to this file instead of Segment.
        hash_key: HMAC key for mappings that hash phone numbers (``SEGMENT_BRIDGE_HASH_KEY``); masked.
        segment_timeout: seconds to wait for one Segment answer; defaults to the delivery budget.
    """

    public_url: str | None = None
    auth_token: SecretStr | None = field(default=None, repr=False)
    secondary_auth_token: SecretStr | None = field(default=None, repr=False)
    shared_keys: tuple[tuple[str, SecretStr], ...] = field(default=(), repr=False)
    insecure_no_signature: bool = False
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    delivery_budget: float = DEFAULT_DELIVERY_BUDGET
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_connections: int | None = None
    max_arriving_bytes: int | None = None
    linger: float = DEFAULT_LINGER
    max_linger: float = DEFAULT_MAX_LINGER
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    batch_messages: int = DEFAULT_BATCH_MESSAGES
    dedup_cache_size: int = DEFAULT_DEDUP_CACHE
    dead_letter: Path | None = None
    dead_letter_body_limit: int = DEFAULT_DEAD_LETTER_BODY_LIMIT
    dead_letter_fsync: bool = True
    dry_run: bool = False
    out: Path | None = None
    hash_key: SecretStr | None = field(default=None, repr=False)
    segment_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.max_body_size < 1 or self.max_concurrency < 1 or self.max_in_flight < 1:
            raise ConfigurationError("max body size, max concurrency and max in-flight must be at least 1")
        if not 0 < self.delivery_budget <= 60:
            raise ConfigurationError("delivery budget must be between 0 and 60 seconds (Twilio waits 5 s)")
        if not 1 <= self.batch_messages <= MAX_BATCH_MESSAGES:
            raise ConfigurationError(f"batch size must be between 1 and {MAX_BATCH_MESSAGES}")
        if self.linger < 0 or self.max_linger < self.linger:
            raise ConfigurationError("linger must be >= 0 and max linger >= linger")
        if not 0 < self.read_timeout <= 300:
            raise ConfigurationError("read timeout must be between 0 and 300 seconds (Twilio waits 5 s)")
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigurationError("max connections must be at least 1")
        if self.max_arriving_bytes is not None and self.max_arriving_bytes < self.max_body_size:
            raise ConfigurationError("max arriving bytes must be at least the max body size")
        if self.public_url is not None:
            _check_public_url(self.public_url)
            object.__setattr__(self, "public_url", _without_user_info(self.public_url))
        for name, variable in (
            ("auth_token", "TWILIO_AUTH_TOKEN"),
            ("secondary_auth_token", "TWILIO_SECONDARY_AUTH_TOKEN"),
        ):
            token = getattr(self, name)
            if isinstance(token, str):
                token = SecretStr(token)
                object.__setattr__(self, name, token)
            # Anyone can compute an HMAC under a blank key: such a "secret" would let every forged request in.
            if token is not None and not token.get_secret_value().strip():
                raise ConfigurationError(f"{variable} is empty")
            # A token file of two lines (or a pasted "token # comment") would check every request against a key
            # Twilio never signs with: each one 403, which Twilio drops. Refuse it at start, as the write key is.
            if token is not None and any(ch.isspace() for ch in token.get_secret_value().strip()):
                raise ConfigurationError(f"{variable} contains whitespace; an Auth Token is a single token")
        keys = self.shared_keys.items() if isinstance(self.shared_keys, Mapping) else self.shared_keys
        object.__setattr__(
            self,
            "shared_keys",
            tuple((key_id, secret if isinstance(secret, SecretStr) else SecretStr(secret)) for key_id, secret in keys),
        )
        for position, (key_id, secret) in enumerate(self.shared_keys, start=1):
            if not (key_id.strip() and secret.get_secret_value().strip()):
                raise ConfigurationError(f"SEGMENT_BRIDGE_SHARED_KEYS: entry {position} has an empty key id or secret")

    def signing_secrets(self) -> SigningSecrets:
        """The secrets requests may be signed with: the Auth Token(s), primary first, and the shared keys."""
        from segment_bridge.signature import SigningSecrets

        tokens = [token.get_secret_value() for token in (self.auth_token, self.secondary_auth_token) if token]
        return SigningSecrets(tokens, {key_id: secret.get_secret_value() for key_id, secret in self.shared_keys})

    def check_security(self) -> None:
        """Raise :class:`ConfigurationError` unless signatures can be checked or checking is explicitly off."""
        if self.insecure_no_signature:
            return
        if self.secondary_auth_token is not None and self.auth_token is None:
            raise ConfigurationError("TWILIO_SECONDARY_AUTH_TOKEN is set without TWILIO_AUTH_TOKEN: set both")
        if self.auth_token is None and not self.shared_keys:
            raise ConfigurationError(
                "TWILIO_AUTH_TOKEN (or shared keys, SEGMENT_BRIDGE_SHARED_KEYS) is required to verify "
                "X-Twilio-Signature (or pass --insecure-no-signature for local testing)"
            )
        if self.public_url is None:
            raise ConfigurationError(
                "the public sink URL is required to verify X-Twilio-Signature: pass --public-url "
                "or set SEGMENT_BRIDGE_PUBLIC_URL to the destination configured in Twilio"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **explicit: Any) -> ServerConfig:
        """Build the config from explicit values (``None`` means unset) first, then ``environ``.

        Reads ``TWILIO_AUTH_TOKEN`` and ``TWILIO_SECONDARY_AUTH_TOKEN`` (each or its ``_FILE``),
        ``SEGMENT_BRIDGE_SHARED_KEYS`` (or ``_FILE``), ``SEGMENT_BRIDGE_PUBLIC_URL``, and ``SEGMENT_BRIDGE_HASH_KEY``.
        The explicit ``auth_token_file``, ``secondary_auth_token_file`` and ``shared_keys_file`` (the ``--...-file``
        options) win over the environment; ``shared_keys`` may be given as ``KEY_ID:SECRET,...`` text.

        Signature checking is turned off only by an explicit ``insecure_no_signature=True`` (the
        ``--insecure-no-signature`` flag), never by the environment: a variable inherited from a ``.env`` file or a
        CI job would disable it silently.

        Raises:
            ConfigurationError: a value is invalid or a secret file unreadable (never echoing a secret).
        """
        from segment_bridge.settings import parse_shared_keys, secret_setting, shared_keys_setting

        values = {key: value for key, value in explicit.items() if value is not None}
        if "public_url" not in values and environ.get("SEGMENT_BRIDGE_PUBLIC_URL"):
            values["public_url"] = environ["SEGMENT_BRIDGE_PUBLIC_URL"].strip()
        for name, variable in (
            ("auth_token", "TWILIO_AUTH_TOKEN"),
            ("secondary_auth_token", "TWILIO_SECONDARY_AUTH_TOKEN"),
        ):
            file = values.pop(f"{name}_file", None)
            if name not in values:
                token = secret_setting(environ, variable, file=file)
                if token is not None:
                    values[name] = token
        keys_file = values.pop("shared_keys_file", None)
        if "shared_keys" not in values:
            values["shared_keys"] = shared_keys_setting(environ, file=keys_file)
        elif isinstance(values["shared_keys"], str):
            values["shared_keys"] = parse_shared_keys(values["shared_keys"], "the shared keys argument")
        if "hash_key" not in values and environ.get("SEGMENT_BRIDGE_HASH_KEY"):
            values["hash_key"] = SecretStr(environ["SEGMENT_BRIDGE_HASH_KEY"])
        for key in ("dead_letter", "out"):
            if key in values:
                values[key] = Path(values[key])
        return cls(**values)


def _check_public_url(url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"public URL must be an http(s) URL, got {parts.scheme or 'no'} scheme")
    if parts.fragment:
        raise ConfigurationError("public URL must not have a fragment")
    # Checked with the configuration, not when the app is built: `--workers` builds it in each worker.
    path = _route_path(url)
    if "{" in path or "}" in path:
        raise ConfigurationError("the path of the public URL must not contain '{' or '}'")


def _route_path(url: str) -> str:
    """The path a route for ``url`` matches: decoded, as routes match; empty is the root, as on the request line."""
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path) or "/"


def _without_user_info(url: str) -> str:
    """``url`` without ``user:password@``, everything else byte for byte (the signature is over those bytes)."""
    scheme, sep, rest = url.partition("://")
    authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    if "@" not in authority:
        return url
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{rest[authority_end:]}"


# --------------------------------------------------------------------------------------------------------------
# Small parts: the redelivery cache, metrics, health
# --------------------------------------------------------------------------------------------------------------


class _RecentIds:
    """A bounded set with least-recently-used eviction (an ``OrderedDict`` used as a set)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        if key in self._ids:
            self._ids.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, key: str) -> None:
        if self.capacity <= 0:
            return
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


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


@dataclass(slots=True)
class _Health:
    """When Segment last answered, for /healthz."""

    last_success: float | None = None
    last_failure: float | None = None
    last_failure_status: str | None = None
    #: Segment's latest batch answer was a rejection for good (set and cleared on the event loop).
    rejecting: bool = False
    last_rejection: float | None = None
    last_rejection_status: int | None = None

    def snapshot(self, now: float) -> dict[str, Any]:
        def age(moment: float | None) -> float | None:
            return None if moment is None else round(now - moment, 3)

        recent_ok = self.last_success is not None and now - self.last_success <= _HEALTH_WINDOW
        failing = self.last_failure is not None and (self.last_success is None or self.last_failure > self.last_success)
        return {
            "answered_recently": recent_ok,
            "failing": failing,
            "last_success_seconds_ago": age(self.last_success),
            "last_failure_seconds_ago": age(self.last_failure),
            "last_failure_status": self.last_failure_status,
            "rejecting": self.rejecting,
            "last_rejection_seconds_ago": age(self.last_rejection),
            "last_rejection_status": self.last_rejection_status,
        }


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


# --------------------------------------------------------------------------------------------------------------
# Group commit
# --------------------------------------------------------------------------------------------------------------

#: ``(batch, deadline) -> results``: runs on a worker thread; :func:`segment_bridge.delivery.send_batch` in the app.
SendFunction = Callable[[Sequence[TrackCall], float], "list[BatchResult]"]


@dataclass(slots=True)
class _Item:
    call: TrackCall
    future: asyncio.Future[DeliveryError | None]
    deadline: float
    enqueued: float


@dataclass(slots=True)
class _Group:
    """One request waiting for several events: ``waiter`` is released when ``remaining`` reaches 0."""

    remaining: int
    waiter: asyncio.Future[None]


class GroupCommitBatcher:
    """Coalesces the events of concurrent requests into shared Segment batches.

    A partial batch is posted after ``linger`` when no batch is in flight; while batches are in flight it waits
    for one to finish (or ``max_linger``), so under load each Segment request carries many requests' events and
    requests per event fall far below 1. A full batch goes at once. At most ``max_in_flight`` batches are posted
    at a time, each on a worker thread (the transport is synchronous).

    Each event gets a future resolved with ``None`` once Segment accepted its batch, or with the batch's
    :class:`~segment_bridge.exceptions.DeliveryError`. An event already delivered (by ``messageId``, in the
    bounded cache) resolves at once without a Segment request; an event already waiting or in flight shares the
    first one's future.

    Args:
        send: posts one batch with retries, never raising a ``DeliveryError`` (runs on a worker thread).
        max_messages: most messages per batch.
        max_bytes: most serialized message bytes per batch.
        linger: seconds a partial batch waits when nothing is in flight.
        max_linger: seconds a partial batch waits at most while batches are in flight.
        max_in_flight: batches posted at once.
        cache_size: delivered messageIds remembered.
        on_batch: called with each batch's size and results, on the event loop (metrics).
    """

    def __init__(
        self,
        send: SendFunction,
        *,
        max_messages: int = DEFAULT_BATCH_MESSAGES,
        max_bytes: int = MAX_BATCH_BYTES,
        linger: float = DEFAULT_LINGER,
        max_linger: float = DEFAULT_MAX_LINGER,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        cache_size: int = DEFAULT_DEDUP_CACHE,
        on_batch: Callable[[int, list[BatchResult]], None] | None = None,
    ) -> None:
        self._send = send
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._linger = linger
        self._max_linger = max_linger
        self._max_in_flight = max_in_flight
        self._on_batch = on_batch
        self.delivered = _RecentIds(cache_size)
        self._pending: deque[_Item] = deque()
        self._pending_bytes = 0
        self._waiting: dict[str, asyncio.Future[DeliveryError | None]] = {}
        self._in_flight: set[asyncio.Future[None]] = set()
        self._groups: dict[asyncio.Future[DeliveryError | None], list[_Group]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._draining = False
        self._executor = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="segment-batch")
        self.batches_sent = 0

    @property
    def pending(self) -> int:
        """Events waiting for a batch."""
        return len(self._pending)

    def submit(self, calls: Sequence[TrackCall], deadline: float) -> list[asyncio.Future[DeliveryError | None] | None]:
        """Queue events for delivery; must be called on the event loop.

        Args:
            calls: the messages of one request.
            deadline: ``time.monotonic()`` after which no attempt for them should start.

        Returns:
            Per call, ``None`` when it was already delivered (a redelivery), else its future.
        """
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        tickets: list[asyncio.Future[DeliveryError | None] | None] = []
        for call in calls:
            key = call.message_id
            if key in self.delivered:
                tickets.append(None)
                continue
            shared = self._waiting.get(key)
            if shared is not None:
                tickets.append(shared)
                continue
            future: asyncio.Future[DeliveryError | None] = loop.create_future()
            self._waiting[key] = future
            self._pending.append(_Item(call, future, deadline, now))
            self._pending_bytes += call.size + 1
            tickets.append(future)
        self._maybe_flush()
        return tickets

    def _full(self) -> bool:
        return len(self._pending) >= self._max_messages or self._pending_bytes >= self._max_bytes

    def _maybe_flush(self) -> None:
        """Post what is due, then arm a timer for the next decision. Never sleeps."""
        now = time.monotonic()
        while self._pending and len(self._in_flight) < self._max_in_flight:
            age = now - self._pending[0].enqueued
            due = age >= (self._linger if not self._in_flight else self._max_linger)
            if not (self._draining or self._full() or due):
                break
            self._dispatch(self._take_batch())
        if self._pending and len(self._in_flight) < self._max_in_flight:
            wait = self._linger if not self._in_flight else self._max_linger
            due_at = self._pending[0].enqueued + wait
            if self._timer is not None and self._timer_due == due_at:
                # Most submits join a batch whose timer is already armed for the same moment: keep it rather
                # than cancel and re-arm one per request.
                return
            self._cancel_timer()
            self._timer_due = due_at
            self._timer = asyncio.get_running_loop().call_later(max(0.0, due_at - now), self._on_timer)
        else:
            self._cancel_timer()

    def _on_timer(self) -> None:
        self._timer = None
        self._maybe_flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _take_batch(self) -> list[_Item]:
        batch: list[_Item] = []
        size = 0
        while self._pending:
            item = self._pending[0]
            added = batch_growth(len(batch), size, item.call, self._max_messages, self._max_bytes)
            if added is None:
                break
            self._pending.popleft()
            self._pending_bytes -= item.call.size + 1
            batch.append(item)
            size += added
        return batch

    def _dispatch(self, items: list[_Item]) -> None:
        calls = [item.call for item in items]
        # The latest deadline: an event left from a request already answered 503 must not cut a fresh request's
        # retries short. Sending past an answered request's deadline is harmless: Twilio's retry of it is then
        # answered from the delivered cache, and Segment deduplicates by messageId.
        deadline = max(item.deadline for item in items)
        self.batches_sent += 1
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._in_flight.add(done)
        self._executor.submit(self._post, loop, items, calls, deadline, done)

    def _post(
        self,
        loop: asyncio.AbstractEventLoop,
        items: list[_Item],
        calls: list[TrackCall],
        deadline: float,
        done: asyncio.Future[None],
    ) -> None:
        """Post one batch, on a worker thread, then settle it on the event loop in one callback.

        Not ``await loop.run_in_executor(...)`` in a task: that hands the result over through two more turns of the
        loop (the wrapped future, then the task's wake-up), each behind every other ready callback under load.
        """
        try:
            results = self._send(calls, deadline)
        except Exception as error:
            # A bug or an unexpected error in a transport must not leave requests waiting: fail the batch as
            # retryable so Twilio tries again later.
            logger.exception("unexpected error posting a batch of %d messages", len(calls))
            failure = RetryableDeliveryError(
                f"unexpected {type(error).__name__} posting {len(calls)} messages", kind="internal", count=len(calls)
            )
            results = [_failed_result(calls, failure)]
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left waiting
            loop.call_soon_threadsafe(self._settle, items, results, done)

    def _settle(self, items: list[_Item], results: list[BatchResult], done: asyncio.Future[None]) -> None:
        by_id: dict[str, DeliveryError | None] = {}
        for result in results:
            for call in result.calls:
                by_id[call.message_id] = result.error
                if result.error is None:
                    self.delivered.add(call.message_id)
        for item in items:
            key = item.call.message_id
            self._waiting.pop(key, None)
            if not item.future.done():
                item.future.set_result(by_id.get(key, _missing_result(item.call)))
            for group in self._groups.pop(item.future, ()):
                group.remaining -= 1
                if group.remaining == 0 and not group.waiter.done():
                    group.waiter.set_result(None)
        if self._on_batch is not None:
            self._on_batch(len(items), results)
        # The slot is free before the flush, so that events waiting for it are posted now.
        self._in_flight.discard(done)
        done.set_result(None)
        self._maybe_flush()

    def notify(self, futures: Sequence[asyncio.Future[DeliveryError | None]], waiter: asyncio.Future[None]) -> None:
        """Release ``waiter`` as soon as every one of ``futures`` (from :meth:`submit`, none done yet) is done.

        What a done callback on each future would do, one turn of the event loop sooner: the futures' callbacks
        run on a later turn, and only then could the waiter be released.
        """
        group = _Group(len(futures), waiter)
        for future in futures:
            self._groups.setdefault(future, []).append(group)

    async def drain(self) -> None:
        """Post everything pending at once (no linger) and wait for every batch in flight; for shutdown."""
        self._draining = True
        self._maybe_flush()
        while self._in_flight or self._pending:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            self._maybe_flush()
        self._executor.shutdown(wait=True)


class _Deadlines:
    """Releases waiters at their deadlines with one event-loop timer for all of them.

    A timer per request (``asyncio.wait(..., timeout=...)``) costs a ``TimerHandle`` pushed into the loop's heap,
    compared there with Python-level ``__lt__``, then cancelled and left in the heap: about 4% of the event loop's
    CPU under load. Here a request pushes a tuple (compared in C) into a heap of its own; one timer is armed for
    the earliest deadline, and finished waiters are dropped lazily when it fires.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, deadline: float, waiter: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (an app started again, in tests): what the old one held cannot be released there.
            self._reset(loop)
        heapq.heappush(self._heap, (deadline, next(self._seq), waiter))
        if deadline < self._timer_at:
            self._arm(loop, deadline)

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._heap.clear()
        self._timer, self._timer_at, self._loop = None, math.inf, loop

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_later(max(0.0, at - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = time.monotonic()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            _release(heapq.heappop(heap)[2])
        if heap and self._loop is not None:
            self._arm(self._loop, heap[0][0])


async def _wait_all(
    futures: list[asyncio.Future[DeliveryError | None]],
    deadline: float,
    deadlines: _Deadlines,
    batcher: GroupCommitBatcher,
) -> None:
    """Wait until every future is done or ``deadline`` (``time.monotonic()``) passes; never cancels them.

    What ``asyncio.wait(futures, timeout=...)`` does for this case at a fraction of its cost (no set of tasks, no
    coroutine checks, no timer of its own, no done callbacks): the futures may be shared with other requests, so
    they are only watched, by the batcher that settles them.
    """
    waiting = [future for future in futures if not future.done()]
    if not waiting:
        return
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    batcher.notify(waiting, waiter)
    deadlines.add(deadline, waiter)
    await waiter


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _failed_result(calls: Sequence[TrackCall], error: DeliveryError) -> BatchResult:
    from segment_bridge.delivery import BatchResult

    return BatchResult(list(calls), error, attempts=0)


def _missing_result(call: TrackCall) -> DeliveryError:
    # send_batch returns every message in exactly one result; this guards against a transport that does not.
    return RetryableDeliveryError(f"no result for message of {call.event_type}", kind="internal", count=1)


# --------------------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------------------


class _Disconnected:
    """Marks a request whose client went away before its body was complete."""


_DISCONNECTED = _Disconnected()


@dataclass(slots=True)
class _EventReport:
    """One event's line in the answer and in the metrics."""

    id: str | None
    type: str | None
    outcome: str
    reason: str = ""
    hint: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "outcome": self.outcome, "reason": self.reason, "hint": self.hint}


class _Bridge:
    """State and handlers of one app: config, mapping, batcher, dead-letter file, metrics."""

    def __init__(
        self,
        settings: Settings,
        config: ServerConfig,
        *,
        transport: Transport | None,
        mapping: CompiledMapping | None,
        policy: RetryPolicy | None,
    ) -> None:
        from segment_bridge.deadletter import DeadLetterWriter
        from segment_bridge.delivery import RetryPolicy as _RetryPolicy
        from segment_bridge.mapping import load_mapping

        config.check_security()
        self.config = config
        self._signing: tuple[str, SigningSecrets] | None = None
        # Fail closed: once check_security passed, every request is checked (with no secret, none passes).
        if not config.insecure_no_signature and config.public_url is not None:
            self._signing = (config.public_url, config.signing_secrets())
        self.settings = settings
        hash_key = config.hash_key.get_secret_value().encode() if config.hash_key is not None else None
        self.mapping = mapping if mapping is not None else load_mapping(settings.mapping, hash_key=hash_key)
        self.metrics = _Metrics()
        self.health = _Health()
        inner = transport if transport is not None else _default_transport(settings, config)
        self.transport = _InstrumentedTransport(inner, self.metrics, self.health)
        # Jitter and long backoffs make no sense inside a 4 s answer; the budget is the request's deadline.
        self.policy = policy or _RetryPolicy(
            max_attempts=4,
            budget_seconds=config.delivery_budget,
            max_retry_after=config.delivery_budget,
            backoff_multiplier=0.1,
            backoff_max=1.0,
            jitter=0.1,
        )
        self.dead_letter: DeadLetterWriter | None = (
            DeadLetterWriter(config.dead_letter) if config.dead_letter is not None else None
        )
        self._dead_letter_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dead-letter")
        # Requests' records waiting for the dead-letter thread, and whether it is at work (shared with it).
        self._to_record: list[tuple[list[tuple[Refusal, Any]], asyncio.Future[Exception | None]]] = []
        self._to_record_lock = threading.Lock()
        self._recording = False
        self.batcher: GroupCommitBatcher | None = None
        self._deadlines = _Deadlines()
        self.active = 0
        self.closing = False
        #: The paths POST events are served at; the last is the public URL's.
        self.event_paths = _event_paths(config.public_url)

    # ----- lifecycle

    def start(self) -> None:
        if self.batcher is not None:
            return
        if self.closing:
            # Started again after a stop (a host that re-runs the lifespan, a test client used twice): what the
            # stop shut down is made anew; the transport and the dead-letter file reopen on their next write.
            self.closing = False
            self._dead_letter_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dead-letter")
        self.batcher = GroupCommitBatcher(
            self._send,
            max_messages=self.config.batch_messages,
            linger=self.config.linger,
            max_linger=self.config.max_linger,
            max_in_flight=self.config.max_in_flight,
            cache_size=self.config.dedup_cache_size,
            on_batch=self._on_batch,
        )
        if self.config.insecure_no_signature:
            logger.warning(
                _line(
                    "insecure_no_signature",
                    message="X-Twilio-Signature is NOT verified (--insecure-no-signature): anyone who can reach "
                    "this server can inject events into Segment. Never run this way on a public address.",
                )
            )
        if self.dead_letter is None:
            logger.warning(
                _line("no_dead_letter", message="no dead-letter file: refused events are only logged, not replayable")
            )
        logger.info(
            _line(
                "started",
                sends_to=_sends_to(self.transport.inner),
                dead_letter=str(self.config.dead_letter.resolve()) if self.config.dead_letter is not None else None,
                public_url=_safe_url(self.config.public_url),
                signature=not self.config.insecure_no_signature,
                delivery_budget=self.config.delivery_budget,
            )
        )

    async def stop(self) -> None:
        self.closing = True
        if self.batcher is not None:
            await self.batcher.drain()
            self.batcher = None
        self._dead_letter_executor.shutdown(wait=True)
        self.transport.close()
        if self.dead_letter is not None:
            self.dead_letter.close()
        logger.info(_line("stopped"))

    def _send(self, calls: Sequence[TrackCall], deadline: float) -> list[BatchResult]:
        from segment_bridge.delivery import send_batch

        return send_batch(self.transport, calls, self.policy, deadline=deadline)

    def _on_batch(self, size: int, results: list[BatchResult]) -> None:
        self.metrics.batch_size.observe(size)
        retries = sum(max(0, result.attempts - 1) for result in results)
        if retries:
            self.metrics.retries.inc(retries)
        for result in results:
            error = result.error
            if error is None:
                if self.health.rejecting:
                    self.health.rejecting = False
                    self.metrics.rejecting.set(0)
                    logger.warning(_line("segment_accepting", message="Segment accepts batches again"))
            elif _rejected(error, result.calls[0]):
                self.health.rejecting = True
                self.health.last_rejection = time.monotonic()
                self.health.last_rejection_status = error.status
                self.metrics.rejecting.set(1)
                self.metrics.rejections.labels(str(error.status or error.kind)).inc()
                logger.error(
                    _line(
                        "segment_rejected",
                        status=error.status,
                        kind=error.kind,
                        messages=len(result.calls),
                        message="Segment rejected a batch for good; its events are answered 503 so Twilio retries "
                        "them. Check the write key (SEGMENT_WRITE_KEY), --region and --segment-host.",
                    )
                )
        if self.batcher is not None:
            self.metrics.pending.set(self.batcher.pending)

    # ----- routes

    async def events(self, request: Request) -> Response:
        started = time.monotonic()
        if self.closing:
            return self._finish(started, 503, {"error": "shutting down"}, {"Retry-After": "5"}, log={})
        if self.batcher is None:
            # Mounted inside another app, whose lifespan does not run ours: start on first use.
            self.start()
        try:
            received = await self._receive(request, started)
            if not isinstance(received, bytes):
                return received
            # Only a complete request with a good signature takes a delivery slot: requests still arriving, or
            # forged, must never crowd out Twilio's (the time a request may take to arrive is bounded below uvicorn,
            # by segment_bridge._arrival).
            if self.active >= self.config.max_concurrency:
                return self._finish(started, 429, {"error": "too many concurrent requests"}, {"Retry-After": "1"}, {})
            self.active += 1
            self.metrics.in_progress.inc()
            try:
                return await self._events(received, started)
            finally:
                self.active -= 1
                self.metrics.in_progress.dec()
        except Exception as error:
            # A bug must not turn into a 500 with a traceback: 503 makes Twilio retry the request. The ERROR line
            # names the exception type and where it was raised, not its message (which may quote a payload).
            where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ is not None else None
            logger.error(
                _line(
                    "internal_error",
                    error=type(error).__name__,
                    at=f"{Path(where.filename).name}:{where.lineno}" if where is not None else None,
                )
            )
            logger.debug("internal error handling POST /events", exc_info=True)
            return self._finish(
                started, 503, {"error": "internal error"}, {"Retry-After": str(_DEFAULT_RETRY_AFTER)}, log={}
            )

    async def _receive(self, request: Request, started: float) -> bytes | Response:
        """The body of a request whose signature holds, or the answer to a request that goes no further."""
        self.metrics.receiving.inc()
        try:
            body = await self._read_body(request)
        finally:
            self.metrics.receiving.dec()
        if body is None:
            limit = self.config.max_body_size
            return self._finish(started, 413, {"error": f"body over {limit} bytes"}, log={"limit": limit})
        if isinstance(body, _Disconnected):
            # Nothing was processed; Twilio sees a failed delivery and retries. No WARNING line each, nor a latency:
            # under a slow-client attack these are the connections the read timeout closes, hundreds a second, and
            # segment_bridge._arrival counts them in one line every 10 s.
            from starlette.responses import Response

            self.metrics.count_response(400)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    _line("request", status=400, ms=round((time.monotonic() - started) * 1000, 1), disconnected=True)
                )
            return Response(b'{"error":"client disconnected"}', status_code=400, media_type="application/json")
        failed = self._check_signature(request, body)
        if failed is not None:
            self.metrics.signature_failures.labels(failed).inc()
            return self._finish(started, 403, {"error": "signature", "check": failed}, log={"check": failed})
        return body

    async def _events(self, body: bytes, started: float) -> Response:
        translations = await self._translate(body)
        # A translated event is a CloudEvent object with a type: no need to decode it again (``t.event`` would).
        if not any(t.track is not None or _is_cloud_event_like(t.event) for t in translations):
            return await self._malformed(started, body, translations)
        return await self._deliver(started, translations)

    async def _read_body(self, request: Request) -> bytes | _Disconnected | None:
        """The body, ``None`` when over the limit, or :data:`_DISCONNECTED` when the client went away."""
        limit = self.config.max_body_size
        declared = request.headers.get("content-length")
        # isascii() first: str.isdigit() accepts '²' (a latin-1 byte in a header), which int() refuses.
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            return None
        # ASGI messages read directly: Starlette's stream() costs a generator per request on the hot path.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return _DISCONNECTED
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _check_signature(self, request: Request, body: bytes) -> str | None:
        from segment_bridge.signature import (
            SIGNATURE_HEADER,
            SIGNATURE_SETTINGS_HEADER,
            SignatureCheckFailed,
            signed_url,
            verify,
        )

        if self._signing is None:
            return None
        public_url, secrets = self._signing
        url = signed_url(public_url, request.scope.get("query_string", b""))
        headers = request.headers
        try:
            verify(url, body, headers.get(SIGNATURE_HEADER), secrets, headers.get(SIGNATURE_SETTINGS_HEADER))
        except SignatureCheckFailed as error:
            return str(error.check)
        return None

    async def _translate(self, body: bytes) -> list[Translation]:
        from segment_bridge.translate import translate_record

        if len(body) <= _TRANSLATE_INLINE_LIMIT:
            return translate_record(body, self.mapping)
        # A large array would hold the event loop (and every other request) for milliseconds.
        return await asyncio.get_running_loop().run_in_executor(None, translate_record, body, self.mapping)

    async def _malformed(self, started: float, body: bytes, translations: list[Translation]) -> Response:
        if _is_empty_array(body):
            # Nothing to deliver is a success: Twilio counts a 4xx as a failure of the sink, and no event is lost.
            return self._finish(started, 200, {"events": []}, log={"events": 0})
        first = translations[0].refusal if translations and translations[0].refusal is not None else None
        reason = first.reason if first is not None else RefusalReason.INVALID_EVENT
        message = first.message if first is not None else "no CloudEvent in the body"
        if reason is not RefusalReason.INVALID_JSON:
            reason, message = RefusalReason.INVALID_EVENT, f"no CloudEvent in the body ({message})"
        limit = self.config.dead_letter_body_limit
        try:
            text: str | bytes = body[:limit].decode()
        except UnicodeDecodeError:
            text = body[:limit]  # not UTF-8: kept as bytes (base64 in the record), so it replays to the same refusal
        refusal = Refusal(
            reason,
            message + (f" (body truncated to {limit} of {len(body)} bytes)" if len(body) > limit else ""),
            "The sink must post a CloudEvent object or a JSON array of them.",
        )
        recorded = await self._record([(refusal, text)], kind="malformed_body")
        self.metrics.count_event("refused", str(reason))
        if not recorded:
            return self._finish(started, 503, {"error": "dead-letter file not writable"}, {"Retry-After": "30"}, {})
        payload = {"error": str(reason), "message": refusal.message, "hint": refusal.hint}
        return self._finish(started, 400, payload, log={"reason": str(reason), "bytes": len(body)})

    async def _deliver(self, started: float, translations: list[Translation]) -> Response:
        assert self.batcher is not None  # noqa: S101 - the lifespan starts it before any request
        answer_by = started + self.config.delivery_budget
        reports: list[_EventReport] = []
        to_record: list[tuple[Refusal, Any]] = []
        calls: list[TrackCall] = []
        slots: list[int] = []
        for translation in translations:
            report = _EventReport(translation.event_id, translation.event_type, str(translation.outcome))
            if translation.track is not None:
                calls.append(translation.track)
                slots.append(len(reports))
            elif translation.refusal is not None:
                refusal = translation.refusal
                report.reason, report.hint = str(refusal.reason), refusal.hint
                to_record.append((refusal, translation.event))
            else:
                report.reason, report.hint = "test_event", translation.note
                # The sink's Validate call needs this id; the log is where the operator finds it.
                logger.info(_line("sink_test_event", test_id=_test_id(translation.event), account=translation.event_id))
            reports.append(report)
        tickets = self.batcher.submit(calls, answer_by - _ATTEMPT_RESERVE)
        self.metrics.pending.set(self.batcher.pending)
        # Refusals are recorded while the batch is in flight, not after it.
        recording = asyncio.ensure_future(self._record(to_record, kind="refused")) if to_record else None
        rejected: list[tuple[Refusal, Any]] = []

        retry_after: float | None = None
        futures = [ticket for ticket in tickets if ticket is not None]
        if futures:
            await _wait_all(futures, answer_by, self._deadlines, self.batcher)
        not_accepted = 0
        for slot, ticket, call in zip(slots, tickets, calls, strict=True):
            report = reports[slot]
            if ticket is None:
                report.outcome, report.reason = Outcome.ACKNOWLEDGED.value, "already_delivered"
                continue
            error = ticket.result() if ticket.done() else None
            if ticket.done() and error is None:
                report.outcome = "delivered"
            elif error is not None and _too_large_alone(error, call):
                # Segment refuses this message even alone: retrying can never help. Acknowledged only once it
                # is in the dead-letter file; a log line is no record to replay from.
                from segment_bridge.delivery import failure_refusal

                refusal = failure_refusal(call, error)
                if self.dead_letter is not None:
                    report.outcome, report.reason, report.hint = "refused", str(refusal.reason), refusal.hint
                    rejected.append((refusal, _event_of(translations, call)))
                else:
                    not_accepted += 1
                    report.outcome, report.reason = "failed", "too_large"
                    report.hint = refusal.hint + " With no dead-letter file it is answered 503 so it is not lost."
                    logger.warning(_line("too_large", id=call.event_id, type=call.event_type, message=refusal.message))
            elif isinstance(error, PermanentDeliveryError):
                # A batch-level rejection (wrong or rotated write key, 403, 404, a 400 not "too large"): every
                # event would be refused the same way. Twilio retries 503 for hours while the operator fixes it.
                not_accepted += 1
                retry_after = max(retry_after or 0.0, _REJECTED_RETRY_AFTER)
                cause = f"HTTP {error.status}" if error.status is not None else error.kind
                report.outcome, report.reason = "failed", "segment_rejected"
                report.hint = (
                    f"Segment rejected the batch ({cause}): check the write key, region and host. Twilio will retry it."
                )
            else:
                not_accepted += 1
                report.outcome, report.reason = "failed", "segment_unavailable" if ticket.done() else "timeout"
                report.hint = "Segment did not accept the event in time; Twilio will retry it."
                if isinstance(error, RetryableDeliveryError) and error.retry_after is not None:
                    retry_after = max(retry_after or 0.0, error.retry_after)
        recorded = await recording if recording is not None else True
        if rejected:
            recorded = await self._record(rejected, kind="delivery_failed") and recorded
        for report in reports:
            self.metrics.count_event(report.outcome, report.reason)
        counts: dict[str, int] = {}
        for report in reports:
            counts[report.outcome] = counts.get(report.outcome, 0) + 1
        body: dict[str, Any] = {"events": [report.as_json() for report in reports]}
        log: dict[str, Any] = {"events": len(reports), **counts}
        refused = [f"{r.reason}:{r.type}:{r.id}" for r in reports if r.outcome == "refused"]
        if refused:
            log["refused_events"] = refused[:20]
        if not_accepted or not recorded:
            wait = math.ceil(retry_after) if retry_after is not None else _DEFAULT_RETRY_AFTER
            body["error"] = "not every event was accepted by Segment" if not_accepted else "dead-letter failed"
            return self._finish(started, 503, body, {"Retry-After": str(wait)}, log)
        return self._finish(started, 200, body, log=log)

    async def _record(self, records: list[tuple[Refusal, Any]], *, kind: str) -> bool:
        """Record refused events (dead-letter file, else the log); ``False`` when they could not be recorded."""
        writer = self.dead_letter
        if writer is None:
            # Without a dead-letter file the log is the record: one line per event, ids and reasons only.
            for refusal, _ in records:
                logger.warning(
                    _line(
                        "refused",
                        id=refusal.event_id,
                        type=refusal.event_type,
                        reason=str(refusal.reason),
                        message=refusal.message,
                        hint=refusal.hint,
                    )
                )
            return True

        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[Exception | None] = loop.create_future()
        with self._to_record_lock:
            self._to_record.append((records, recorded))
            idle, self._recording = not self._recording, True
        if idle:
            try:
                self._dead_letter_executor.submit(self._record_pending, writer, loop)
            except RuntimeError as shut:
                # The executor was shut down (the app stopped while this request was in progress). Left "at work",
                # the flag would keep every later request, after a restart too, waiting for a thread never started.
                with self._to_record_lock:
                    jobs, self._to_record, self._recording = self._to_record, [], False
                _settle_recorded([job[1] for job in jobs], [shut] * len(jobs))
        error = await recorded
        if error is not None:
            logger.error(_line("dead_letter_failed", error=type(error).__name__, records=len(records)))
            return False
        self.metrics.dead_letters.labels(kind).inc(len(records))
        return True

    def _record_pending(self, writer: DeadLetterWriter, loop: asyncio.AbstractEventLoop) -> None:
        """Write every request's records waiting, then one ``fsync`` for them all; until none wait (a worker thread).

        Answered 200, a refused event exists only in this file: it must survive a machine crash, not only the
        process's. Requests that queue while an ``fsync`` runs share the next one (group commit).
        """
        while True:
            with self._to_record_lock:
                jobs, self._to_record = self._to_record, []
                if not jobs:
                    self._recording = False
                    return
            errors: list[Exception | None] = []
            for records, _ in jobs:
                try:
                    for refusal, event in records:
                        writer.write(refusal, event)
                except Exception as error:
                    errors.append(error)
                else:
                    errors.append(None)
            if self.config.dead_letter_fsync:
                try:
                    writer.sync()
                except Exception as error:
                    errors = [own or error for own in errors]
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left waiting
                loop.call_soon_threadsafe(_settle_recorded, [job[1] for job in jobs], errors)

    def _finish(
        self,
        started: float,
        status: int,
        payload: dict[str, Any],
        headers: Mapping[str, str] | None = None,
        log: dict[str, Any] | None = None,
    ) -> Response:
        from starlette.responses import Response

        elapsed = time.monotonic() - started
        self.metrics.count_response(status)
        self.metrics.request_latency.observe(elapsed)
        level = logging.INFO if status == 200 else logging.WARNING
        if logger.isEnabledFor(level):
            logger.log(level, _line("request", status=status, ms=round(elapsed * 1000, 1), **(log or {})))
        return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")

    async def not_found(self, request: Request, _exc: Exception) -> Response:
        """404 for any path not served; a ``POST`` is answered with the path the sink must post to, and logged."""
        from starlette.responses import Response

        configured = self.event_paths[-1]
        others = [path for path in self.event_paths if path != configured]
        where = f"{configured} (the path of --public-url)" if self.config.public_url is not None else configured
        payload = {
            "error": "not_found",
            "message": f"no webhook at this path: post events to {where}" + "".join(f" or {p}" for p in others),
        }
        if request.method != "POST":
            return Response(orjson.dumps(payload), 404, media_type="application/json")
        # A sink pointed at the wrong path loses every event (Twilio drops a 404): the operator must see it.
        return self._finish(time.monotonic(), 404, payload, log={"path": request.url.path[:200]})

    async def healthz(self, request: Request) -> Response:
        from starlette.responses import Response

        payload = {
            "status": "shutting_down" if self.closing else "degraded" if self.health.rejecting else "ok",
            "segment": self.health.snapshot(time.monotonic()),
            "pending_events": self.batcher.pending if self.batcher is not None else 0,
        }
        return Response(orjson.dumps(payload), 503 if self.closing else 200, media_type="application/json")

    async def metrics_endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.responses import Response

        if self.batcher is not None:
            self.metrics.pending.set(self.batcher.pending)
        return Response(generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _settle_recorded(futures: list[asyncio.Future[Exception | None]], errors: list[Exception | None]) -> None:
    for future, error in zip(futures, errors, strict=True):
        if not future.done():
            future.set_result(error)


def _test_id(element: Any) -> str | None:
    """``data.test_id`` of a sink test event (``data`` is a JSON string there), or ``None``."""
    data = element.get("data") if isinstance(element, dict) else None
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    value = data.get("test_id") if isinstance(data, dict) else None
    return str(value) if value is not None else None


def _too_large_alone(error: DeliveryError, call: TrackCall) -> bool:
    """Whether Segment refused this message on its own as too large, so that no retry can ever deliver it.

    :func:`~segment_bridge.delivery.send_batch` splits a batch answered "too large" until the message is alone,
    and refuses a message over Segment's 32 KB limit without sending it.
    """
    return isinstance(error, PayloadTooLargeError) and (error.count == 1 or call.size > MAX_MESSAGE_BYTES)


def _rejected(error: DeliveryError, call: TrackCall) -> bool:
    """A batch-level permanent refusal (write key, 403, 404, a 400 not "too large"): answered 503, never 200."""
    return isinstance(error, PermanentDeliveryError) and not _too_large_alone(error, call)


def _event_of(translations: list[Translation], call: TrackCall) -> Any:
    for translation in translations:
        if translation.track is call:
            return translation.event
    return None


_JSON_WHITESPACE = b" \t\n\r"


def _is_empty_array(body: bytes) -> bool:
    """Whether the body is the JSON ``[]`` (with any JSON whitespace), and nothing else."""
    stripped = body.strip(_JSON_WHITESPACE)
    return stripped[:1] == b"[" and stripped[-1:] == b"]" and not stripped[1:-1].strip(_JSON_WHITESPACE)


def _event_paths(public_url: str | None) -> list[str]:
    """The paths ``POST`` events are served at: ``/events`` and the path of the public URL, each exactly as given.

    A sink whose destination ends in ``/events/`` is served there, not redirected: Twilio does not follow a redirect
    as a delivery, and one to ``http://`` would downgrade the scheme behind a TLS proxy.
    """
    paths = ["/events"]
    if public_url is not None:
        paths.append(_route_path(public_url))
    return list(dict.fromkeys(paths))


def _is_cloud_event_like(element: Any) -> bool:
    """An object with a non-empty string ``type``: malformed maybe, but an event to answer for one by one."""
    return isinstance(element, dict) and isinstance(element.get("type"), str) and bool(element["type"])


def _line(event: str, **fields: Any) -> str:
    """One structured (JSON) log line."""
    return orjson.dumps({"event": event, **fields}, default=str).decode()


def _safe_url(url: str | None) -> str | None:
    """The URL without credentials or query (either may hold secrets), for logs."""
    if url is None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _sends_to(transport: Transport) -> str:
    """Where batches go, in the user's terms (a URL, a path, stdout), for the start-up line: never a class repr."""
    from segment_bridge.delivery import DryRunTransport, FileTransport, SegmentTransport

    if isinstance(transport, SegmentTransport):
        return _safe_url(transport.host) or ""
    if isinstance(transport, FileTransport):
        return str(transport.path.resolve())
    if isinstance(transport, DryRunTransport):
        return "stdout (--dry-run)"
    return type(transport).__name__  # a transport of the embedding application's own


def _default_transport(settings: Settings, config: ServerConfig) -> Transport:
    from segment_bridge.delivery import DryRunTransport, FileTransport, SegmentTransport

    if config.out is not None:
        return FileTransport(config.out)
    if config.dry_run:
        return DryRunTransport(sys.stdout)
    timeout = config.segment_timeout if config.segment_timeout is not None else config.delivery_budget
    return SegmentTransport(settings.require_write_key(), host=settings.host, timeout=timeout)


def create_app(
    settings: Settings,
    config: ServerConfig | None = None,
    *,
    transport: Transport | None = None,
    mapping: CompiledMapping | None = None,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> Starlette:
    """Build the ASGI app.

    Args:
        settings: Segment delivery settings (write key, host, mapping path).
        config: receiver options; read from ``environ`` (``TWILIO_AUTH_TOKEN``, ``SEGMENT_BRIDGE_PUBLIC_URL``, ...)
            when omitted.
        transport: where batches go; by default Segment, or the dry-run / file transport the config names.
        mapping: a compiled mapping; by default the one ``settings.mapping`` names, or the packaged default.
        policy: retry policy per batch; by default a few quick retries inside the delivery budget.
        environ: environment for ``config`` when it is omitted; ``os.environ`` by default.

    Returns:
        A Starlette app with ``POST /events`` (and at the public URL's path), ``GET /healthz`` and
        ``GET /metrics``. Its lifespan starts the batcher and, at shutdown, posts what is pending and waits for
        batches in flight.

    Raises:
        MissingExtraError: the ``[server]`` extra is not installed.
        ConfigurationError: no auth token or public URL (unless insecure), no write key (unless dry run or file
            output), or an unreadable mapping.
    """
    try:
        from starlette.applications import Starlette
        from starlette.routing import Route
    except ImportError:  # pragma: no cover - exercised without the extra
        raise MissingExtraError("server", "segment-bridge serve") from None
    if config is None:
        config = ServerConfig.from_env(os.environ if environ is None else environ)
    bridge = _Bridge(settings, config, transport=transport, mapping=mapping, policy=policy)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        bridge.start()
        try:
            yield
        finally:
            await bridge.stop()

    app = Starlette(
        routes=[
            *(Route(path, bridge.events, methods=["POST"]) for path in bridge.event_paths),
            Route("/healthz", bridge.healthz, methods=["GET"]),
            Route("/metrics", bridge.metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={404: bridge.not_found},
        lifespan=lifespan,
    )
    # Never a redirect (Starlette's default for a trailing slash): Twilio would count it as a failed delivery.
    app.router.redirect_slashes = False
    app.state.bridge = bridge
    return app


# --------------------------------------------------------------------------------------------------------------
# The command (no starlette import until it runs)
# --------------------------------------------------------------------------------------------------------------

_SERVE_EPILOG = """\
examples:
  TWILIO_AUTH_TOKEN=... SEGMENT_WRITE_KEY=... \\
    segment-bridge serve --host 0.0.0.0 --port 8000 --public-url https://bridge.example.com/events \\
    --dead-letter /var/lib/segment-bridge/refused.jsonl
  segment-bridge serve --insecure-no-signature --dry-run        # local try-out: batches on stdout

Refused events (deprecated or unknown types, malformed events) are answered 200 once they are in the dead-letter
file, ./segment-bridge-refused.jsonl unless --dead-letter names another; `segment-bridge replay` reads it back.

Twilio's webhook sink posts to POST /events or the path of --public-url. Answers: 200 once every event is
delivered, acknowledged or refused and recorded; 503/429 when Twilio should retry; 400/403/404/413 for requests to
drop. See docs/webhook.md.

environment: TWILIO_AUTH_TOKEN (or TWILIO_AUTH_TOKEN_FILE), SEGMENT_WRITE_KEY (or SEGMENT_WRITE_KEY_FILE),
SEGMENT_BRIDGE_PUBLIC_URL, SEGMENT_HOST, SEGMENT_REGION, SEGMENT_BRIDGE_MAPPING, SEGMENT_BRIDGE_HASH_KEY;
TWILIO_SECONDARY_AUTH_TOKEN and SEGMENT_BRIDGE_SHARED_KEYS (each or its _FILE) for token rotation and shared keys.

exit status: 0 stopped by SIGTERM after draining, 130 stopped by Ctrl-C after draining (both log the counts),
2 usage or configuration error (a missing secret, an address in use).
"""
_SERVE_ENV = "_SEGMENT_BRIDGE_SERVE_ARGS"


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port between 0 and 65535, got {text!r}")
    return value


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _integer(text: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.lstrip("+-").isdigit()):
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}")
    return int(stripped)


def _positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, got {text!r}")
    return value


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser`` (uvicorn's flag names and defaults). Imports no server package."""
    parser.epilog = _SERVE_EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    env = os.environ.get
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="bind port, 0 for any free one (default: 8000)")
    parser.add_argument("--workers", type=_at_least_one, default=None, help="worker processes (default: 1)")
    parser.add_argument(
        "--public-url",
        default=env("SEGMENT_BRIDGE_PUBLIC_URL") or None,
        metavar="URL",
        help="the sink destination as configured in Twilio; signatures are checked over it "
        "(env: SEGMENT_BRIDGE_PUBLIC_URL)",
    )
    parser.add_argument(
        "--insecure-no-signature",
        action="store_true",
        help="do not verify X-Twilio-Signature (local testing only; logged loudly)",
    )
    parser.add_argument(
        "--auth-token-file",
        metavar="PATH",
        help="file holding the Primary Auth Token that signs the sink's requests (env: TWILIO_AUTH_TOKEN or "
        "TWILIO_AUTH_TOKEN_FILE)",
    )
    parser.add_argument(
        "--secondary-auth-token-file",
        metavar="PATH",
        help="file holding a second Auth Token, accepted as well while you rotate the token "
        "(env: TWILIO_SECONDARY_AUTH_TOKEN or TWILIO_SECONDARY_AUTH_TOKEN_FILE)",
    )
    parser.add_argument(
        "--shared-keys-file",
        metavar="PATH",
        help="file of KEY_ID:SECRET lines: the shared keys of requests signed with one (Twilio's Webhooks "
        "configuration) (env: SEGMENT_BRIDGE_SHARED_KEYS=KEY_ID:SECRET,... or SEGMENT_BRIDGE_SHARED_KEYS_FILE)",
    )
    parser.add_argument(
        "--max-body-size",
        type=_at_least_one,
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help=f"larger bodies get 413 (default: {DEFAULT_MAX_BODY_SIZE})",
    )
    parser.add_argument(
        "--delivery-budget",
        type=_positive_seconds,
        default=DEFAULT_DELIVERY_BUDGET,
        metavar="SECONDS",
        help=f"time to deliver a request's events, retries included, before 503 (default: {DEFAULT_DELIVERY_BUDGET})",
    )
    parser.add_argument(
        "--max-concurrency",
        type=_at_least_one,
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help=f"requests in progress before answering 429 (default: {DEFAULT_MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--read-timeout",
        type=_positive_seconds,
        default=DEFAULT_READ_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request (headers and body) has not arrived whole this long after its first "
        f"byte or the connection's opening (default: {DEFAULT_READ_TIMEOUT})",
    )
    parser.add_argument(
        "--max-connections",
        type=_at_least_one,
        default=None,
        metavar="N",
        help="open connections before the one waiting longest for a request is closed for a new one "
        "(default: the file-descriptor limit less 128)",
    )
    parser.add_argument(
        "--max-arriving-bytes",
        type=_at_least_one,
        default=None,
        metavar="BYTES",
        help="bytes held by requests still arriving before the longest-arriving one is closed "
        "(default: 64 MiB, or 4 bodies of --max-body-size if more)",
    )
    parser.add_argument("--dry-run", action="store_true", help="send nothing: write each batch to stdout or --out")
    parser.add_argument("--out", metavar="PATH", help="write batches as JSON Lines to PATH instead of Segment")
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument(
        "--dead-letter",
        metavar="PATH",
        help=f"append refused events and bad bodies as JSON Lines to PATH (default: ./{DEFAULT_DEAD_LETTER_FILE})",
    )
    kept.add_argument(
        "--no-dead-letter",
        action="store_true",
        help="keep no file: refused events are only logged (by id and reason) and cannot be replayed",
    )
    parser.add_argument(
        "--mapping",
        metavar="PATH",
        default=env("SEGMENT_BRIDGE_MAPPING") or None,
        help="mapping file instead of the packaged default (env: SEGMENT_BRIDGE_MAPPING)",
    )
    parser.add_argument(
        "--hash-key-file",
        metavar="PATH",
        help="file holding the HMAC key for hashing phone numbers, when the mapping turns hashing on "
        "(env: SEGMENT_BRIDGE_HASH_KEY holds the key itself)",
    )
    parser.add_argument(
        "--write-key-file",
        metavar="PATH",
        help="file holding the Segment write key (env: SEGMENT_WRITE_KEY or SEGMENT_WRITE_KEY_FILE)",
    )
    parser.add_argument("--segment-host", metavar="URL", default=None, help="Segment base URL (env: SEGMENT_HOST)")
    parser.add_argument("--region", choices=["us", "eu"], default=None, help="Segment region (env: SEGMENT_REGION)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="(default: info); every line on standard error is one JSON object",
    )


def _config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Settings, ServerConfig]:
    from segment_bridge.settings import Settings, read_secret_file

    file_output = bool(args.dry_run or args.out)
    settings = Settings.from_env(
        environ,
        write_key_file=getattr(args, "write_key_file", None),
        host=args.segment_host,
        region=args.region,
        mapping=args.mapping,
        require_write_key=not file_output,
    )
    hash_key_file = getattr(args, "hash_key_file", None)
    hash_key = SecretStr(read_secret_file(hash_key_file, "the hash key file")) if hash_key_file else None
    config = ServerConfig.from_env(
        environ,
        public_url=args.public_url,
        insecure_no_signature=args.insecure_no_signature or None,
        auth_token_file=getattr(args, "auth_token_file", None),
        secondary_auth_token_file=getattr(args, "secondary_auth_token_file", None),
        shared_keys_file=getattr(args, "shared_keys_file", None),
        max_body_size=args.max_body_size,
        delivery_budget=args.delivery_budget,
        max_concurrency=args.max_concurrency,
        read_timeout=args.read_timeout,
        max_connections=args.max_connections,
        max_arriving_bytes=args.max_arriving_bytes,
        dry_run=args.dry_run,
        out=args.out,
        dead_letter=None if args.no_dead_letter else args.dead_letter or DEFAULT_DEAD_LETTER_FILE,
        hash_key=hash_key,
    )
    config.check_security()
    if config.dead_letter is not None:
        _check_writable(config.dead_letter)
    return settings, config


def _check_writable(path: Path) -> None:
    """Fail at start, in one line, rather than answer 503 at the first refused event.

    The file itself is created only when the first record is written: a server that refuses nothing leaves none.
    """
    problem: str | None = None
    if path.is_dir():
        problem = "it is a directory"
    elif path.exists():
        if not os.access(path, os.W_OK):
            problem = "it is not writable"
    elif not path.parent.is_dir():
        problem = "its directory does not exist"
    elif not os.access(path.parent, os.W_OK):
        problem = "its directory is not writable"
    if problem is not None:
        raise ConfigurationError(
            f"cannot write the dead-letter file {str(path)!r}: {problem}; give --dead-letter PATH, "
            "or --no-dead-letter to only log refused events"
        )


_SERVE_KEYS = (
    "public_url",
    "insecure_no_signature",
    "auth_token_file",
    "secondary_auth_token_file",
    "shared_keys_file",
    "max_body_size",
    "delivery_budget",
    "max_concurrency",
    "read_timeout",
    "max_connections",
    "max_arriving_bytes",
    "dry_run",
    "out",
    "dead_letter",
    "no_dead_letter",
    "mapping",
    "segment_host",
    "region",
    "log_level",
    # Paths, not secrets: each worker reads the files itself.
    "write_key_file",
    "hash_key_file",
)


def _worker_options(args: argparse.Namespace, config: ServerConfig) -> str:
    """The non-secret options for ``--workers`` processes, as JSON; the public URL without its user-info."""
    options = {key: getattr(args, key) for key in _SERVE_KEYS}
    options["public_url"] = config.public_url
    return orjson.dumps(options).decode()


def app_from_environment() -> Starlette:
    """App factory for uvicorn workers (``--workers N``): the options travel in an environment variable.

    Only non-secret options travel that way; each worker reads the secrets from its own environment.
    """
    raw = os.environ.get(_SERVE_ENV)
    if raw is None:
        raise ConfigurationError(f"{_SERVE_ENV} is not set: start workers with `segment-bridge serve --workers N`")
    args = argparse.Namespace(**orjson.loads(raw))
    # A worker is a fresh process: without this its INFO lines (one per request, the sink test id) are lost.
    _configure_logging(args.log_level)
    settings, config = _config_from_args(args, os.environ)
    return _logging_summary(create_app(settings, config))


def _configure_logging(log_level: str) -> None:
    from segment_bridge._logging import configure_json_logging

    configure_json_logging(log_level)


def uvicorn_http_protocol(config: ServerConfig) -> Any:
    """``uvicorn.Config(http=...)`` for ``config``: h11 with bounds on requests still arriving.

    ``serve`` uses it, and so should a host running :func:`create_app` under uvicorn itself (the ``[server]`` extra).
    """
    from segment_bridge._arrival import default_max_connections, protocol_factory

    max_connections = config.max_connections or default_max_connections()
    max_arriving = config.max_arriving_bytes or max(DEFAULT_MAX_ARRIVING_BYTES, 4 * config.max_body_size)
    return protocol_factory(config.read_timeout, max_connections, max_arriving)


def serve_main(args: argparse.Namespace) -> int:
    """Run ``segment-bridge serve`` with parsed arguments; returns the exit status.

    0 after a SIGTERM (an orchestrator's stop) once the server has drained, 130 after Ctrl-C (SIGINT), likewise
    drained; both log the counts of what was done first (``"event":"summary"``). 2, after one JSON line
    (``"event":"configuration_error"``), when it cannot start: the ``[server]`` extra is missing, a secret is
    missing, an option is invalid, or the address cannot be listened on.
    """
    # Before anything can fail: every line serve writes, a start-up error included, is one JSON object.
    _configure_logging(args.log_level)
    try:
        return _serve(args)
    except BridgeError as error:
        logger.error(_line("configuration_error", message=str(error)))
        return 2


def _serve(args: argparse.Namespace) -> int:
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise MissingExtraError("server", "segment-bridge serve") from None
    from segment_bridge._logging import uvicorn_log_config

    # Validate everything in the parent first, so a bad option is one line and exit 2, not a crash per worker.
    settings, config = _config_from_args(args, os.environ)
    _check_address(args.host, args.port)
    workers = args.workers or 1
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": str(args.log_level),
        "log_config": uvicorn_log_config(),
        "access_log": False,  # one structured line per request is ours; uvicorn's would double it
        "timeout_graceful_shutdown": max(10, math.ceil(config.delivery_budget) + 5),
        "lifespan": "on",
        "http": uvicorn_http_protocol(config),
    }
    if workers > 1:
        os.environ[_SERVE_ENV] = _worker_options(args, config)
        uvicorn.run("segment_bridge.server:app_from_environment", factory=True, workers=workers, **common)
        return 0
    app = _logging_summary(create_app(settings, config))
    server = uvicorn.Server(uvicorn.Config(app, **common))
    received: list[int] = []

    def remember(signum: int, _frame: object) -> None:
        # uvicorn handles the signal while it runs, then raises it again once it has drained: it lands here.
        received.append(signum)
        server.should_exit = True

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, remember) for signum in handled}
    try:
        server.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not server.started:
        return 1  # pragma: no cover - uvicorn exits the process itself when the app fails at startup
    status = 130 if signal.SIGINT in received else 0
    logger.info(_line("exit", signal=signal.Signals(received[-1]).name if received else None, status=status))
    return status


def _logging_summary(app: Starlette) -> Starlette:
    """Log the counts of what the app did once its lifespan has ended (drained), in every worker process."""
    inner = app.router.lifespan_context
    bridge: _Bridge = app.state.bridge

    @contextlib.asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncIterator[Any]:
        async with inner(started) as state:
            yield state
        logger.info(_line("summary", **_totals(bridge.metrics)))

    app.router.lifespan_context = lifespan
    return app


def _totals(metrics: _Metrics) -> dict[str, Any]:
    """Events by outcome, refusals by reason and answers by status, from the app's metrics."""
    outcomes = dict.fromkeys(("delivered", "acknowledged", "refused", "failed"), 0)
    reasons: dict[str, int] = {}
    for metric in metrics.events.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            outcome, count = sample.labels["outcome"], int(sample.value)
            outcomes[outcome] = outcomes.get(outcome, 0) + count
            if outcome == "refused" and count:
                reasons[sample.labels["reason"]] = reasons.get(sample.labels["reason"], 0) + count
    answers: dict[str, int] = {}
    for metric in metrics.responses.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.value:
                answers[sample.labels["status"]] = int(sample.value)
    return {**outcomes, "refused_reasons": reasons, "responses": answers}


def _check_address(host: str, port: int) -> None:
    """Fail at start, in one line, when ``host:port`` cannot be listened on (a port in use, an unknown host).

    uvicorn would log the error and exit 3 (its "startup failure"); an address is configuration, exit 2.
    """
    import socket

    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigurationError(
            f"cannot listen on {shown}: {error.strerror}; give --host an address of this host"
        ) from None
    if port == 0:
        return  # any free port: nothing to probe
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # The options asyncio uses for the real socket, so the probe fails exactly when the server would.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                reason = (error.strerror or type(error).__name__).lower()
                raise ConfigurationError(
                    f"cannot listen on {shown}: {reason}; stop what uses it or give another --port"
                ) from None


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m segment_bridge.server``: the ``serve`` command on its own (same options and exit codes)."""
    parser = argparse.ArgumentParser(prog="segment-bridge serve", description="Receive Twilio Event Streams webhooks.")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    return serve_main(args)  # a start-up error is one JSON line and exit 2, as in the CLI


if __name__ == "__main__":  # pragma: no cover - exercised in a subprocess
    sys.exit(_main())
