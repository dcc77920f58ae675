"""Group commit: events of concurrent requests go into shared Segment batches; each request awaits only its own.

:class:`GroupCommitBatcher` batches (message and byte limits, a short linger), posts batches on worker threads
(a bounded number in flight) and settles each event's future; ``_Deadlines`` releases waiters at their deadlines
with one event-loop timer. The app (:mod:`.app`) is its only caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from segment_bridge.exceptions import DeliveryError, RetryableDeliveryError
from segment_bridge.server.config import (
    DEFAULT_BATCH_MESSAGES,
    DEFAULT_DEDUP_CACHE,
    DEFAULT_LINGER,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_LINGER,
)
from segment_bridge.server.logs import logger
from segment_bridge.server.redelivery import _RecentIds
from segment_bridge.track import MAX_BATCH_BYTES, TrackCall, batch_growth

if TYPE_CHECKING:
    from segment_bridge.delivery import BatchResult

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
