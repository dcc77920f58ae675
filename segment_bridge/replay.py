"""Replay: archived events -> translate -> the delivery engine, streamed, with a resumable checkpoint.

A thin caller of :class:`segment_bridge.delivery.DeliveryEngine` (through its ``EngineThread``): it reads and
translates records lazily, hands their messages to the engine ``max_messages`` at a time, and counts each message's
outcome as it comes back. Memory stays bounded whatever the input size: at most ``concurrency`` batches' worth of
messages are with the engine at once, delivered messages are counted rather than kept, and the checkpoint window
(:class:`~segment_bridge.checkpoint.PositionWindow`) holds only positions that still have messages in flight.

Every event ends in exactly one count of :class:`ReplaySummary`: delivered (Segment answered 2xx),
acknowledged (nothing to send, e.g. the sink test event), refused (by the core, with a reason) or failed (its
batch was not accepted after retries). Refused and failed events go to the dead-letter file when one is given.

**Checkpoint.** A position (``file index, line``) is *resolved* once every event read from it is delivered,
refused, acknowledged, or failed and written to the dead-letter file. :class:`Checkpoint` stores the last position
up to which everything is resolved, plus the last position read and the unresolved positions before it (those in
flight or waiting in a batch: :class:`ResumePoint`), atomically (temporary file + ``os.replace``), every
``interval`` seconds, every ``concurrency`` x ``max_messages`` messages resolved, and at the end. A replay killed
at any moment (even ``SIGKILL``) and run again with the same checkpoint skips only resolved positions, so it loses
nothing; it re-sends what was in flight or resolved since the last save (at most 2 x ``concurrency`` x
``max_messages`` messages, however long one batch was held in retries), which Segment deduplicates by
``messageId``. A failed event with no dead-letter file never resolves, so the checkpoint lists it as unresolved
and the next run tries it again.

No argument parsing or printing here: the CLI draws progress through the ``progress`` hook and maps
:attr:`ReplaySummary.exit_code` to its exit status.

Over 500 lines for a reason: :func:`replay` is one loop (read, count, hand over, settle, checkpoint) whose closures
share its state; the checkpoint lives in :mod:`segment_bridge.checkpoint` and delivery in the engine.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any, BinaryIO

from segment_bridge.checkpoint import (
    CHECKPOINT_HEAD_BYTES,
    Checkpoint,
    InputHead,
    Position,
    PositionSlot,
    PositionWindow,
    ResumePoint,
    is_regular_file,
)
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.delivery import (
    DEFAULT_BATCH_MESSAGES,
    BatchStage,
    Clock,
    DeliveryEngine,
    EngineThread,
    MessageOutcome,
    MessageStatus,
    Pacer,
    RetryPolicy,
    Sleep,
    Transport,
    failure_refusal,
)
from segment_bridge.exceptions import ConfigurationError, DeliveryError
from segment_bridge.mapping import CompiledMapping
from segment_bridge.outcomes import Refusal, RefusalReason, Translation
from segment_bridge.sources import Record, iter_records
from segment_bridge.track import MAX_BATCH_BYTES, TrackCall
from segment_bridge.translate import translate_record

__all__ = [
    "CHECKPOINT_HEAD_BYTES",
    "DEFAULT_IDLE_FLUSH",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREADABLE",
    "Checkpoint",
    "InputHead",
    "Position",
    "RecordTranslations",
    "ReplaySummary",
    "ResumePoint",
    "is_regular_file",
    "replay",
    "replay_files",
]


EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREADABLE = 2
EXIT_FAILED = 3

_PROGRESS_EVERY = 1_000  # records between progress calls when no batch completes (e.g. all refused)
#: Seconds without a new record after which a pipe's partial batch is sent (``tail -f archive | replay -``).
DEFAULT_IDLE_FLUSH = 1.0


@dataclass(slots=True)
class ReplaySummary:
    """Counts of a replay, updated as it runs (the ``progress`` hook receives this object).

    Attributes:
        records: input positions read (after the checkpoint).
        skipped: input positions skipped because the checkpoint says they were done.
        events: events read from those records.
        delivered: messages Segment accepted.
        acknowledged: events with nothing to send (the sink test event).
        refused: events refused by the core, by reason.
        failed: messages whose batch Segment did not accept after retries (``delivery_failed``).
        batches: requests' worth of batches finished, split halves included.
        failed_batches: batches that failed for good.
        dead_lettered: records written to the dead-letter file.
        checkpoint: the last position up to which everything is resolved, or ``None``.
        interrupted: the replay was stopped (``stop``) before the end of its input.
        read_error: why reading the input stopped early (``cannot read NAME: ...``), or ``None``; what was read
            before was still delivered, refused or dead-lettered.
    """

    records: int = 0
    skipped: int = 0
    events: int = 0
    delivered: int = 0
    acknowledged: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    batches: int = 0
    failed_batches: int = 0
    dead_lettered: int = 0
    checkpoint: Position | None = None
    read_error: str | None = None
    interrupted: bool = False

    @property
    def refused_total(self) -> int:
        """Events refused by the core, all reasons together."""
        return sum(self.refused.values())

    @property
    def exit_code(self) -> int:
        """The exit status: 2, 3, 1 or 0.

        2 when the input could not be read to its end, else 3 when any batch failed for good, else 1 when any event
        was refused, else 0.
        """
        if self.read_error is not None:
            return EXIT_UNREADABLE
        if self.failed_batches:
            return EXIT_FAILED
        if self.refused_total:
            return EXIT_REFUSED
        return EXIT_OK


@dataclass(slots=True)
class _Pending:
    """Messages handed to the engine together, each with its translation (dead-letter records) and position."""

    calls: list[TrackCall] = field(default_factory=list)
    translations: list[Translation] = field(default_factory=list)
    slots: list[PositionSlot] = field(default_factory=list)


_Item = tuple[Position, Translation]


def _marking_idle(items: Iterable[_Item], idle: float) -> Iterator[_Item | None]:
    """Yield ``items``, and ``None`` each time none has arrived for ``idle`` seconds.

    A pipe that trickles would otherwise leave its events in a partial batch until enough arrive or the input
    ends. The items are read (and translated) on a thread of their own, through a small bounded queue.
    """
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=256)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> None:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return
            except Full:
                continue

    def read() -> None:
        try:
            for item in items:
                put((True, item))
                if stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, which raises it in its own thread
            put((False, error))
            return
        put((False, None))

    # A daemon: a read blocked on an idle pipe must not keep the process alive after the replay has stopped.
    reader = threading.Thread(target=read, name="segment-bridge-replay-reader", daemon=True)
    reader.start()
    try:
        while True:
            try:
                is_item, value = queue.get(timeout=idle)
            except Empty:
                yield None
                continue
            if is_item:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        stop.set()


def replay(
    items: Iterable[_Item],
    transport: Transport,
    *,
    policy: RetryPolicy | None = None,
    concurrency: int = 4,
    max_messages: int = DEFAULT_BATCH_MESSAGES,
    max_bytes: int = MAX_BATCH_BYTES,
    dead_letter: DeadLetterWriter | None = None,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[ReplaySummary], None] | None = None,
    on_refusal: Callable[[Position, Refusal], None] | None = None,
    on_failure: Callable[[Position, Refusal], None] | None = None,
    idle_flush: float | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    summary: ReplaySummary | None = None,
    stop: threading.Event | None = None,
    stage: BatchStage | None = None,
    pacer: Pacer | None = None,
) -> ReplaySummary:
    """Deliver the translations of an input stream, ``concurrency`` batches at a time.

    Args:
        items: ``(position, translation)`` pairs in input order; one position may carry several translations
            (a JSON array). Items at or before the checkpoint's saved position are skipped.
        transport: where batches go (Segment, dry run, file).
        policy: retries per batch.
        concurrency: most batches in flight at once (threads).
        max_messages: most messages per batch.
        max_bytes: most serialized message bytes per batch.
        dead_letter: where refused and failed events are recorded; without one, failed events hold the
            checkpoint back so a later run retries them.
        checkpoint: resume point, loaded first and saved as positions resolve.
        progress: called with the live summary after each finished batch and every 1,000 records.
        on_refusal: called with the position and refusal of each event the core refuses (not delivery failures),
            so the caller can report it as it happens.
        on_failure: called with the position and ``delivery_failed`` refusal of each message Segment did not
            accept, so each failure has a trace even without a dead-letter file.
        idle_flush: for inputs that trickle (a pipe): seconds without a new item after which the partial batch
            is sent and finished batches are settled; ``None`` waits for a full batch or the end of the input.
        sleep: how retries wait (tests inject a recorder).
        clock: monotonic seconds for the retry budget.
        summary: the counts to update, so that a caller still has them when the replay is interrupted.
        stop: once set, no more input is read or sent; the batches in flight finish and are counted, the checkpoint
            is saved, and ``summary.interrupted`` is set. (A signal handler can set it: a ``KeyboardInterrupt``
            raised at any point of a threaded program may land inside the threading machinery itself.)
        stage: runs on each batch right before it is sent (the identity lookup); a message it fails is not sent,
            and is dead-lettered (or kept for the next run) with the stage's reason.
        pacer: the events/s limit and shared back-off after a 429 (a
            :class:`~segment_bridge.delivery.RatePacer`); none: unpaced.

    Returns:
        The final counts; ``summary.checkpoint`` is the last resolved position. When the input cannot be read to
        its end (:class:`ConfigurationError` from ``items``), what was read is still settled and
        ``summary.read_error`` says why reading stopped.

    Raises:
        ConfigurationError: the checkpoint or dead-letter file cannot be read or written.
        KeyboardInterrupt: after the batches already finished are counted and the checkpoint saved.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not 1 <= max_messages <= 2_500:
        raise ValueError("max_messages must be between 1 and 2500")
    summary = summary if summary is not None else ReplaySummary()
    items = _until_read_error(items, summary)
    resume = checkpoint.load() if checkpoint is not None else None
    point = checkpoint.resume if checkpoint is not None else None
    summary.checkpoint = resume
    window = PositionWindow()
    in_flight: dict[Future[list[MessageOutcome]], _Pending] = {}
    outstanding = 0  # messages submitted to the engine and not settled here yet
    current = _Pending()
    slot: PositionSlot | None = None
    # Saving after this many messages resolved, besides every ``interval`` seconds, bounds what a SIGKILL loses to
    # about one more window of batches in flight, however fast they go.
    save_every = concurrency * max_messages
    # Unresolved positions a checkpoint lists: those in flight, in the batch being filled, and the one being read.
    pending_limit = (concurrency + 1) * max_messages + 1
    unsaved = 0
    last_seen: Position = (0, 0)
    # The engine's worker threads come from this pool (a name of this module, so a test can run them itself).
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="segment-bridge-replay")
    engine = DeliveryEngine(
        transport,
        policy,
        max_messages=max_messages,
        max_bytes=max_bytes,
        max_in_flight=concurrency,
        sleep=sleep,
        clock=clock,
        executor=pool,
        share_duplicates=False,
        stage=stage,
        pacer=pacer,
    )
    sender = EngineThread(engine, name="segment-bridge-replay-engine")

    def save_checkpoint(*, force: bool = False) -> None:
        nonlocal unsaved
        if checkpoint is None or not (force or unsaved >= save_every or checkpoint.due()):
            return
        # (0, 0) comes before every position: nothing is done at the front yet, but maybe much after it.
        base = window.resolved or resume or (0, 0)
        ahead = window.ahead(pending_limit)
        through, pending = ahead if ahead is not None else (base, [])
        if point is not None and point.through > through and len(pending) < pending_limit:
            # This run has not read as far as the last one had finished: what that one had done still is.
            pending = pending + [p for p in point.pending if p > last_seen]
            through = point.through
        checkpoint.save(base, force=True, ahead=ResumePoint(base, through, frozenset(pending)))
        unsaved = 0

    def settle(done: Iterable[Future[list[MessageOutcome]]]) -> None:
        nonlocal unsaved, outstanding
        for future in done:
            chunk = in_flight.pop(future)
            outstanding -= len(chunk.calls)
            _count(chunk, future.result(), summary, dead_letter, on_failure)
            unsaved += len(chunk.calls)
        summary.batches = engine.metrics.batches
        summary.failed_batches = engine.metrics.failed_batches
        position = window.advance()
        if position is not None:
            summary.checkpoint = position
        save_checkpoint()
        if progress is not None:
            progress(summary)

    def settle_finished() -> None:
        settle([f for f in list(in_flight) if f.done()])

    def submit(chunk: _Pending, *, flush: bool = False) -> None:
        nonlocal outstanding
        # Bounded: at most ``concurrency`` batches' worth of messages are with the engine at once.
        while in_flight and outstanding + len(chunk.calls) > concurrency * max_messages:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            settle(done)
        in_flight[sender.submit(chunk.calls, flush=flush)] = chunk
        outstanding += len(chunk.calls)

    stream: Iterable[_Item | None] = items if idle_flush is None else _marking_idle(items, idle_flush)
    try:
        for item in stream:
            if stop is not None and stop.is_set():
                summary.interrupted = True
                break
            if item is None:  # the input is idle: send what waits, settle what finished
                if current.calls:
                    submit(current, flush=True)
                    current = _Pending()
                settle_finished()
                continue
            position, translation = item
            last_seen = position
            if point is not None and point.done(position):
                if slot is None or slot.position != position:
                    summary.skipped += 1
                    slot = PositionSlot(position)  # a throwaway marker so each skipped position counts once
                continue
            if slot is None or slot.position != position:
                slot = window.open(position)
                summary.records += 1
                if progress is not None and summary.records % _PROGRESS_EVERY == 0:
                    if in_flight:
                        settle_finished()
                    else:
                        progress(summary)
            summary.events += 1
            call = translation.track
            if call is not None:
                if len(current.calls) >= max_messages:
                    # Handed over when the next message is read, not as soon as it is full: the position being read
                    # is open by then, as the checkpoint's re-send bound assumes (README, replay).
                    submit(current)
                    current = _Pending()
                current.calls.append(call)
                current.translations.append(translation)  # its event is decoded only for a dead-letter record
                current.slots.append(slot)
                slot.pending += 1
            elif translation.refusal is not None:
                summary.refused[str(translation.refusal.reason)] += 1
                if on_refusal is not None:
                    on_refusal(position, translation.refusal)
                if dead_letter is not None:
                    dead_letter.write(translation.refusal, translation.event)
                    summary.dead_lettered += 1
            else:
                summary.acknowledged += 1
        # Ctrl-C as the input ended counts too: the user asked to stop, and is told so.
        summary.interrupted = stop is not None and stop.is_set()
        # Stopped, the partial batch is not sent and the last position read stays open (the rest of its events
        # may not have been read), so the checkpoint stops before them.
        if not summary.interrupted:
            if current.calls:
                submit(current, flush=True)
                current = _Pending()
            window.finish()
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            settle(done)
    except KeyboardInterrupt:
        # Stop sending; count what Segment already answered, so the summary and checkpoint include it. What was
        # still queued comes back timed out, unresolved.
        sender.close(abandon=True)
        settle([f for f in list(in_flight) if f.done()])
        raise
    finally:
        # On an error or interrupt, stop sending; what was resolved so far is still saved below.
        sender.close(abandon=True)
        pool.shutdown(wait=True, cancel_futures=True)
        final = window.advance()
        if final is not None:
            summary.checkpoint = final
        save_checkpoint(force=True)
    if progress is not None:
        progress(summary)
    return summary


def _until_read_error(items: Iterable[_Item], summary: ReplaySummary) -> Iterator[_Item]:
    """``items`` until one cannot be read: the error goes in ``summary.read_error`` and the input ends there."""
    try:
        yield from items
    except ConfigurationError as error:
        summary.read_error = str(error)


def _count(
    chunk: _Pending,
    outcomes: Sequence[MessageOutcome],
    summary: ReplaySummary,
    dead_letter: DeadLetterWriter | None,
    on_failure: Callable[[Position, Refusal], None] | None = None,
) -> None:
    """Count a chunk's outcomes and release its messages' positions as they resolve."""
    for index, outcome in enumerate(outcomes):
        slot = chunk.slots[index]
        if outcome.delivered:
            summary.delivered += 1
            slot.pending -= 1
            continue
        if outcome.status is MessageStatus.TIMED_OUT:
            continue  # not sent (the replay was interrupted): unresolved, so the next run sends it
        summary.failed += 1
        refusal = _failure(outcome)
        if on_failure is not None:
            on_failure(slot.position, refusal)
        if dead_letter is None:
            continue  # unresolved on purpose: the checkpoint must not pass an event with no record
        dead_letter.write(refusal, chunk.translations[index].event)
        summary.dead_lettered += 1
        slot.pending -= 1


def _failure(outcome: MessageOutcome) -> Refusal:
    """The ``delivery_failed`` refusal of a message the engine could not deliver."""
    error = outcome.error
    if outcome.reason is not None and error is not None:
        # The batch stage kept it back (the identity lookup failed, with on_error = "retry"): its words, not HTTP's.
        return Refusal(
            RefusalReason.DELIVERY_FAILED,
            f"not delivered: {error}",
            "Not sent: replay the event from the dead-letter file once the customer database answers.",
            outcome.call.event_id,
            outcome.call.event_type,
        )
    if isinstance(error, DeliveryError):
        return failure_refusal(outcome.call, error, outcome.attempts)
    return Refusal(
        RefusalReason.DELIVERY_FAILED,
        f"not delivered: {outcome.reason or type(error).__name__}",
        "Replay the event later from the dead-letter file.",
        outcome.call.event_id,
        outcome.call.event_type,
    )


class RecordTranslations:
    """Translate input records lazily into ``(position, translation)`` pairs for :func:`replay`.

    Records at or before ``after`` are skipped *before* translation, so resuming a long replay is quick;
    :attr:`skipped` counts them.

    Args:
        records: input records, e.g. from :func:`segment_bridge.sources.iter_records`.
        mapping: the compiled mapping.
        after: skip records at or before this position.
    """

    def __init__(
        self, records: Iterable[Record], mapping: CompiledMapping, *, after: Position | ResumePoint | None = None
    ):
        self._records = records
        self._mapping = mapping
        self.after = after
        self.skipped = 0

    def __iter__(self) -> Iterator[tuple[Position, Translation]]:
        after = self.after
        done = after.done if isinstance(after, ResumePoint) else None
        for record in self._records:
            position = record.position
            if done is not None and done(position):
                self.skipped += 1
                continue
            if isinstance(after, tuple) and position <= after:
                self.skipped += 1
                continue
            for translation in translate_record(record.raw, self._mapping):
                yield position, translation


def replay_files(
    names: Sequence[str],
    mapping: CompiledMapping,
    transport: Transport,
    *,
    checkpoint_path: str | Path | None = None,
    checkpoint_interval: float = 0.5,
    dead_letter: DeadLetterWriter | None = None,
    on_open: Callable[[int, BinaryIO], None] | None = None,
    **options: Any,
) -> ReplaySummary:
    """Replay archived CloudEvent files (JSON or JSON Lines, ``.gz``, ``-`` for stdin) through ``transport``.

    Args:
        names: input paths in order; their names and the fingerprints of their first bytes key the checkpoint.
        mapping: the compiled mapping.
        transport: where batches go.
        checkpoint_path: resume from and save to this checkpoint file.
        checkpoint_interval: least seconds between two checkpoint saves (the final save always happens).
        dead_letter: where refused and failed events go.
        on_open: called with each input's index and file as opened, before decompression (a progress display
            reads how far into its bytes on disk reading got); see :func:`~segment_bridge.sources.iter_records`.
        **options: passed on to :func:`replay` (``policy``, ``concurrency``, ``progress``, ...). ``idle_flush``
            defaults to :data:`DEFAULT_IDLE_FLUSH` when an input is standard input or another non-regular file.

    Returns:
        The summary, ``skipped`` included.
    """
    streams = [name for name in names if not is_regular_file(name)]
    if "idle_flush" not in options and streams:
        options["idle_flush"] = DEFAULT_IDLE_FLUSH
    checkpoint = None
    if checkpoint_path is not None:
        if streams:
            shown = "standard input" if streams[0] == "-" else f"{streams[0]} (a pipe, not a regular file)"
            raise ConfigurationError(f"--checkpoint needs regular input files: {shown} cannot be resumed")
        heads = [head for head in map(InputHead.of, names) if head is not None]
        checkpoint = Checkpoint(checkpoint_path, key="\n".join(names), heads=heads, interval=checkpoint_interval)
    after: Position | ResumePoint | None = checkpoint.load() if checkpoint is not None else None
    if checkpoint is not None and checkpoint.resume is not None:
        after = checkpoint.resume
    source = RecordTranslations(iter_records(names, on_open), mapping, after=after)
    summary = options.pop("summary", None) or ReplaySummary()
    try:
        replay(source, transport, checkpoint=checkpoint, dead_letter=dead_letter, summary=summary, **options)
    finally:
        summary.skipped += source.skipped
    return summary
