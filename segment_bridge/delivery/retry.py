"""How hard to try one batch: which answers are worth another attempt, and the one retry policy over tenacity.

:class:`RetryPolicy` bounds a batch by an attempt limit *and* a time budget (whichever ends first), honours
Segment's ``Retry-After`` (or ``X-RateLimit-Reset``, read into the same ``retry_after``) up to a cap, and otherwise
backs off exponentially with jitter. Sleep and clock are injectable, so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_any
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from segment_bridge.exceptions import RetryableDeliveryError

__all__ = ["Clock", "RetryPolicy", "Sleep", "is_retryable_status"]

Sleep = Callable[[float], None]
Clock = Callable[[], float]


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status from Segment is worth another attempt.

    408 and 429 are; 5xx are, except 501 (Not Implemented) and 505 (HTTP Version Not Supported), which
    will not change on retry. Every other status, including 3xx and the remaining 4xx, is permanent.
    """
    if status in (408, 429):
        return True
    return 500 <= status < 600 and status not in (501, 505)


class _StopAt(stop_base):
    """Stop when the next attempt would start at or after ``limit`` on ``clock`` (which tests can fake).

    tenacity's ``stop_before_delay`` reads the real monotonic clock, so a test with an injected sleep could
    never use up a budget; this one reads the same clock as the injected sleep.
    """

    def __init__(self, limit: float, clock: Clock) -> None:
        self.limit = limit
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() + retry_state.upcoming_sleep >= self.limit


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one batch: an attempt limit *and* a time budget, whichever ends first.

    Attributes:
        max_attempts: attempts per batch, the first included.
        budget_seconds: time from the first attempt after which no new attempt starts; a wait that would
            end past it (a long ``Retry-After``) gives up at once instead.
        max_retry_after: cap on a server-supplied ``Retry-After`` wait, in seconds.
        backoff_multiplier: first backoff wait; doubles at each further retry.
        backoff_max: cap on one backoff wait.
        jitter: up to this many seconds of random wait added to each backoff, so clients do not retry in step.
    """

    max_attempts: int = 8
    budget_seconds: float = 120.0
    max_retry_after: float = 60.0
    backoff_multiplier: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.budget_seconds < 0 or self.max_retry_after < 0 or self.backoff_max < 0 or self.jitter < 0:
            raise ValueError("budget_seconds, max_retry_after, backoff_max and jitter must not be negative")

    def wait_seconds(self, retry_state: RetryCallState) -> float:
        """The wait before the next attempt: ``Retry-After`` (capped) when Segment sent one, else backoff."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetryableDeliveryError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after)
        backoff = wait_exponential_jitter(multiplier=self.backoff_multiplier, max=self.backoff_max, jitter=self.jitter)
        return float(backoff(retry_state))

    def retrying(
        self, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic, deadline: float | None = None
    ) -> Retrying:
        """A tenacity ``Retrying`` for one batch, starting now by ``clock``.

        Args:
            sleep: how to wait; tests pass a recorder so they never sleep.
            clock: monotonic seconds; the budget and ``deadline`` are measured on it.
            deadline: an absolute ``clock()`` time no attempt may start after (a caller's own deadline, e.g. a
                webhook's answer time), on top of the budget.
        """
        limit = clock() + self.budget_seconds
        if deadline is not None:
            limit = min(limit, deadline)

        return Retrying(
            retry=retry_if_exception_type(RetryableDeliveryError),
            wait=self.wait_seconds,
            stop=stop_any(stop_after_attempt(self.max_attempts), _StopAt(limit, clock)),
            sleep=sleep,
            reraise=True,
        )
