"""The ASGI app (Starlette) a Twilio Event Streams webhook sink posts to: :func:`create_app` and its request handling.

Routes:

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

Sink test events (acknowledged by translation: no track call) are logged by ``_Bridge._deliver`` as
``sink_test_event`` with their ``test_id``, counted as acknowledged, and never sent to Segment.

Events of concurrent requests share Segment batches through the delivery engine
(:class:`~segment_bridge.delivery.DeliveryEngine`, group commit); each request awaits only its own events.

Nothing here logs the write key, the auth token or payloads: log lines carry counts, ids, types and reasons.
Importing this module needs no extra; :func:`create_app` needs the ``[server]`` extra.

Over 500 lines for a reason: ``_Bridge`` is one app's state (config, mapping, engine, dead-letter file, metrics)
and the handlers that share it, one status-code contract read top to bottom; the parts that hold no app state are
in :mod:`.handling`, :mod:`.metrics`, :mod:`.health` and :mod:`.redelivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from segment_bridge.delivery.batches import too_large_alone
from segment_bridge.delivery.engine import DeliveryEngine
from segment_bridge.delivery.hooks import EngineMetrics, MessageStatus
from segment_bridge.delivery.pacing import RatePacer
from segment_bridge.exceptions import DeliveryError, MissingExtraError, PermanentDeliveryError, RetryableDeliveryError
from segment_bridge.identity import identity_stage, lookup_from_env
from segment_bridge.outcomes import Outcome, Refusal, RefusalReason, Translation
from segment_bridge.server.config import ServerConfig
from segment_bridge.server.handling import (
    _event_of,
    _event_paths,
    _is_cloud_event_like,
    _is_empty_array,
    _rejected,
    _settle_recorded,
    _test_id,
)
from segment_bridge.server.health import _Health
from segment_bridge.server.logs import _line, _safe_url, logger
from segment_bridge.server.metrics import _InstrumentedTransport, _Metrics
from segment_bridge.server.redelivery import _RecentIds
from segment_bridge.server.sink_validation import SinkValidator
from segment_bridge.track import TrackCall

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from segment_bridge.deadletter import DeadLetterWriter
    from segment_bridge.delivery import BatchResult, RetryPolicy, Transport
    from segment_bridge.mapping import CompiledMapping
    from segment_bridge.settings import Settings
    from segment_bridge.signature import SigningSecrets

#: Bodies larger than this are translated on a worker thread rather than on the event loop.
_TRANSLATE_INLINE_LIMIT = 256 * 1024
#: A new attempt is not started in the last moments before the answer is due: it could not finish in time.
_ATTEMPT_RESERVE = 0.25
#: Default Retry-After (seconds) for 503 when Segment named none.
_DEFAULT_RETRY_AFTER = 5
#: Retry-After (seconds) when Segment rejected a batch for good (wrong write key...): the operator must act first.
_REJECTED_RETRY_AFTER = 60


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


class _BatchWatch(EngineMetrics):
    """The engine's counters, plus the app's look at each settled batch (metrics, health, redelivery cache)."""

    def __init__(self, on_batch: Callable[[Sequence[BatchResult]], None]) -> None:
        super().__init__()
        self._on_batch = on_batch

    def batch_settled(self, results: Sequence[BatchResult]) -> None:
        super().batch_settled(results)
        self._on_batch(results)


class _Bridge:
    """State and handlers of one app: config, mapping, delivery engine, dead-letter file, metrics."""

    def __init__(
        self,
        settings: Settings,
        config: ServerConfig,
        *,
        transport: Transport | None,
        mapping: CompiledMapping | None,
        policy: RetryPolicy | None,
        environ: Mapping[str, str] | None = None,
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
        #: The userId lookup (SEGMENT_BRIDGE_IDENTITY_URL), checked against the database now; None when off.
        self.lookup = lookup_from_env(os.environ if environ is None else environ, self.mapping)
        self.metrics = _Metrics()
        if self.lookup is not None:
            self.metrics.watch_identity(self.lookup)
        # One limit for every request of this process: Segment's allowance is the workspace's (README: Pacing).
        self.pacer = RatePacer(config.max_rate, learn=False)
        self.metrics.watch_pacer(self.pacer)
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
        self.engine: DeliveryEngine | None = None
        #: Recently delivered messageIds: Twilio's redeliveries are answered without calling Segment.
        self.delivered = _RecentIds(config.dedup_cache_size)
        self.active = 0
        self.closing = False
        #: The paths POST events are served at; the last is the public URL's.
        self.event_paths = _event_paths(config.public_url)
        #: Validates sinks on their test events when given Twilio credentials (set by create_app).
        self.sink_validator: SinkValidator | None = None

    # ----- lifecycle

    def start(self) -> None:
        if self.engine is not None:
            return
        if self.closing:
            # Started again after a stop (a host that re-runs the lifespan, a test client used twice): what the
            # stop shut down is made anew; the transport and the dead-letter file reopen on their next write.
            self.closing = False
            self._dead_letter_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dead-letter")
        self.delivered = _RecentIds(self.config.dedup_cache_size)
        self.engine = DeliveryEngine(
            self.transport,
            self.policy,
            max_messages=self.config.batch_messages,
            linger=self.config.linger,
            max_linger=self.config.max_linger,
            max_in_flight=self.config.max_in_flight,
            attempt_reserve=_ATTEMPT_RESERVE,
            metrics=_BatchWatch(self._on_batch),
            stage=identity_stage(self.lookup),
            pacer=self.pacer,
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
                identity_lookup=self.lookup.url if self.lookup is not None else None,
            )
        )

    async def stop(self) -> None:
        self.closing = True
        if self.engine is not None:
            await self.engine.drain()
            self.engine = None
        self._dead_letter_executor.shutdown(wait=True)
        if self.sink_validator is not None:
            self.sink_validator.stop()
        self.transport.close()
        if self.dead_letter is not None:
            self.dead_letter.close()
        logger.info(_line("stopped"))

    def _on_batch(self, results: Sequence[BatchResult]) -> None:
        self.metrics.batch_size.observe(sum(len(result.calls) for result in results))
        retries = sum(max(0, result.attempts - 1) for result in results)
        if retries:
            self.metrics.retries.inc(retries)
        for result in results:
            error = result.error
            if error is None:
                for call in result.calls:
                    self.delivered.add(call.message_id)
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
        if self.engine is not None:
            self.metrics.pending.set(self.engine.pending)

    # ----- routes

    async def events(self, request: Request) -> Response:
        started = time.monotonic()
        if self.closing:
            return self._finish(started, 503, {"error": "shutting down"}, {"Retry-After": "5"}, log={})
        if self.engine is None:
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
        engine = self.engine
        assert engine is not None  # noqa: S101 - the lifespan starts it before any request
        answer_by = started + self.config.delivery_budget
        reports: list[_EventReport] = []
        to_record: list[tuple[Refusal, Any]] = []
        calls: list[TrackCall] = []
        slots: list[int] = []
        for translation in translations:
            report = _EventReport(translation.event_id, translation.event_type, str(translation.outcome))
            if translation.track is not None:
                if translation.track.message_id in self.delivered:
                    # A redelivery of an event Segment already accepted: answered without calling Segment.
                    report.outcome, report.reason = Outcome.ACKNOWLEDGED.value, "already_delivered"
                else:
                    calls.append(translation.track)
                    slots.append(len(reports))
            elif translation.refusal is not None:
                refusal = translation.refusal
                report.reason, report.hint = str(refusal.reason), refusal.hint
                to_record.append((refusal, translation.event))
            else:
                report.reason, report.hint = "test_event", translation.note
                # The sink's Validate call needs this id; the log is where the operator finds it.
                test_id = _test_id(translation.event)
                logger.info(_line("sink_test_event", test_id=test_id, account=translation.event_id))
                if self.sink_validator is not None:
                    self.sink_validator.submit(test_id)  # on a thread of its own: the answer does not wait
            reports.append(report)
        # Refusals are recorded while the batch is in flight, not after it.
        recording = asyncio.ensure_future(self._record(to_record, kind="refused")) if to_record else None
        outcomes = await engine.submit(calls, answer_by) if calls else []
        rejected: list[tuple[Refusal, Any]] = []

        retry_after: float | None = None
        not_accepted = 0
        for slot, outcome, call in zip(slots, outcomes, calls, strict=True):
            report = reports[slot]
            error = outcome.error if isinstance(outcome.error, DeliveryError) else None
            if outcome.delivered:
                report.outcome = "delivered"
            elif error is not None and too_large_alone(error, call):
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
            elif outcome.reason is not None:
                # The batch stage kept it back (the identity lookup failed, on_error = "retry"): never sent.
                not_accepted += 1
                report.outcome, report.reason = "failed", outcome.reason
                report.hint = "The customer database did not answer the userId lookup; Twilio will retry it."
            else:
                not_accepted += 1
                timed_out = outcome.status is MessageStatus.TIMED_OUT
                report.outcome, report.reason = "failed", "timeout" if timed_out else "segment_unavailable"
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
            "pending_events": self.engine.pending if self.engine is not None else 0,
        }
        return Response(orjson.dumps(payload), 503 if self.closing else 200, media_type="application/json")

    async def metrics_endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.responses import Response

        if self.engine is not None:
            self.metrics.pending.set(self.engine.pending)
            self.metrics.segment_in_flight.set(self.engine.metrics.in_flight)
        return Response(generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


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
        ``GET /metrics``. Its lifespan starts the delivery engine and, at shutdown, posts what is pending and waits for
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
    bridge = _Bridge(settings, config, transport=transport, mapping=mapping, policy=policy, environ=environ)
    bridge.sink_validator = SinkValidator.from_env(
        os.environ if environ is None else environ, config.public_url, config.auth_token
    )

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
