"""Pacing: one events-per-second limit shared by every request in flight, and one back-off after Segment's 429.

Segment allows a workspace **1,000 events/s**, shared by every source of it; above that it answers 429 with
``Retry-After`` and ``X-RateLimit-Reset``. A :class:`RatePacer`, the delivery engine's
:class:`~segment_bridge.delivery.engine.Pacer` hook, keeps a process under its own share:

* :meth:`RatePacer.acquire` is awaited before each request with the number of messages (Segment counts events, not
  requests). It waits until the limit allows them and returns ``True``, or returns ``False`` at once when they
  could not go before the caller's deadline (those messages time out rather than wait in vain).
* :meth:`RatePacer.pause` is called after a 429 with the wait Segment asked for. *All* sending stops until then
  (capped at ``max_pause``), not just the batch that was refused: otherwise every batch in flight hits the limit,
  waits, and returns together to hit it again. Sending then resumes from an empty bucket, so the requests held
  back do not go out in one burst, at what Segment let through in the second before the 429 if that is less than
  the rate in force (other sources take their share of the workspace; an unlimited run learns the workspace's
  rate), growing back towards the
  configured rate, doubling every :data:`LEARN_DOUBLING_SECONDS` (+7 %/min) without a 429: a pause alone would
  let every batch held back go out again together into the same limit, and a rate that jumped back would meet
  it again a second later. Each batch's own retry budget and attempt limit still apply
  (:class:`~segment_bridge.delivery.RetryPolicy`).

**The bucket.** The limit is a token bucket in events, filled at ``max_rate`` per second, held as a single time
(when the events reserved so far are paid for, as in the generic cell rate algorithm), so a request larger than
the bucket still goes, after the time its events take at the rate. The bucket holds ``max_rate`` x
:data:`BURST_SECONDS` events (at least one): a batch always reaches Segment whole, so the bucket only decides
how much allowance unused while idle may be spent at once on top of it. Segment does not document the window it
counts over, and live traffic (``serve``, other sources) shares it: a small bucket keeps a backfill that paused
(a pipe that went quiet, a resumed run) from surging past its share; in any span of ``T`` seconds at most
``max_rate x (T + BURST_SECONDS)`` events plus one batch go out.

``max_rate = 0`` means unlimited: :meth:`~RatePacer.acquire` returns at once until the first 429; then it waits out
the pause, and paces at the rate learned from the 429 as it grows back.

**Concurrency.** The engine runs on one asyncio loop, and the pacer's state changes only between awaits; it is
still guarded by a :class:`threading.Lock`, held for arithmetic only, never across a wait, so one pacer may also
be shared by several threads, each running its own loop: each waits with its own loop's sleep. A task cancelled
while it waits gives up its place; the time it had reserved is not handed back (the rate undershoots a little).

Clock and sleep are injected, so tests drive time themselves and never wait for it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = [
    "BURST_SECONDS",
    "DEFAULT_MAX_PAUSE",
    "LEARN_DOUBLING_SECONDS",
    "LEARN_WINDOW_SECONDS",
    "RATE_WINDOW_SECONDS",
    "PacerMetrics",
    "RatePacer",
]

#: Seconds of allowance the bucket holds: the burst that may follow an idle spell.
BURST_SECONDS = 0.1
#: Longest pause after a 429, whatever Segment asks for (its ``Retry-After`` is seconds; minutes would be odd).
DEFAULT_MAX_PAUSE = 60.0
#: After a 429, what got through in this many seconds before it is the rate in force ...
LEARN_WINDOW_SECONDS = 1.0
#: ... which then doubles every this many seconds without a 429, up to the configured rate. Slow enough that an
#: unlimited run against a workspace at its limit meets a 429 about every 30 s (one request in ~65, measured by
#: benchmarks/pacing.py), quick enough that a backfill slowed by a burst of live traffic is back to its rate in
#: minutes.
LEARN_DOUBLING_SECONDS = 600.0
#: The window :attr:`PacerMetrics.current_rate` is measured over.
RATE_WINDOW_SECONDS = 5.0

# Sums of n / rate drift by a few ulps; a wait shorter than this is rounding, not pacing.
_ROUNDING = 1e-9

AsyncSleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class PacerMetrics:
    """What a pacer has done, for ``/metrics`` and run summaries.

    Attributes:
        max_rate: the configured limit in events/s (0: unlimited).
        rate_in_force: the limit now: ``max_rate``, or lower for a while after a 429 (0: unlimited).
        rate_limited: 429 answers reported through :meth:`RatePacer.pause`.
        paused_seconds: time all sending was held after 429s (overlapping pauses counted once).
        current_rate: events let through over the last :data:`RATE_WINDOW_SECONDS`, per second.
        events: events let through since the pacer was made.
    """

    max_rate: float
    rate_in_force: float
    rate_limited: int
    paused_seconds: float
    current_rate: float
    events: int


class RatePacer:
    """A process-wide limit in events per second, with a shared pause after 429.

    Args:
        max_rate: events per second; 0 for no limit.
        max_pause: cap on one pause, in seconds.
        burst_seconds: seconds of allowance the bucket holds (see the module docstring).
        clock: monotonic seconds; deadlines given to :meth:`acquire` are on this clock.
        sleep: how to wait (``asyncio.sleep``; tests pass one that moves their clock).
    """

    def __init__(
        self,
        max_rate: float = 0.0,
        *,
        max_pause: float = DEFAULT_MAX_PAUSE,
        burst_seconds: float = BURST_SECONDS,
        clock: Clock = time.monotonic,
        sleep: AsyncSleep = asyncio.sleep,
    ) -> None:
        if not math.isfinite(max_rate) or max_rate < 0:
            raise ValueError("max_rate must be a finite number of events per second, 0 for unlimited")
        if not math.isfinite(max_pause) or max_pause < 0 or not math.isfinite(burst_seconds) or burst_seconds < 0:
            raise ValueError("max_pause and burst_seconds must be finite and not negative")
        self.max_rate = float(max_rate)
        self.max_pause = float(max_pause)
        self.burst_seconds = float(burst_seconds)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # The bucket as a time: when the events reserved so far are paid for. A full bucket lies its size / rate
        # seconds in the past; reserving n events moves it n / rate later.
        self._paid_until = -math.inf
        # What Segment let through before the last 429 (events/s), and when: the rate grows back from there.
        self._learned = 0.0
        self._learned_at: float | None = None
        self._refused: deque[tuple[float, int]] = deque()
        self._paused_until = -math.inf
        # Bumped by each pause that ends later than the one before: a waiter that slept through one reserves again.
        self._epoch = 0
        self._rate_limited = 0
        self._paused_seconds = 0.0
        self._events = 0
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_events = 0

    def __repr__(self) -> str:
        return f"RatePacer(max_rate={self.max_rate:g}, max_pause={self.max_pause:g})"

    @property
    def limited(self) -> bool:
        """Whether a rate limit is set (``max_rate`` > 0)."""
        return self.max_rate > 0

    async def acquire(self, messages: int, deadline: float | None = None) -> bool:
        """Wait until ``messages`` events may be sent; ``False`` at once if that would be after ``deadline``.

        Args:
            messages: the messages of the request about to be sent.
            deadline: a ``clock()`` time; ``None`` for none.

        Returns:
            ``True`` when the request may go now; ``False`` when it could not go by ``deadline`` (nothing is
            reserved then, and the caller should time those messages out).
        """
        n = messages
        if n < 0:
            raise ValueError("messages must not be negative")
        while True:
            with self._lock:
                now = self._clock()
                at, paid = self._send_time(n, now)
                if deadline is not None and at > deadline:
                    return False
                epoch = self._epoch
                self._paid_until = paid
                if at <= now + _ROUNDING:
                    self._granted(n, now)
                    return True
            await self._sleep(at - now)
            with self._lock:
                if self._epoch == epoch:
                    self._granted(n, self._clock())
                    return True
            # A 429 paused everyone while this waited: its place in the old schedule is gone; queue again.

    def _rate(self, now: float) -> float:
        """The rate in force at ``now``: the configured one, or lower while one learned from a 429 grows back."""
        if self._learned_at is None:
            return self.max_rate
        grown = self._learned * 2 ** (max(now - self._learned_at, 0.0) / LEARN_DOUBLING_SECONDS)
        if self.max_rate and grown >= self.max_rate:
            self._learned_at = None  # grown back: the configured rate again
            return self.max_rate
        return grown

    def _send_time(self, n: int, now: float) -> tuple[float, float]:
        """When ``n`` events could go, and the bucket's time once they are reserved (caller holds the lock)."""
        start = max(now, self._paused_until)
        rate = self._rate(start)
        if not rate:
            return start, self._paid_until
        # Allowance unused while idle is kept up to the bucket's size only.
        credit = max(rate * self.burst_seconds, 1.0) / rate
        paid = max(self._paid_until, start - credit) + n / rate
        return max(start, paid), paid

    def _granted(self, n: int, now: float) -> None:
        self._events += n
        self._recent.append((now, n))
        self._recent_events += n
        self._forget_before(now - RATE_WINDOW_SECONDS)

    def _forget_before(self, horizon: float) -> None:
        while self._recent and self._recent[0][0] <= horizon:
            self._recent_events -= self._recent.popleft()[1]

    def pause(self, retry_after: float | None, events: int = 0) -> None:
        """Hold all sending for ``retry_after`` seconds (capped at ``max_pause``), after Segment answered 429.

        Then send no faster than what Segment let through in the second before it (the events granted less those
        refused), growing back to the configured rate (see the module docstring).

        Args:
            retry_after: Segment's ``Retry-After`` or ``X-RateLimit-Reset``; ``None`` when it sent neither (the 429 is
                counted, and nothing pauses: the batch's own backoff applies).
            events: the messages of the refused request; 0 when unknown (half of what was sent in the last second
                is then taken as what got through).
        """
        seconds = retry_after
        with self._lock:
            self._rate_limited += 1
            now = self._clock()
            self._learn(now, events, seconds)
            if seconds is None or not math.isfinite(seconds) or seconds <= 0:
                return
            until = now + min(seconds, self.max_pause)
            if until <= self._paused_until:
                return  # another batch's 429 already holds everyone at least this long
            self._paused_seconds += until - max(now, self._paused_until)
            self._paused_until = until
            self._epoch += 1
            # Resume from an empty bucket: whatever was reserved before the 429 starts again after the pause.
            self._paid_until = until

    def _learn(self, now: float, events: int, seconds: float | None) -> None:
        """Lower the rate in force to what got through in the last :data:`LEARN_WINDOW_SECONDS` (lock held)."""
        horizon = now - LEARN_WINDOW_SECONDS
        self._refused.append((now, events))
        while self._refused and self._refused[0][0] <= horizon:
            self._refused.popleft()
        sent = sum(n for at, n in reversed(self._recent) if at > horizon)
        refused = sum(n for _, n in self._refused)
        through = sent - refused if events else sent / 2
        # Never below one refused request per pause: the batch that was refused must still fit in its retry.
        floor = max(1.0, events / max(seconds or 1.0, 1.0))
        learned = max(through / LEARN_WINDOW_SECONDS, floor)
        current = self._rate(now)
        self._learned = min(learned, current) if current else learned
        self._learned_at = now

    def metrics(self) -> PacerMetrics:
        """The counts so far and the rate over the last :data:`RATE_WINDOW_SECONDS`."""
        with self._lock:
            self._forget_before(self._clock() - RATE_WINDOW_SECONDS)
            return PacerMetrics(
                max_rate=self.max_rate,
                rate_in_force=self._rate(self._clock()),
                rate_limited=self._rate_limited,
                paused_seconds=self._paused_seconds,
                current_rate=self._recent_events / RATE_WINDOW_SECONDS,
                events=self._events,
            )
