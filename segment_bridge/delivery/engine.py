"""The delivery engine: the one path from track calls to Segment that ``serve``, ``replay`` and the Lambda share.

:class:`DeliveryEngine` takes the messages of any number of concurrent callers (``await engine.submit(calls,
deadline)``), groups them into Segment batches within the message and byte limits, posts at most
``max_in_flight`` batches at a time (each on a worker thread: transports are synchronous), retries each batch
through the :class:`~segment_bridge.delivery.retry.RetryPolicy` (splitting it on "too large"), and hands each caller
back one :class:`MessageOutcome` per message it submitted: delivered, failed (with the error and the attempts) or
timed out (its deadline passed before it settled, or no request for it could start before the deadline).

**Group commit.** A full batch goes at once; a partial one waits ``linger`` for company when nothing is in flight,
and at most ``max_linger`` while batches are in flight (their completion sends it sooner), so under load one Segment
request carries many callers' messages. ``submit(..., flush=True)`` sends what it added without lingering (the end
of a replay, a Lambda invocation). Each caller awaits only its own messages; a message already waiting or in flight
(same ``messageId``) shares the first one's outcome. A caller whose deadline passes gets ``TIMED_OUT`` for what is
unsettled; those messages stay queued and are still sent (Segment deduplicates by ``messageId``).

**Synchronous callers** (``replay``, the Lambda) use :class:`EngineThread`, which runs an engine on an event loop of
its own thread and returns ``concurrent.futures.Future`` s.

**Hooks** and outcomes are in :mod:`segment_bridge.delivery.hooks`: a ``Pacer`` awaited before every request and
told of every 429, a ``BatchStage`` run on each batch right before it is sent, and ``EngineMetrics``.

Over 500 lines for a reason: :class:`DeliveryEngine` is one state machine (the queue, the linger timer, the slots in
flight, the deadlines, settling) whose methods share that state; what holds none is elsewhere (outcomes and hooks in
:mod:`.hooks`, one batch's retries and splits in :mod:`.batches`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import inspect
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from segment_bridge.delivery.batches import (
    DEFAULT_BATCH_MESSAGES,
    BatchResult,
    BeforeAttempt,
    send_batch,
)
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
from segment_bridge.delivery.retry import Clock, RetryPolicy, Sleep
from segment_bridge.delivery.transports import Transport
from segment_bridge.exceptions import DeliveryError, RetryableDeliveryError
from segment_bridge.track import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, TrackCall, batch_growth

__all__ = [
    "DEFAULT_LINGER",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_LINGER",
    "BatchStage",
    "DeliveryEngine",
    "EngineMetrics",
    "EngineThread",
    "MessageOutcome",
    "MessageStatus",
    "NoPacer",
    "Pacer",
    "StageFailure",
    "StageResult",
]

logger = logging.getLogger("segment_bridge.delivery")

#: A partial batch waits this long for company when nothing is in flight...
DEFAULT_LINGER = 0.005
#: ...and at most this long while batches are in flight (their completion sends it sooner).
DEFAULT_MAX_LINGER = 0.02
#: Batches posted at once (one worker thread each).
DEFAULT_MAX_IN_FLIGHT = 4
#: How often a worker waiting for the pacer checks that the engine's loop still runs.
_LOOP_CHECK_SECONDS = 0.25


class _Observed:
    """The engine's view of the transport: counts each request and tells the pacer of a 429."""

    def __init__(self, inner: Transport, metrics: EngineMetrics, on_429: Callable[[float | None, int], None]) -> None:
        self.inner = inner
        self._metrics = metrics
        self._on_429 = on_429

    def send(self, batch: Sequence[TrackCall]) -> None:
        metrics = self._metrics
        _counted(metrics.request_started)
        started = time.monotonic()
        try:
            self.inner.send(batch)
        except DeliveryError as error:
            status = str(error.status) if error.status is not None else error.kind
            _counted(metrics.request_finished, status, _since(started))
            if error.status == 429 and isinstance(error, RetryableDeliveryError):
                self._on_429(error.retry_after, len(batch))
            raise
        except BaseException:
            _counted(metrics.request_finished, "internal", _since(started))
            raise
        _counted(metrics.request_finished, "200", _since(started))

    def close(self) -> None:
        self.inner.close()


def _since(started: float) -> float:
    return time.monotonic() - started


def _counted(hook: Callable[..., None], *args: Any) -> None:
    """Call a metrics hook; what it raises is logged, never the batch's fate.

    A subclass exporting the counts (a registry that refuses a label, a bug) must not fail a batch Segment accepted,
    nor keep its slot taken: with every slot taken nothing would be sent again, and a drain would wait forever.
    """
    try:
        hook(*args)
    except Exception as error:
        logger.error("the delivery engine's metrics hook %s failed: %s", hook.__name__, type(error).__name__)


class _Group:
    """One caller waiting for several messages: ``waiter`` is released when ``remaining`` reaches 0."""

    __slots__ = ("remaining", "waiter")

    def __init__(self, remaining: int, waiter: asyncio.Future[None]) -> None:
        self.remaining = remaining
        self.waiter = waiter


class _Entry:
    """One message queued or in flight, shared by every caller that submitted its ``messageId``."""

    __slots__ = ("call", "crash", "deadline", "enqueued", "groups", "key", "outcome", "seq")

    def __init__(self, call: TrackCall, deadline: float, enqueued: float, seq: int) -> None:
        self.call = call
        self.key = call.message_id
        self.deadline = deadline
        self.enqueued = enqueued
        self.seq = seq
        self.outcome: MessageOutcome | None = None
        self.crash: Exception | None = None  # what the transport raised that is no DeliveryError
        self.groups: list[_Group] = []


class _Timeouts:
    """Releases waiters at their deadlines with one event-loop timer for all of them.

    A timer per caller costs a ``TimerHandle`` compared in Python in the loop's heap and left there when cancelled
    (about 4% of the loop's CPU under load, as measured in ``serve``); here a heap of tuples (compared in C) and one
    timer armed for the earliest deadline, with finished waiters dropped lazily.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, loop: asyncio.AbstractEventLoop, deadline: float, waiter: asyncio.Future[None]) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), waiter))
        if deadline < self._timer_at:
            self._arm(loop, deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_later(max(0.0, at - self._clock()), self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self._clock()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            waiter = heapq.heappop(heap)[2]
            if not waiter.done():
                waiter.set_result(None)
        if heap:
            self._arm(loop, heap[0][0])


class DeliveryEngine:
    """Batches, paces, sends and retries track calls for many concurrent callers; see the module docstring.

    Must be used from one event loop (:class:`EngineThread` provides one for synchronous callers).

    Args:
        transport: where batches go; called on worker threads.
        policy: retries per (sub-)batch; :class:`~segment_bridge.delivery.retry.RetryPolicy` defaults if omitted.
        max_messages: most messages per batch (at most 2,500).
        max_bytes: most serialized message bytes per batch.
        max_in_flight: batches posted at once (worker threads).
        linger: seconds a partial batch waits for company when nothing is in flight.
        max_linger: seconds a partial batch waits at most while batches are in flight.
        attempt_reserve: no request starts later than this many seconds before its messages' latest deadline
            (it could not finish in time).
        pacer: paces requests and shares Segment's 429 back-off; none by default.
        stage: runs on each batch's calls right before sending; none by default.
        metrics: counters of Segment requests; a fresh :class:`EngineMetrics` by default.
        sleep: how retries wait (on the worker thread); tests inject a recorder.
        clock: monotonic seconds; deadlines are measured on it.
        executor: runs the sends; a thread pool of ``max_in_flight`` threads (owned and shut down by the engine)
            when omitted.
        share_duplicates: a message whose ``messageId`` is already queued or in flight shares that one's outcome
            instead of being sent again (``False``: every submitted message is sent, as ``replay`` counts them).
    """

    def __init__(
        self,
        transport: Transport,
        policy: RetryPolicy | None = None,
        *,
        max_messages: int = DEFAULT_BATCH_MESSAGES,
        max_bytes: int = MAX_BATCH_BYTES,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        linger: float = DEFAULT_LINGER,
        max_linger: float = DEFAULT_MAX_LINGER,
        attempt_reserve: float = 0.0,
        pacer: Pacer | None = None,
        stage: BatchStage | None = None,
        metrics: EngineMetrics | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        executor: Executor | None = None,
        share_duplicates: bool = True,
    ) -> None:
        if not 1 <= max_messages <= MAX_BATCH_MESSAGES:
            raise ValueError(f"max_messages must be between 1 and {MAX_BATCH_MESSAGES}")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.transport = transport
        self.policy = policy if policy is not None else RetryPolicy()
        self.metrics = metrics if metrics is not None else EngineMetrics()
        self._observed = _Observed(transport, self.metrics, self._paused_by_segment)
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._max_in_flight = max_in_flight
        self._linger = linger
        self._max_linger = max_linger
        self._reserve = attempt_reserve
        self._pacer = pacer
        self._stage = stage
        self._stage_is_async = stage is not None and (
            inspect.iscoroutinefunction(stage) or inspect.iscoroutinefunction(type(stage).__call__)
        )
        self._sleep = sleep
        self._clock = clock
        self._own_executor = executor is None
        self._executor: Executor = executor or ThreadPoolExecutor(
            max_workers=max_in_flight, thread_name_prefix="segment-bridge-send"
        )
        self._pending: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._waiting: dict[str, _Entry] = {}
        self._share = share_duplicates
        self._in_flight = 0
        self._seq = 0
        self._urgent = -1  # entries up to this sequence number go without lingering
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._timeouts = _Timeouts(clock)
        self._idle: asyncio.Future[None] | None = None
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"DeliveryEngine({self.transport!r}, max_in_flight={self._max_in_flight})"

    @property
    def pending(self) -> int:
        """Messages waiting for a batch."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Batches being sent (retries and stage included)."""
        return self._in_flight

    async def submit(
        self, calls: Iterable[TrackCall], deadline: float | None = None, *, flush: bool = False
    ) -> list[MessageOutcome]:
        """Deliver ``calls`` and return each one's outcome, in order, once all are settled or ``deadline`` passed.

        Args:
            calls: the caller's messages.
            deadline: the engine clock's time by which the caller needs its answer: no request for these messages
                starts after ``deadline - attempt_reserve``, and unsettled messages are ``TIMED_OUT`` at
                ``deadline`` (they stay queued). ``None``: no deadline.
            flush: send these messages without waiting for company (nothing more is coming soon).

        Raises:
            Exception: what the transport (or a bug) raised that is no ``DeliveryError`` for a batch carrying one of
                these messages (a ``ConfigurationError`` for an ``--out`` file on a full disk, a ``BrokenPipeError``):
                every caller of that batch gets it, and its messages are not retried.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._draining:
            raise RuntimeError("the delivery engine is shutting down")
        now = self._clock()
        limit = math.inf if deadline is None else deadline
        entries: list[_Entry] = []
        share = self._share
        for call in calls:
            entry = self._waiting.get(call.message_id) if share else None
            if entry is None:
                entry = _Entry(call, limit, now, self._seq)
                self._seq += 1
                if share:
                    self._waiting[entry.key] = entry
                self._pending.append(entry)
                self._pending_bytes += call.size + 1
            elif limit > entry.deadline:
                entry.deadline = limit  # a later caller's deadline must not cut a shared message's retries short
            entries.append(entry)
        if flush:
            self._urgent = self._seq - 1
        self._maybe_flush()
        unsettled = {id(entry): entry for entry in entries if entry.outcome is None}
        if unsettled:
            waiter: asyncio.Future[None] = loop.create_future()
            group = _Group(len(unsettled), waiter)
            for entry in unsettled.values():
                entry.groups.append(group)
            if deadline is not None:
                self._timeouts.add(loop, deadline, waiter)
            await waiter
        for entry in entries:
            if entry.crash is not None:
                raise entry.crash
        return [entry.outcome or MessageOutcome(entry.call, MessageStatus.TIMED_OUT) for entry in entries]

    async def drain(self, *, abandon: bool = False) -> None:
        """Send what is pending and wait for every batch in flight, then release the worker threads.

        With ``abandon``, what is still queued settles ``TIMED_OUT`` unsent instead. Later :meth:`submit` calls are
        refused.
        """
        self._draining = True
        if abandon:
            while self._pending:
                entry = self._pending.popleft()
                self._settle_entry(entry, MessageOutcome(entry.call, MessageStatus.TIMED_OUT))
            self._pending_bytes = 0
        self._maybe_flush()
        loop = asyncio.get_running_loop()
        while self._in_flight or self._pending:
            self._idle = loop.create_future()
            await self._idle
            self._maybe_flush()
        self._cancel_timer()
        if self._own_executor:
            self._executor.shutdown(wait=True)

    # -- batching ------------------------------------------------------------------------------------------

    def _full(self) -> bool:
        return len(self._pending) >= self._max_messages or self._pending_bytes >= self._max_bytes

    def _maybe_flush(self) -> None:
        """Send what is due, then arm a timer for the next decision. Never waits."""
        now = self._clock()
        pending = self._pending
        while pending and self._in_flight < self._max_in_flight:
            head = pending[0]
            wait = self._linger if not self._in_flight else self._max_linger
            if not (self._draining or self._full() or head.seq <= self._urgent or now - head.enqueued >= wait):
                break
            self._dispatch(self._take_batch(), now)
        if pending and self._in_flight < self._max_in_flight and self._loop is not None:
            wait = self._linger if not self._in_flight else self._max_linger
            due_at = pending[0].enqueued + wait
            if self._timer is not None and self._timer_due == due_at:
                return  # most submits join a batch whose timer is armed for the same moment already
            self._cancel_timer()
            self._timer_due = due_at
            self._timer = self._loop.call_later(max(0.0, due_at - now), self._on_timer)
        else:
            self._cancel_timer()

    def _on_timer(self) -> None:
        self._timer = None
        self._maybe_flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _take_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        pending = self._pending
        while pending:
            entry = pending[0]
            added = batch_growth(len(batch), size, entry.call, self._max_messages, self._max_bytes)
            if added is None:
                break
            pending.popleft()
            self._pending_bytes -= entry.call.size + 1
            batch.append(entry)
            size += added
        return batch

    def _dispatch(self, entries: list[_Entry], now: float) -> None:
        # The latest deadline: a message left from a caller already answered must not cut a fresh caller's retries
        # short. Sending past an answered caller's deadline is harmless: Segment deduplicates by messageId.
        deadline = max(entry.deadline for entry in entries)
        last_start = deadline - self._reserve
        if last_start <= now:
            error = RetryableDeliveryError(
                f"{len(entries)} messages not sent: too little time left before their deadline",
                kind="deadline",
                count=len(entries),
            )
            for entry in entries:
                self._settle_entry(entry, MessageOutcome(entry.call, MessageStatus.TIMED_OUT, error))
            return
        self._in_flight += 1
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by submit, the only way entries get here
        attempt_deadline = None if math.isinf(last_start) else last_start
        if self._stage_is_async:
            loop.create_task(self._stage_then_post(loop, entries, attempt_deadline))
        else:
            self._executor.submit(self._post, loop, entries, None, attempt_deadline)

    async def _stage_then_post(
        self, loop: asyncio.AbstractEventLoop, entries: list[_Entry], deadline: float | None
    ) -> None:
        assert self._stage is not None  # noqa: S101 - only called with a stage
        calls = [entry.call for entry in entries]
        try:
            staged = await self._stage(calls)  # type: ignore[misc]
        except Exception as error:
            staged = _stage_crashed(calls, error)
        self._executor.submit(self._post, loop, entries, staged, deadline)

    # -- sending (worker thread) ---------------------------------------------------------------------------

    def _post(
        self,
        loop: asyncio.AbstractEventLoop,
        entries: list[_Entry],
        staged: Sequence[StageResult] | None,
        deadline: float | None,
    ) -> None:
        """Run the stage (if synchronous), send the batch with retries, and settle it on the loop in one callback.

        Not ``await loop.run_in_executor(...)`` in a task: that hands the result over through two more turns of the
        loop, each behind every other ready callback under load.
        """
        calls = [entry.call for entry in entries]
        results: list[BatchResult] = []
        crash: Exception | None = None
        try:
            if staged is None and self._stage is not None:
                try:
                    staged = self._stage(calls)  # type: ignore[assignment]
                except Exception as error:
                    staged = _stage_crashed(calls, error)
            if staged is not None and len(staged) != len(calls):
                staged = _stage_crashed(calls, ValueError(f"the batch stage answered {len(staged)} of {len(calls)}"))
            to_send = calls if staged is None else [s for s in staged if not isinstance(s, StageFailure)]
            if to_send:
                hook = self._before_attempt(loop, deadline) if self._pacer is not None else None
                results = send_batch(
                    self._observed,
                    to_send,
                    self.policy,
                    sleep=self._sleep,
                    clock=self._clock,
                    deadline=deadline,
                    before_attempt=hook,
                )
        except Exception as error:
            # Not a DeliveryError: the caller must see it (a full disk under --out), and no caller may be left
            # waiting. The batch fails as retryable for those who share it without awaiting it.
            crash = error
            failure = RetryableDeliveryError(
                f"unexpected {type(error).__name__} posting {len(calls)} messages", kind="internal", count=len(calls)
            )
            staged, results = None, [BatchResult(calls, failure, attempts=0)]
        except BaseException:
            # Whoever runs this job is being stopped (SystemExit on a worker): the batch still settles, so that
            # nobody (a drain included) waits for it forever.
            failure = RetryableDeliveryError(
                f"stopped posting {len(calls)} messages", kind="internal", count=len(calls)
            )
            self._settle_from_thread(loop, entries, None, [BatchResult(calls, failure, attempts=0)], None)
            raise
        self._settle_from_thread(loop, entries, staged, results, crash)

    def _settle_from_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        entries: list[_Entry],
        staged: Sequence[StageResult] | None,
        results: list[BatchResult],
        crash: Exception | None,
    ) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left waiting
            loop.call_soon_threadsafe(self._settle, entries, staged, results, crash)

    def _before_attempt(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> BeforeAttempt:
        pacer = self._pacer
        assert pacer is not None  # noqa: S101 - only called with a pacer

        def acquire(calls: Sequence[TrackCall]) -> bool:
            acquiring = pacer.acquire(len(calls), deadline)
            try:
                waiting = asyncio.run_coroutine_threadsafe(acquiring, loop)
            except RuntimeError:  # the loop is closed (shutting down): send nothing more
                acquiring.close()
                return False
            # Not a bare result(): a loop stopped meanwhile (a second Ctrl-C while closing) never answers, and this
            # worker would block the pool's shutdown for good.
            while True:
                try:
                    return waiting.result(timeout=_LOOP_CHECK_SECONDS)
                except concurrent.futures.TimeoutError:
                    if loop.is_closed() or not loop.is_running():
                        waiting.cancel()
                        return False

        return acquire

    def _paused_by_segment(self, retry_after: float | None, events: int) -> None:
        """A 429 (worker thread): the pacer pauses every batch, before this one's own retry waits."""
        if self._pacer is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._pacer.pause, retry_after, events)

    # -- settling (event loop) -----------------------------------------------------------------------------

    def _settle(
        self,
        entries: list[_Entry],
        staged: Sequence[StageResult] | None,
        results: list[BatchResult],
        crash: Exception | None = None,
    ) -> None:
        verdicts: dict[int, tuple[DeliveryError | None, int]] = {}
        for result in results:
            for call in result.calls:
                verdicts[id(call)] = (result.error, result.attempts)
        for index, entry in enumerate(entries):
            sent = entry.call if staged is None else staged[index]
            if isinstance(sent, StageFailure):
                outcome = MessageOutcome(entry.call, MessageStatus.FAILED, sent.error, 0, sent.reason)
            else:
                verdict = verdicts.get(id(sent))
                if verdict is None:  # send_batch puts every message in one result; this guards a transport bug
                    missing = RetryableDeliveryError("no result for the message", kind="internal", count=1)
                    outcome = MessageOutcome(sent, MessageStatus.FAILED, missing)
                else:
                    error, attempts = verdict
                    outcome = MessageOutcome(sent, _status(error), error, attempts)
            entry.crash = crash
            self._settle_entry(entry, outcome)
        _counted(self.metrics.batch_settled, results)
        # The slot is free before the flush, so that messages waiting for it go now.
        self._in_flight -= 1
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        self._maybe_flush()

    def _settle_entry(self, entry: _Entry, outcome: MessageOutcome) -> None:
        entry.outcome = outcome
        if self._waiting.get(entry.key) is entry:
            del self._waiting[entry.key]
        for group in entry.groups:
            group.remaining -= 1
            if group.remaining == 0 and not group.waiter.done():
                group.waiter.set_result(None)
        entry.groups = []


def _status(error: DeliveryError | None) -> MessageStatus:
    if error is None:
        return MessageStatus.DELIVERED
    if error.kind == "deadline":
        return MessageStatus.TIMED_OUT
    return MessageStatus.FAILED


def _stage_crashed(calls: Sequence[TrackCall], error: Exception) -> list[StageResult]:
    """A stage that raised fails its batch's messages rather than leaving them unsettled."""
    logger.error("the batch stage failed on %d messages: %s", len(calls), type(error).__name__)
    failure = StageFailure(
        RetryableDeliveryError(f"batch stage failed ({type(error).__name__})", kind="stage", count=len(calls)),
        "stage_failed",
    )
    return [failure] * len(calls)


class EngineThread:
    """A :class:`DeliveryEngine` on an event loop of its own thread, for synchronous callers (``replay``, Lambda).

    Use as a context manager; leaving it drains the engine (abandoning what is still queued when an exception,
    e.g. ``KeyboardInterrupt``, is on its way out).
    """

    def __init__(self, engine: DeliveryEngine, *, name: str = "segment-bridge-engine") -> None:
        self.engine = engine
        self._loop = asyncio.new_event_loop()
        self._closed = False
        started = threading.Event()
        # A daemon: a caller that never closes must not keep the process alive.
        self._thread = threading.Thread(target=self._run, args=(started,), name=name, daemon=True)
        self._thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(started.set)
        self._loop.run_forever()

    def submit(
        self, calls: Iterable[TrackCall], deadline: float | None = None, *, flush: bool = False
    ) -> concurrent.futures.Future[list[MessageOutcome]]:
        """:meth:`DeliveryEngine.submit` from another thread; the future holds the outcomes."""
        return asyncio.run_coroutine_threadsafe(self.engine.submit(list(calls), deadline, flush=flush), self._loop)

    def deliver(self, calls: Iterable[TrackCall], deadline: float | None = None) -> list[MessageOutcome]:
        """Submit ``calls`` without lingering and wait for their outcomes."""
        return self.submit(calls, deadline, flush=True).result()

    def close(self, *, abandon: bool = False) -> None:
        """Drain the engine (see :meth:`DeliveryEngine.drain`), then stop the loop and its thread."""
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self.engine.drain(abandon=abandon), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> EngineThread:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        self.close(abandon=exc_type is not None)
