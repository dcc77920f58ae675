"""The replay engine: archived events -> translate -> batches -> delivery, streamed, with a resumable checkpoint.

Memory stays bounded whatever the input size: records are read lazily, at most ``concurrency`` batches are in
flight, delivered messages are counted rather than kept, and the checkpoint window holds only positions that still
have messages in flight.

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
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any

import orjson

from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.delivery import (
    DEFAULT_BATCH_MESSAGES,
    BatchResult,
    Clock,
    RetryPolicy,
    Sleep,
    Transport,
    failure_refusal,
    send_batch,
)
from segment_bridge.exceptions import ConfigurationError
from segment_bridge.mapping import CompiledMapping
from segment_bridge.outcomes import Refusal, Translation
from segment_bridge.sources import Record, iter_records
from segment_bridge.track import MAX_BATCH_BYTES, TrackCall, batch_growth
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

#: A place in the input: (file index, 1-based line), plus the byte column for a value that does not open its line
#: (values sharing a line, as in a Firehose archive); see ``sources.Record.position``. Positions only grow along
#: the input.
Position = tuple[int, ...]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREADABLE = 2
EXIT_FAILED = 3

_PROGRESS_EVERY = 1_000  # records between progress calls when no batch completes (e.g. all refused)
#: Seconds without a new record after which a pipe's partial batch is sent (``tail -f archive | replay -``).
DEFAULT_IDLE_FLUSH = 1.0
_CHECKPOINT_VERSION = 1


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


#: Bytes at the start of each input that a checkpoint fingerprints: enough to tell a rewritten file from the one
#: the checkpoint was written for, and cheap to read again at every start.
CHECKPOINT_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class InputHead:
    """The fingerprint of one input's first bytes, so a checkpoint never resumes into a different file.

    Only the head is hashed: an archive that grows by appending keeps its checkpoint (the first ``size`` bytes
    are unchanged), while a file rewritten under the same name is caught.
    """

    name: str
    size: int
    sha256: str

    @classmethod
    def of(cls, name: str, limit: int = CHECKPOINT_HEAD_BYTES) -> InputHead | None:
        """Fingerprint ``name``'s first ``limit`` bytes; ``None`` when it cannot be read (reading reports it)."""
        if not is_regular_file(name):
            return None  # reading a pipe here would take its first bytes away from the replay
        try:
            with open(name, "rb") as file:
                head = file.read(limit)
        except OSError:
            return None
        return cls(name, len(head), hashlib.sha256(head).hexdigest())

    def matches(self) -> bool:
        """Whether the file now starts with the bytes it started with when fingerprinted."""
        now = InputHead.of(self.name, self.size)
        return now is not None and now.size == self.size and now.sha256 == self.sha256


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """What a checkpoint says is done: up to ``position`` everything, up to ``through`` all but ``pending``.

    ``pending`` are the positions still in flight, or waiting in a batch, when it was saved. With ``position``
    alone, a batch held in retries would hold back everything read after it, and a resumed run would send all of
    that again; with the positions after it that finished, a resume re-sends about what was in flight.
    """

    position: Position
    through: Position
    pending: frozenset[Position] = frozenset()

    def done(self, position: Position) -> bool:
        """Whether ``position`` was resolved in the run that saved this point."""
        return position <= self.position or (position <= self.through and position not in self.pending)


def _position(parts: Any) -> Position:
    """A position read from a checkpoint file: ``(file, line)`` or ``(file, line, column)``, all whole numbers."""
    if not isinstance(parts, list) or len(parts) not in (2, 3):
        raise ValueError("a position is 2 or 3 numbers")
    return tuple(int(part) for part in parts)


class Checkpoint:
    """A replay's resume point in a small JSON file, replaced atomically.

    Args:
        path: the checkpoint file.
        key: identifies the inputs (e.g. their names); a checkpoint written for other inputs is refused.
        heads: fingerprints of the inputs' first bytes; a checkpoint whose inputs now start differently is
            refused, since its position would point into other data and skip events never sent.
        interval: least seconds between two saves during a run (the final save always happens).
        clock: monotonic seconds, for the interval.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: str = "",
        heads: Sequence[InputHead] = (),
        interval: float = 0.5,
        clock: Clock = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.heads = tuple(heads)
        self.interval = interval
        self._clock = clock
        self._saved: Position | ResumePoint | None = None
        self._last_save = float("-inf")
        #: What the loaded checkpoint says is done, beyond :meth:`load`'s position (``None`` before a load).
        self.resume: ResumePoint | None = None

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"

    def load(self) -> Position | None:
        """The saved position, or ``None`` when there is no checkpoint yet.

        Raises:
            ConfigurationError: the file is unreadable, malformed, was written for other inputs, or an input
                no longer starts with the bytes it had when the checkpoint was written.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigurationError(f"cannot read checkpoint {str(self.path)!r}: {exc.strerror}") from None
        try:
            data = orjson.loads(raw)
            loaded = _position(data["position"])
            key = str(data.get("key", ""))
            # Checkpoints written before fingerprints existed have none: they resume as they always did.
            heads = [InputHead(str(h["name"]), int(h["size"]), str(h["sha256"])) for h in data.get("heads", [])]
            # ... nor do those written before the positions done past the first unfinished one were kept.
            through = _position(data["through"]) if "through" in data else loaded
            resume = ResumePoint(loaded, max(loaded, through), frozenset(_position(p) for p in data.get("pending", [])))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            raise ConfigurationError(f"checkpoint {str(self.path)!r} is not a segment-bridge checkpoint") from None
        if key != self.key:
            raise ConfigurationError(
                f"checkpoint {str(self.path)!r} was written for other inputs; remove it to start over"
            )
        for head in heads:
            if not head.matches():
                raise ConfigurationError(
                    f"{head.name!r} changed since checkpoint {str(self.path)!r} was written (its first {head.size} "
                    "bytes differ): resuming would skip events never sent; remove the checkpoint to start over"
                )
        self._saved = loaded
        self.resume = resume
        return loaded

    def due(self) -> bool:
        """Whether :meth:`save` without ``force`` would write now (the interval since the last save has passed)."""
        return self._clock() - self._last_save >= self.interval

    def save(self, position: Position, *, force: bool = False, ahead: ResumePoint | None = None) -> bool:
        """Store ``position`` unless it is already stored or the last save is too recent; say if it wrote.

        ``ahead``, when given, also records the positions after ``position`` already done (its ``through`` minus
        its ``pending``); its own ``position`` is ignored.

        The temporary file is flushed to disk before it replaces the old one, so the checkpoint on disk is
        always a complete file, old or new, even after a power cut.
        """
        state: Position | ResumePoint = position
        if ahead is not None and ahead.through > position:
            state = ResumePoint(position, ahead.through, ahead.pending)
        if state == self._saved:
            return False
        now = self._clock()
        if not force and now - self._last_save < self.interval:
            return False
        heads = [{"name": h.name, "size": h.size, "sha256": h.sha256} for h in self.heads]
        content: dict[str, Any] = {
            "version": _CHECKPOINT_VERSION,
            "key": self.key,
            "heads": heads,
            "position": list(position),
        }
        if isinstance(state, ResumePoint):
            content["through"] = list(state.through)
            content["pending"] = sorted(map(list, state.pending))
        data = orjson.dumps(content)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ConfigurationError(f"cannot write checkpoint {str(self.path)!r}: {exc.strerror}") from None
        self._saved = state
        self._last_save = now
        return True


class _Slot:
    """One input position in the checkpoint window: how many of its messages are still unresolved."""

    __slots__ = ("complete", "pending", "position")

    def __init__(self, position: Position) -> None:
        self.position = position
        self.pending = 0
        self.complete = False  # every event of this position has been read


class _Window:
    """Positions not yet known to be resolved, in input order; the front ones resolve the checkpoint.

    Between two positions with pending messages at most one resolved position is kept (the last of a run),
    so the window is bounded by the messages in flight, not by the input.
    """

    def __init__(self) -> None:
        self._slots: deque[_Slot] = deque()
        self.resolved: Position | None = None

    def open(self, position: Position) -> _Slot:
        self._close_tail()
        slot = _Slot(position)
        self._slots.append(slot)
        return slot

    def finish(self) -> None:
        self._close_tail()
        self.advance()

    def _close_tail(self) -> None:
        if not self._slots:
            return
        tail = self._slots[-1]
        tail.complete = True
        if tail.pending == 0 and len(self._slots) >= 2:
            before = self._slots[-2]
            if before.complete and before.pending == 0:
                # A run of resolved positions: only its last matters for the checkpoint.
                before.position = tail.position
                self._slots.pop()

    def advance(self) -> Position | None:
        while self._slots and self._slots[0].complete and self._slots[0].pending == 0:
            self.resolved = self._slots.popleft().position
        return self.resolved

    def ahead(self, limit: int) -> tuple[Position, list[Position]] | None:
        """The last position read and the unresolved positions up to it (at most ``limit`` of them).

        Every position in the window that is not unresolved is resolved, and so is every position between two
        of them that the window no longer holds (it was collapsed into a run of resolved ones). Past ``limit``
        unresolved positions (failures kept for the next run, with no dead-letter file), the answer stops at the
        last one listed: what follows it is not claimed, so it is sent again.
        """
        if not self._slots:
            return None
        pending: list[Position] = []
        for slot in self._slots:
            if slot.pending or not slot.complete:
                if len(pending) == limit:
                    return pending[-1], pending
                pending.append(slot.position)
        return self._slots[-1].position, pending


@dataclass(slots=True)
class _Pending:
    """A batch in flight: each message with the original event (for dead-letter records) and its slot."""

    calls: list[TrackCall] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    slots: list[_Slot] = field(default_factory=list)
    size: int = 0


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
    policy = policy if policy is not None else RetryPolicy()
    summary = summary if summary is not None else ReplaySummary()
    items = _until_read_error(items, summary)
    resume = checkpoint.load() if checkpoint is not None else None
    point = checkpoint.resume if checkpoint is not None else None
    summary.checkpoint = resume
    window = _Window()
    in_flight: dict[Future[list[BatchResult]], _Pending] = {}
    current = _Pending()
    slot: _Slot | None = None
    # Saving after this many messages resolved, besides every ``interval`` seconds, bounds what a SIGKILL loses to
    # about one more window of batches in flight, however fast they go.
    save_every = concurrency * max_messages
    # Unresolved positions a checkpoint lists: those in flight, in the batch being filled, and the one being read.
    pending_limit = (concurrency + 1) * max_messages + 1
    unsaved = 0
    last_seen: Position = (0, 0)

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

    def settle(done: Iterable[Future[list[BatchResult]]]) -> None:
        nonlocal unsaved
        for future in done:
            pending = in_flight.pop(future)
            _settle(pending, future.result(), summary, dead_letter, on_failure)
            unsaved += len(pending.calls)
        position = window.advance()
        if position is not None:
            summary.checkpoint = position
        save_checkpoint()
        if progress is not None:
            progress(summary)

    def settle_finished() -> None:
        settle([f for f in list(in_flight) if f.done()])

    def submit(pool: ThreadPoolExecutor, batch: _Pending) -> None:
        # Bounded in-flight batches: wait for one to finish before sending another.
        while len(in_flight) >= concurrency:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            settle(done)
        # The batch is registered before the pool sees it: Ctrl-C may land inside pool.submit (which can wait for
        # a thread to start) after the batch was handed over, and a batch sent must still be counted.
        future: Future[list[BatchResult]] = Future()
        in_flight[future] = batch
        pool.submit(_run_into, future, lambda: send_batch(transport, batch.calls, policy, sleep=sleep, clock=clock))

    stream: Iterable[_Item | None] = items if idle_flush is None else _marking_idle(items, idle_flush)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="segment-bridge-replay") as pool:
        try:
            for item in stream:
                if stop is not None and stop.is_set():
                    summary.interrupted = True
                    break
                if item is None:  # the input is idle: send what waits, settle what finished
                    if current.calls:
                        submit(pool, current)
                        current = _Pending()
                    settle_finished()
                    continue
                position, translation = item
                last_seen = position
                if point is not None and point.done(position):
                    if slot is None or slot.position != position:
                        summary.skipped += 1
                        slot = _Slot(position)  # a throwaway marker so each skipped position counts once
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
                    added = batch_growth(len(current.calls), current.size, call, max_messages, max_bytes)
                    if added is None:
                        submit(pool, current)
                        current, added = _Pending(), call.size
                    current.calls.append(call)
                    current.events.append(translation.event)
                    current.slots.append(slot)
                    current.size += added
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
                    submit(pool, current)
                    current = _Pending()
                window.finish()
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                settle(done)
        except KeyboardInterrupt:
            # Stop sending; count what Segment already answered, so the summary and checkpoint include it.
            pool.shutdown(wait=True, cancel_futures=True)
            settle([f for f in list(in_flight) if f.done() and not f.cancelled()])
            raise
        finally:
            # On an error or interrupt, stop sending; what was resolved so far is still saved below.
            pool.shutdown(wait=True, cancel_futures=True)
            final = window.advance()
            if final is not None:
                summary.checkpoint = final
            save_checkpoint(force=True)
    if progress is not None:
        progress(summary)
    return summary


def _run_into(future: Future[list[BatchResult]], work: Callable[[], list[BatchResult]]) -> None:
    """Run ``work`` on a pool thread and settle ``future`` with its result."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = work()
    except BaseException as error:  # handed to the thread that waits on the future, as the pool's own would
        future.set_exception(error)
    else:
        future.set_result(result)


def _until_read_error(items: Iterable[_Item], summary: ReplaySummary) -> Iterator[_Item]:
    """``items`` until one cannot be read: the error goes in ``summary.read_error`` and the input ends there."""
    try:
        yield from items
    except ConfigurationError as error:
        summary.read_error = str(error)


def _settle(
    pending: _Pending,
    results: Sequence[BatchResult],
    summary: ReplaySummary,
    dead_letter: DeadLetterWriter | None,
    on_failure: Callable[[Position, Refusal], None] | None = None,
) -> None:
    """Count a finished batch's outcomes and release its messages' slots."""
    index = {id(call): i for i, call in enumerate(pending.calls)}
    for result in results:
        summary.batches += 1
        if result.error is None:
            summary.delivered += len(result.calls)
            for call in result.calls:
                pending.slots[index[id(call)]].pending -= 1
            continue
        summary.failed_batches += 1
        summary.failed += len(result.calls)
        for call in result.calls:
            i = index[id(call)]
            refusal = failure_refusal(call, result.error, result.attempts)
            if on_failure is not None:
                on_failure(pending.slots[i].position, refusal)
            if dead_letter is None:
                continue  # unresolved on purpose: the checkpoint must not pass an event with no record
            dead_letter.write(refusal, pending.events[i])
            summary.dead_lettered += 1
            pending.slots[i].pending -= 1


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


def is_regular_file(name: str) -> bool:
    """Whether ``name`` is a regular file (``True`` when it cannot be examined: reading it reports that).

    Standard input (``-``), a FIFO or a process substitution (``<(...)``) is read once and may trickle; a regular
    file can be read again and never waits for a writer.
    """
    if name == "-":
        return False
    try:
        return stat.S_ISREG(os.stat(name).st_mode)
    except OSError:
        return True  # reading it reports the problem


def replay_files(
    names: Sequence[str],
    mapping: CompiledMapping,
    transport: Transport,
    *,
    checkpoint_path: str | Path | None = None,
    checkpoint_interval: float = 0.5,
    dead_letter: DeadLetterWriter | None = None,
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
    source = RecordTranslations(iter_records(names), mapping, after=after)
    summary = options.pop("summary", None) or ReplaySummary()
    try:
        replay(source, transport, checkpoint=checkpoint, dead_letter=dead_letter, summary=summary, **options)
    finally:
        summary.skipped += source.skipped
    return summary
