"""A Segment stand-in that enforces a workspace rate in events/s, on 127.0.0.1, for tests and benchmarks.

Segment allows a workspace 1,000 events/s and answers 429 with ``Retry-After`` and ``X-RateLimit-Reset`` above it
(``FACTS.md`` §9.2). This stand-in is :class:`standin.StandIn` (same checks, records and faults) with a token
bucket in front of acceptance: a well-formed batch of ``n`` messages is taken when the bucket holds ``n`` events,
and answered 429 otherwise, with both headers in whole seconds (how long until the bucket holds ``n`` again,
rounded up, at least 1) and nothing accepted::

    with RateLimitedStandIn(write_key="test-key", rate=1_000) as segment:
        ...
        assert segment.rate_limited == 0
        assert segment.accepted_events == 20_000
        segment.per_second()   # {0: 1000, 1: 1000, ...}: events accepted in each second since start

The bucket holds ``capacity`` events (default one second's worth) and starts full. The clock is injectable.
``python tests/ratelimit_standin.py --rate 1000`` prints its URL and serves until stdin closes;
:class:`RateLimitedStandInProcess` runs it so, for benchmarks, and reads its counts from ``/__standin/stats``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from standin import StandIn, StandInProcess

__all__ = ["RateLimitedStandIn", "RateLimitedStandInProcess"]


class RateLimitedStandIn(StandIn):
    """:class:`StandIn` that takes at most ``rate`` events per second (token bucket of ``capacity`` events).

    Args:
        write_key: the key requests must authenticate with.
        rate: events per second the workspace allows.
        capacity: events the bucket holds; one second's worth when omitted.
        clock: monotonic seconds (tests may inject one).
        **options: passed on to :class:`StandIn` (``latency``, faults...).
    """

    def __init__(
        self,
        write_key: str = "test-key",
        *,
        rate: float = 1_000.0,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        super().__init__(write_key, **options)
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else rate
        self._clock = clock
        self._tokens = self.capacity
        self._filled_at = clock()
        self._started = self._filled_at
        self._rate_limited = 0
        self._accepted_events = 0
        self._per_second: Counter[int] = Counter()

    def _admit(self, messages: int) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._filled_at) * self.rate)
            self._filled_at = now
            if messages <= self._tokens:
                self._tokens -= messages
                self._accepted_events += messages
                self._per_second[int(now - self._started)] += messages
                return None
            self._rate_limited += 1
            # Whole seconds, as Segment's headers are; a batch larger than the bucket waits for a full bucket.
            wait = (min(messages, self.capacity) - self._tokens) / self.rate
            seconds = str(max(1, math.ceil(wait)))
        return 429, {"Retry-After": seconds, "X-RateLimit-Reset": seconds}

    @property
    def rate_limited(self) -> int:
        """Requests answered 429 by the rate limit."""
        with self._lock:
            return self._rate_limited

    @property
    def accepted_events(self) -> int:
        """Events taken by the rate limit (repeats of a ``messageId`` included)."""
        with self._lock:
            return self._accepted_events

    def per_second(self) -> dict[int, int]:
        """Events accepted in each whole second since the stand-in was made."""
        with self._lock:
            return dict(sorted(self._per_second.items()))

    def stats(self) -> dict[str, Any]:  # type: ignore[override]
        """:meth:`StandIn.stats` plus ``rate_limited``, ``accepted_events`` and ``per_second`` (keys as text)."""
        counts: dict[str, Any] = dict(super().stats())
        with self._lock:
            counts["rate_limited"] = self._rate_limited
            counts["accepted_events"] = self._accepted_events
            counts["per_second"] = {str(k): v for k, v in sorted(self._per_second.items())}
        return counts


class RateLimitedStandInProcess(StandInProcess):
    """A :class:`RateLimitedStandIn` in its own process (benchmarks: its work shares no GIL with the sender).

    It prints its URL, then serves until its standard input closes; use it as a context manager.
    """

    def __init__(self, write_key: str, *, rate: float, capacity: float | None = None, latency: float = 0.0) -> None:
        arguments = [__file__, "--write-key", write_key, "--rate", str(rate), "--latency", str(latency)]
        if capacity is not None:
            arguments += ["--capacity", str(capacity)]
        self._start(arguments)


def main(argv: list[str]) -> int:
    """Serve until standard input closes; print the base URL first."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write-key", default="test-key")
    parser.add_argument("--rate", type=float, default=1_000.0)
    parser.add_argument("--capacity", type=float, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    with RateLimitedStandIn(args.write_key, rate=args.rate, capacity=args.capacity, latency=args.latency) as standin:
        print(standin.url, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
