"""AWS Lambda handler for Twilio's Kinesis sink: Kinesis records in, Segment ``track`` calls out.

Twilio's Kinesis sink writes one CloudEvent per record; an event source mapping with ``ReportBatchItemFailures``
hands the records to :func:`handler` in batches. Each invocation decodes and translates every record, sends the
events of all records together through the delivery engine (:class:`segment_bridge.delivery.DeliveryEngine`) within
the invocation's remaining time (each attempt's HTTP timeout shrinks to the time left; none starts in the last
0.25 s), and returns ``{"batchItemFailures": [{"itemIdentifier": "<sequenceNumber>"}, ...]}`` naming the records
whose events Segment did not accept. Lambda then checkpoints before the lowest failed record and sends it and every
later record again; deterministic ``messageId`` s make the repeats harmless.

Refused events (deprecated, api-request or unknown types, bad base64, bad JSON, invalid events) are *not* failures:
retrying them would block the shard for nothing. Each is logged as one JSON line with its reason, hint, shard and
sequence number (enough to read the record back from the stream while it is retained), counted in the invocation's
summary line, and appended to ``SEGMENT_BRIDGE_DEAD_LETTER`` when that is set. The sink test event is acknowledged
and its ``test_id`` logged, for the sink's Validate call.

Configuration comes from environment variables only and is validated once per execution environment (cold start);
the mapping, retry policy and dead-letter file are built then and reused. A misconfiguration is one
``configuration_error`` log line and a failed invocation, never a silent drop.

==================================  =============================================================================
``SEGMENT_WRITE_KEY``               the Segment source's write key (or ``SEGMENT_WRITE_KEY_FILE``); required
``SEGMENT_HOST``, ``SEGMENT_REGION``  Segment endpoint, as for the CLI (``eu`` for EU workspaces)
``SEGMENT_BRIDGE_MAPPING``          a mapping file replacing the packaged default
``SEGMENT_BRIDGE_HASH_KEY``         HMAC key, when the mapping hashes phone numbers
``SEGMENT_BRIDGE_IDENTITY_URL``     database to look ``userId`` up in (``[identity]`` extra); unset: no lookup
``SEGMENT_BRIDGE_DEAD_LETTER``      JSON Lines file for refused events (same format ``replay`` reads); unset: log only
``SEGMENT_BRIDGE_MAX_ATTEMPTS``     attempts per batch within one invocation, default 4
``SEGMENT_BRIDGE_RETRY_BACKOFF``    first backoff wait in seconds (doubles, plus as much jitter), default 0.5
``SEGMENT_BRIDGE_HTTP_TIMEOUT``     seconds to connect or read one answer from Segment, default 10
``SEGMENT_BRIDGE_SAFETY_MARGIN_MS`` time kept back from the invocation's remaining time, default 1500
``SEGMENT_BRIDGE_BATCH_SIZE``       most messages per Segment request, default 500
``SEGMENT_BRIDGE_MAX_RATE``         most events per second this execution environment sends (one invocation at a
                                    time), default 0: no limit (see the README's Pacing for sizing)
``SEGMENT_BRIDGE_LOG_LEVEL``        ``DEBUG``, ``INFO`` (default), ``WARNING`` or ``ERROR``
==================================  =============================================================================

This module imports only the core and :mod:`segment_bridge.delivery`; boto3 is not needed at run time.

Over 500 lines for a reason: the environment table above, structured logging, and the Kinesis record
bookkeeping (``_KinesisBatch``) that ``batchItemFailures`` must name exactly; delivery is the engine's.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from segment_bridge._logging import JsonFormatter, drop_sdk_duplicates
from segment_bridge.catalog import TEST_EVENT_TYPE
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.delivery import (
    DEFAULT_BATCH_MESSAGES,
    BatchStage,
    DeliveryEngine,
    EngineThread,
    MessageOutcome,
    RatePacer,
    RetryPolicy,
    SegmentTransport,
    Transport,
)
from segment_bridge.delivery.batches import too_large_alone
from segment_bridge.exceptions import (
    BridgeError,
    ConfigurationError,
    DeliveryError,
    InvalidEventError,
    PayloadTooLargeError,
)
from segment_bridge.identity import identity_stage, lookup_from_env
from segment_bridge.mapping import CompiledMapping, load_mapping
from segment_bridge.outcomes import Outcome, Refusal, RefusalReason
from segment_bridge.settings import Settings, max_rate_setting
from segment_bridge.track import MAX_BATCH_MESSAGES, TrackCall
from segment_bridge.translate import translate_record

__all__ = ["LambdaContext", "LambdaRuntime", "handler", "load_runtime", "reset_runtime"]

#: The logger every line of this module goes through, one JSON object per line.
LOGGER_NAME = "segment_bridge.aws_lambda"

# Below this much time left there is no point starting a request: report the records as failed instead.
_MIN_ATTEMPT_SECONDS = 0.25
# The core leaves some refusals (bad JSON, invalid events) without a hint; on a stream the next step is always this.
_DEFAULT_HINT = (
    "Read the record back from the stream by its shard and sequence number (aws kinesis get-shard-iterator "
    "--shard-iterator-type AT_SEQUENCE_NUMBER) to see what wrote it; Twilio's sink writes one CloudEvent per record."
)
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}

_log = logging.getLogger(LOGGER_NAME)
#: Loggers of the libraries the handler calls into (the Segment SDK, its retry helper, HTTP).
_LIBRARY_LOGGERS = ("segment", "backoff", "analytics", "urllib3")

TransportFactory = Callable[[float], Transport]
Clock = Callable[[], float]
Sleep = Callable[[float], None]


class LambdaContext(Protocol):
    """The part of Lambda's context object the handler uses."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""
        ...


class _StdoutLines(logging.Handler):
    """Writes each record's message, a JSON object, as one line on the *current* ``sys.stdout``.

    Lambda sends standard output to CloudWatch Logs line by line; a bare JSON line (no ``[INFO]`` prefix from the
    runtime's own handler) is what CloudWatch Logs Insights parses into fields. ``sys.stdout`` is looked up at each
    write so a replaced stream (tests, wrappers) is honoured.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Without a formatter this is the message itself (ours is already a JSON object).
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:  # logging must never break the invocation
            self.handleError(record)


def _emit(level: int, event: str, **fields: Any) -> None:
    """Log one structured line: ``{"level", "event", ...fields}``. Fields never hold secrets or payloads."""
    if _log.isEnabledFor(level):
        line = {"level": logging.getLevelName(level).lower(), "event": event, **fields}
        _log.log(level, orjson.dumps(line, default=str).decode())


def _configure_logging(environ: Mapping[str, str]) -> None:
    name = (environ.get("SEGMENT_BRIDGE_LOG_LEVEL") or "INFO").strip().upper()
    level = _LEVELS.get(name)
    if level is None:
        raise ConfigurationError(f"SEGMENT_BRIDGE_LOG_LEVEL must be one of {', '.join(_LEVELS)}, got {name!r}")
    _log.setLevel(level)
    if not any(isinstance(h, _StdoutLines) for h in _log.handlers):
        _log.addHandler(_StdoutLines())
    # Our handler already writes the line; propagating would print it a second time through the runtime's.
    _log.propagate = False
    # The libraries' lines would reach the runtime's plain-text handler on the root logger; they get JSON too.
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if not any(isinstance(h, _StdoutLines) for h in library.handlers):
            handler = _StdoutLines()
            handler.setFormatter(JsonFormatter())
            library.addHandler(handler)
        library.propagate = False
    drop_sdk_duplicates()


def _number(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _dead_letter(environ: Mapping[str, str]) -> DeadLetterWriter | None:
    raw = environ.get("SEGMENT_BRIDGE_DEAD_LETTER", "").strip()
    if not raw:
        return None
    path = Path(raw)
    # The file itself is created on the first refusal; check now that it could be, rather than at the first one.
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise ConfigurationError(f"SEGMENT_BRIDGE_DEAD_LETTER: directory {str(path.parent)!r} is missing or read-only")
    if path.is_dir():
        raise ConfigurationError(f"SEGMENT_BRIDGE_DEAD_LETTER: {raw!r} is a directory; give a file path")
    return DeadLetterWriter(path)


@dataclass(slots=True)
class LambdaRuntime:
    """Everything an execution environment builds once and every invocation reuses.

    Attributes:
        mapping: the compiled mapping.
        transport_factory: builds the transport for one batch, given its HTTP timeout in seconds (a transport is
            cheap; its timeout must shrink with the invocation's remaining time).
        policy: retries per batch; the invocation's deadline cuts it short.
        http_timeout: longest HTTP timeout a transport gets.
        safety_margin: seconds kept back from the remaining time, for logging and returning the answer.
        max_messages: most messages per Segment request.
        dead_letter: where refused events are appended, or ``None`` to log them only.
        clock: monotonic seconds.
        sleep: how to wait between attempts.
        counts: outcomes since the cold start (each invocation's own are in its summary line).
        stage: run on each batch right before it is sent: the userId lookup (SEGMENT_BRIDGE_IDENTITY_URL).
        pacer: the events/s limit and shared back-off after Segment's 429, kept from one invocation to the next
            (an execution environment runs one at a time); ``None``: unpaced.
    """

    mapping: CompiledMapping
    transport_factory: TransportFactory
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    http_timeout: float = 10.0
    safety_margin: float = 1.5
    max_messages: int = DEFAULT_BATCH_MESSAGES
    dead_letter: DeadLetterWriter | None = None
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    counts: Counter[str] = field(default_factory=Counter)
    stage: BatchStage | None = None
    pacer: RatePacer | None = None

    def handle(self, event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, list[dict[str, str]]]:
        """Process one Kinesis batch; see :func:`handler`."""
        started = self.clock()
        end = started + _time_left(context) - self.safety_margin
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(records, list):
            message = "the event has no Records list: is this function triggered by a Kinesis event source mapping?"
            _emit(logging.ERROR, "configuration_error", error="ConfigurationError", message=message)
            raise ConfigurationError(message)
        invocation = _KinesisBatch(self, records)
        invocation.translate_all()
        batches = invocation.deliver(end)
        failures = invocation.failures()
        counts = invocation.counts
        self.counts.update(counts)
        _emit(
            logging.INFO,
            "invocation",
            records=len(records),
            failed_records=len(failures),
            **{key: counts[key] for key in ("translated", "acknowledged", "refused", "delivered", "not_delivered")},
            refused_by_reason={str(reason): n for reason, n in sorted(invocation.reasons.items())},
            batches=batches,
            duration_ms=round((self.clock() - started) * 1000, 1),
        )
        return {"batchItemFailures": [{"itemIdentifier": identifier} for identifier in failures]}


def _time_left(context: LambdaContext | None) -> float:
    """Seconds until Lambda stops the invocation; without a context (a local call), a generous minute."""
    if context is None:
        return 60.0
    return max(0.0, context.get_remaining_time_in_millis() / 1000)


class _ShrinkingTimeout:
    """A transport per attempt whose HTTP timeout is the invocation's time left, at most ``http_timeout``.

    So every attempt can time out before Lambda stops the invocation (which would retry the whole Kinesis batch),
    and a retry late in the invocation still gets the time that is left rather than none.
    """

    def __init__(self, factory: TransportFactory, http_timeout: float, end: float, clock: Clock) -> None:
        self._factory = factory
        self._http_timeout = http_timeout
        self._end = end
        self._clock = clock

    def send(self, batch: Sequence[TrackCall]) -> None:
        transport = self._factory(min(self._http_timeout, max(0.0, self._end - self._clock())))
        try:
            transport.send(batch)
        finally:
            transport.close()

    def close(self) -> None:
        pass


@dataclass(slots=True)
class _Record:
    index: int
    shard: str
    sequence: str
    message_ids: list[str] = field(default_factory=list)


class _KinesisBatch:
    """One invocation's records: each record's messages, its refusals, and which messages Segment accepted."""

    def __init__(self, runtime: LambdaRuntime, raw_records: list[Any]) -> None:
        self.runtime = runtime
        self.raw_records = raw_records
        self.records: list[_Record] = []
        self.calls: dict[str, TrackCall] = {}
        self.originals: dict[str, Any] = {}  # messageId -> the CloudEvent it came from, for the dead-letter file
        self.delivered: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    # -- translation ----------------------------------------------------------------------------------------

    def translate_all(self) -> None:
        for index, raw in enumerate(self.raw_records):
            self._translate(index, raw)

    def _translate(self, index: int, raw: Any) -> None:
        # Lambda hands over decoded JSON, so plain dicts; isinstance against the Mapping ABC costs ~1 µs a call.
        kinesis = raw.get("kinesis") if isinstance(raw, dict) else None
        event_id = raw.get("eventID") if isinstance(raw, dict) else None
        shard, colon, id_sequence = event_id.rpartition(":") if isinstance(event_id, str) else ("", "", "")
        if not (shard and colon):
            shard, id_sequence = "", ""  # eventID is "shardId-…:<sequenceNumber>"; anything else names nothing
        sequence = kinesis.get("sequenceNumber") if isinstance(kinesis, dict) else None
        # An empty itemIdentifier fails the whole batch, so fall back on the sequence number inside eventID.
        record = _Record(index, shard, sequence if isinstance(sequence, str) and sequence else id_sequence)
        self.records.append(record)
        data = kinesis.get("data") if isinstance(kinesis, dict) else None
        if not isinstance(data, str):
            self._refuse(
                record,
                Refusal(
                    RefusalReason.INVALID_EVENT,
                    "kinesis.data: a Kinesis record needs base64 text in kinesis.data",
                    "The event does not look like a Kinesis event; check the function's trigger.",
                ),
                raw,
            )
            return
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):  # binascii's own wording ("Only base64 data is allowed") is not for users
            self._refuse(
                record,
                Refusal(
                    RefusalReason.INVALID_EVENT,
                    "kinesis.data: not valid base64",
                    "Something other than Twilio's sink writes to this stream; find that producer.",
                ),
                data,
            )
            return
        for translation in translate_record(decoded, self.runtime.mapping):
            self.counts[translation.outcome] += 1
            if translation.track is not None:
                message_id = translation.track.message_id
                record.message_ids.append(message_id)
                # Twilio delivers at least once: the same event twice in one batch is sent once.
                self.calls.setdefault(message_id, translation.track)
                self.originals.setdefault(message_id, translation.event)
            elif translation.refusal is not None:
                self._refuse(record, translation.refusal, translation.event, counted=True)
            elif translation.outcome is Outcome.ACKNOWLEDGED:
                _emit(
                    logging.INFO,
                    "acknowledged",
                    event_type=translation.event_type,
                    event_id=translation.event_id,
                    note=translation.note,
                    test_id=_test_id(translation.event) if translation.event_type == TEST_EVENT_TYPE else None,
                    **_where(record),
                )

    def _refuse(self, record: _Record, refusal: Refusal, original: Any, *, counted: bool = False) -> None:
        if not counted:
            self.counts[Outcome.REFUSED] += 1
        self.reasons[refusal.reason] += 1
        _emit(
            logging.WARNING,
            "refused",
            reason=str(refusal.reason),
            message=refusal.message,
            hint=refusal.hint or _DEFAULT_HINT,
            event_id=refusal.event_id,
            event_type=refusal.event_type,
            **_where(record),
        )
        dead_letter = self.runtime.dead_letter
        if dead_letter is None:
            return
        try:
            dead_letter.write(refusal, original)
        except ConfigurationError as error:
            # The refusal is already logged with its shard and sequence number; failing the batch would only
            # block the shard. Say loudly that the file is not being written.
            self.counts["dead_letter_errors"] += 1
            _emit(logging.ERROR, "dead_letter_error", message=str(error), **_where(record))

    # -- delivery -------------------------------------------------------------------------------------------

    def deliver(self, end: float) -> int:
        """Deliver every message through the engine before ``end``; the number of Segment batches it took."""
        runtime = self.runtime
        if not self.calls:
            return 0
        engine = DeliveryEngine(
            _ShrinkingTimeout(runtime.transport_factory, runtime.http_timeout, end, runtime.clock),
            runtime.policy,
            max_messages=runtime.max_messages,
            max_in_flight=1,
            attempt_reserve=_MIN_ATTEMPT_SECONDS,
            sleep=runtime.sleep,
            clock=runtime.clock,
            stage=runtime.stage,
            pacer=runtime.pacer,
        )
        with EngineThread(engine, name="segment-bridge-lambda") as sender:
            outcomes = sender.deliver(self.calls.values(), deadline=end)
        failed: dict[int, list[MessageOutcome]] = {}  # by (sub-)batch: its messages share one error
        for outcome in outcomes:
            error = outcome.error
            if outcome.delivered:
                self.delivered.add(outcome.call.message_id)
                self.counts["delivered"] += 1
            elif isinstance(error, PayloadTooLargeError) and too_large_alone(error, outcome.call):
                # One message Segment will never take: retrying it would block the shard for good.
                self._too_large(outcome.call, error)
            else:
                failed.setdefault(id(error), []).append(outcome)
        for group in failed.values():
            error = group[0].error
            kind = error.kind if isinstance(error, DeliveryError) else group[0].reason or "deadline"
            delivery_error = error if isinstance(error, DeliveryError) else None
            self._not_delivered([o.call for o in group], kind, delivery_error, group[0].attempts)
        return engine.metrics.batches

    def _too_large(self, call: TrackCall, error: DeliveryError) -> None:
        self.delivered.add(call.message_id)
        self.counts["refused"] += 1
        refusal = Refusal(
            RefusalReason.MESSAGE_TOO_LARGE,
            f"Segment refused the message alone as too large (HTTP {error.status})",
            "Map fewer or smaller properties.",
            call.event_id,
            call.event_type,
        )
        record = next(r for r in self.records if call.message_id in r.message_ids)
        self._refuse(record, refusal, self.originals[call.message_id], counted=True)

    def _not_delivered(self, calls: Sequence[TrackCall], kind: str, error: DeliveryError | None, attempts: int) -> None:
        self.counts["not_delivered"] += len(calls)
        ids = {call.message_id for call in calls}
        _emit(
            logging.ERROR,
            "delivery_failed",
            kind=kind,
            status=error.status if error is not None else None,
            attempts=attempts,
            messages=len(calls),
            sequence_numbers=[r.sequence for r in self.records if ids.intersection(r.message_ids)],
        )

    # -- answer ---------------------------------------------------------------------------------------------

    def failures(self) -> list[str]:
        """Sequence numbers of the records with a message Segment did not accept, in record order."""
        identifiers: list[str] = []
        for record in self.records:
            if all(message_id in self.delivered for message_id in record.message_ids):
                continue
            if not record.sequence:
                # Without an identifier the record cannot be named; failing the whole batch is the only way to
                # have Lambda send it again.
                message = f"record {record.index} has no sequenceNumber and was not delivered: failing the batch"
                _emit(logging.ERROR, "unidentifiable_record", message=message, index=record.index)
                raise InvalidEventError(message, "Records[].kinesis.sequenceNumber")
            if record.sequence not in identifiers:
                identifiers.append(record.sequence)
        return identifiers


def _where(record: _Record) -> dict[str, Any]:
    return {"shard_id": record.shard or None, "sequence_number": record.sequence or None, "record": record.index}


def _test_id(event: Any) -> str | None:
    """The sink test event's ``test_id``, which the sink's Validate call needs (``data`` may be a JSON string)."""
    data = event.get("data") if isinstance(event, dict) else None
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    value = data.get("test_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def load_runtime(environ: Mapping[str, str]) -> LambdaRuntime:
    """Validate the configuration in ``environ`` and build the runtime.

    Raises:
        ConfigurationError: a setting is missing or wrong; the message names it, never a secret's value.
        MappingError: the mapping file is invalid.
    """
    _configure_logging(environ)
    settings = Settings.from_env(environ, require_write_key=True)
    hash_key = environ.get("SEGMENT_BRIDGE_HASH_KEY", "")
    mapping = load_mapping(settings.mapping, hash_key=hash_key.encode() if hash_key else None)
    for finding in mapping.warnings:
        _emit(logging.WARNING, "mapping_warning", source=mapping.source, message=finding)
    lookup = lookup_from_env(environ, mapping)  # checked at the cold start: a bad query fails it, in one line
    attempts = int(_number(environ, "SEGMENT_BRIDGE_MAX_ATTEMPTS", 4, 1, 20))
    backoff = _number(environ, "SEGMENT_BRIDGE_RETRY_BACKOFF", 0.5, 0, 30)
    http_timeout = _number(environ, "SEGMENT_BRIDGE_HTTP_TIMEOUT", 10, 0.5, 300)
    margin = _number(environ, "SEGMENT_BRIDGE_SAFETY_MARGIN_MS", 1500, 0, 60_000) / 1000
    batch_size = int(_number(environ, "SEGMENT_BRIDGE_BATCH_SIZE", DEFAULT_BATCH_MESSAGES, 1, MAX_BATCH_MESSAGES))
    max_rate = max_rate_setting(environ)
    write_key = settings.require_write_key()
    host = settings.host

    def transport_factory(timeout: float) -> Transport:
        return SegmentTransport(write_key, host=host, timeout=timeout)

    runtime = LambdaRuntime(
        mapping=mapping,
        transport_factory=transport_factory,
        # The invocation's deadline is the real budget; the policy's own budget only has to be no shorter.
        policy=RetryPolicy(
            max_attempts=attempts, budget_seconds=900, backoff_multiplier=backoff, jitter=backoff, backoff_max=10
        ),
        http_timeout=http_timeout,
        safety_margin=margin,
        max_messages=batch_size,
        dead_letter=_dead_letter(environ),
        stage=identity_stage(lookup),
        pacer=RatePacer(max_rate, learn=False),
    )
    _emit(
        logging.INFO,
        "cold_start",
        identity_lookup=lookup.url if lookup is not None else None,
        host=host,
        mapping=mapping.source,
        dead_letter=str(runtime.dead_letter.path) if runtime.dead_letter else None,
        max_attempts=attempts,
        http_timeout=http_timeout,
        safety_margin_ms=round(margin * 1000),
        batch_size=batch_size,
        max_rate=max_rate,
    )
    return runtime


_RUNTIME: list[LambdaRuntime] = []


def reset_runtime() -> None:
    """Forget the cached runtime, so the next invocation reads the environment again (tests, benchmarks)."""
    if _RUNTIME and _RUNTIME[0].dead_letter is not None:
        _RUNTIME[0].dead_letter.close()
    _RUNTIME.clear()
    # The libraries' loggers go back to propagating: the process may go on to log in another way (tests).
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for old in [h for h in library.handlers if isinstance(h, _StdoutLines)]:
            library.removeHandler(old)
        library.propagate = True


def _runtime() -> LambdaRuntime:
    if not _RUNTIME:
        try:
            _RUNTIME.append(load_runtime(os.environ))
        except BridgeError as error:
            # One line naming the setting; Lambda then reports the invocation failed and retries the batch.
            _emit(logging.ERROR, "configuration_error", error=type(error).__name__, message=str(error))
            raise
    return _RUNTIME[0]


def handler(event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, list[dict[str, str]]]:
    """Lambda entry point for a Kinesis event source mapping with ``ReportBatchItemFailures``.

    Args:
        event: the Kinesis event (``{"Records": [{"kinesis": {"data", "sequenceNumber", ...}, "eventID", ...}]}``).
        context: Lambda's context; ``get_remaining_time_in_millis()`` bounds delivery.

    Returns:
        ``{"batchItemFailures": [{"itemIdentifier": "<sequenceNumber>"}, ...]}``: the records whose events Segment
        did not accept (empty when all were delivered, acknowledged or refused).

    Raises:
        ConfigurationError: the environment is misconfigured (logged once as ``configuration_error``) or the event
            is not a Kinesis event.
        MappingError: the mapping file is invalid.
        InvalidEventError: an undelivered record has no sequence number, so only failing the batch retries it.
    """
    return _runtime().handle(event, context)
