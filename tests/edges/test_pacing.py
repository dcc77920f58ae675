"""The pacer: a shared events/s limit and a shared pause after 429, on an injected clock (no test waits for time)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from segment_bridge.delivery.pacing import LEARN_DOUBLING_SECONDS, RATE_WINDOW_SECONDS, RatePacer


class VirtualTime:
    """A clock that moves only when a sleeper asks it to; ``sleeps`` records every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class HeldTime:
    """A clock the test moves itself; each sleep waits until the test releases it, so tests can act meanwhile."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeping: asyncio.Queue[tuple[float, asyncio.Event]] = asyncio.Queue()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.Event()
        await self.sleeping.put((seconds, wake))
        await wake.wait()


def run(coroutine: Callable[[], Awaitable[object]]) -> object:
    return asyncio.run(asyncio.wait_for(coroutine(), timeout=5))  # type: ignore[arg-type]


def paced(rate: float, clock: VirtualTime, **options: float) -> RatePacer:
    return RatePacer(rate, clock=clock, sleep=clock.sleep, **options)


def test_unlimited_never_waits() -> None:
    clock = VirtualTime()
    pacer = paced(0, clock)

    async def main() -> None:
        for _ in range(100):
            assert await pacer.acquire(2_500)

    run(main)
    assert clock.sleeps == []
    assert pacer.metrics().events == 250_000


def test_batches_go_at_the_rate_after_a_bucket_of_a_tenth_of_a_second() -> None:
    clock = VirtualTime()
    pacer = paced(500, clock)
    sent_at: list[float] = []

    async def main() -> None:
        for _ in range(40):
            assert await pacer.acquire(500)
            sent_at.append(clock.now)

    run(main)
    # The bucket starts full with 50 events (500/s x 0.1 s): the first batch waits for its other 450.
    assert sent_at[0] == pytest.approx(0.9)
    assert [b - a for a, b in itertools.pairwise(sent_at)] == pytest.approx([1.0] * 39)
    # 20,000 events at 500/s: 40 s less the bucket's 0.1 s.
    assert sent_at[-1] == pytest.approx(39.9)


def test_small_requests_within_the_bucket_go_at_once_then_the_rate_holds() -> None:
    clock = VirtualTime()
    pacer = paced(1_000, clock)

    async def main() -> None:
        for _ in range(100):
            assert await pacer.acquire(1)

    run(main)
    # 100 events in the bucket: no wait at all.
    assert clock.sleeps == []
    run(lambda: pacer.acquire(1))
    assert clock.now == pytest.approx(0.001)


def test_allowance_unused_while_idle_is_kept_up_to_the_bucket_only() -> None:
    clock = VirtualTime()
    pacer = paced(100, clock)
    run(lambda: pacer.acquire(10))  # the full bucket
    clock.now += 3_600  # an hour idle earns no more than the bucket
    run(lambda: pacer.acquire(10))
    assert clock.sleeps == []
    run(lambda: pacer.acquire(10))
    assert clock.sleeps == pytest.approx([0.1])


def test_a_small_rate_still_lets_one_event_through_at_once() -> None:
    clock = VirtualTime()
    pacer = paced(2, clock)  # 2 x 0.1 = 0.2 events: the bucket holds one event at least
    run(lambda: pacer.acquire(1))
    assert clock.sleeps == []
    run(lambda: pacer.acquire(1))
    assert clock.sleeps == pytest.approx([0.5])


def test_a_deadline_that_would_pass_refuses_at_once_and_reserves_nothing() -> None:
    clock = VirtualTime()
    pacer = paced(100, clock)
    run(lambda: pacer.acquire(10))
    # 100 more events need 1 s; the deadline is in 0.5 s.
    assert run(lambda: pacer.acquire(100, deadline=0.5)) is False
    assert clock.sleeps == []
    # Nothing was reserved by the refusal: 10 events go after 0.1 s, not 1.1 s.
    assert run(lambda: pacer.acquire(10, deadline=0.1)) is True
    assert clock.now == pytest.approx(0.1)
    assert pacer.metrics().events == 20


def test_a_pause_holds_everyone_then_sending_resumes_from_an_empty_bucket_at_what_got_through() -> None:
    clock = VirtualTime()
    pacer = paced(500, clock)

    async def main() -> None:
        for _ in range(10):
            await pacer.acquire(500)

    run(main)
    assert clock.now == pytest.approx(9.9)
    # The last batch is refused: of the 500 events sent in the second before, none got through. The floor, one
    # refused batch per pause, is the rate in force.
    pacer.pause(2.0, events=500)
    assert pacer.metrics().rate_in_force == pytest.approx(250)
    run(lambda: pacer.acquire(500))
    # Not at 11.9 s with a burst: the pause ends, then 500 events take their 2 s at 250/s.
    assert clock.now == pytest.approx(13.9, rel=1e-3)  # the rate grows back a little meanwhile
    metrics = pacer.metrics()
    assert (metrics.rate_limited, metrics.paused_seconds) == (1, pytest.approx(2.0))
    clock.now = 9.9 + LEARN_DOUBLING_SECONDS / 2
    assert pacer.metrics().rate_in_force == pytest.approx(250 * 2**0.5)  # growing back ...
    clock.now = 9.9 + LEARN_DOUBLING_SECONDS
    assert pacer.metrics().rate_in_force == 500  # ... to the configured rate, in one doubling


def test_unlimited_after_a_429_sends_at_what_got_through_then_faster_and_faster() -> None:
    clock = VirtualTime()
    pacer = paced(0, clock)

    async def wave() -> None:
        for _ in range(4):
            assert await pacer.acquire(500)

    run(wave)
    assert clock.sleeps == []
    # Segment took two of the four batches: both others are refused, each pausing everyone 1 s.
    pacer.pause(1.0, events=500)
    pacer.pause(1.0, events=500)
    assert pacer.metrics().rate_in_force == pytest.approx(1_000)
    run(lambda: pacer.acquire(500))
    assert clock.now == pytest.approx(1.5, rel=1e-3)  # the pause, then 500 events at 1,000/s
    run(lambda: pacer.acquire(500))
    assert clock.now == pytest.approx(2.0, rel=1e-3)
    clock.now = 2.0 + 3 * LEARN_DOUBLING_SECONDS
    assert pacer.metrics().rate_in_force == pytest.approx(8_000, rel=0.01)


def test_without_the_refused_count_half_of_what_was_sent_is_taken_as_what_got_through() -> None:
    clock = VirtualTime()
    pacer = paced(0, clock)
    run(lambda: pacer.acquire(2_000))
    pacer.pause(1.0)
    assert pacer.metrics().rate_in_force == pytest.approx(1_000)


def test_a_later_429_never_raises_the_rate_in_force_and_an_empty_second_gives_the_floor() -> None:
    clock = VirtualTime()
    pacer = paced(2_000, clock)
    run(lambda: pacer.acquire(1_000))
    pacer.pause(None, events=100)  # 1,000 sent, 100 refused: 900 got through
    assert pacer.metrics().rate_in_force == pytest.approx(900)
    clock.now = 0.5
    run(lambda: pacer.acquire(10))
    pacer.pause(None, events=1)  # 1,010 sent, 101 refused: 909, above the 900 in force, which stays
    assert pacer.metrics().rate_in_force == pytest.approx(900, rel=1e-3)
    clock.now = 100.0
    pacer.pause(2.0, events=500)  # nothing sent in the last second: one refused batch per pause
    assert pacer.metrics().rate_in_force == pytest.approx(250)


def test_a_pause_is_capped_and_never_waited_past_a_deadline() -> None:
    clock = VirtualTime()
    pacer = paced(0, clock, max_pause=10)
    run(lambda: pacer.acquire(1_000))
    pacer.pause(3_600, events=500)  # a Retry-After of an hour
    assert pacer.metrics().paused_seconds == pytest.approx(10)
    assert pacer.metrics().rate_in_force == pytest.approx(500)
    assert run(lambda: pacer.acquire(1, deadline=4.0)) is False
    assert clock.sleeps == []
    assert run(lambda: pacer.acquire(1, deadline=10.1)) is True
    assert clock.now == pytest.approx(10.002, rel=1e-3)


def test_overlapping_pauses_count_every_429_and_each_second_once() -> None:
    clock = VirtualTime()
    pacer = paced(0, clock)
    pacer.pause(2.0)  # paused 0 .. 2
    clock.now = 1.0
    pacer.pause(0.5)  # ends within the first: nothing added
    pacer.pause(2.0)  # extends to 3: one more second
    pacer.pause(None)  # a 429 without Retry-After: counted, no pause
    metrics = pacer.metrics()
    assert metrics.rate_limited == 4
    assert metrics.paused_seconds == pytest.approx(3.0)


def test_a_waiter_that_slept_through_a_new_pause_queues_again() -> None:
    async def main() -> list[float]:
        clock = HeldTime()
        pacer = RatePacer(100, clock=clock, sleep=clock.sleep)
        sent: list[float] = []

        async def send(n: int) -> None:
            assert await pacer.acquire(n)
            sent.append(clock.now)

        first = asyncio.create_task(send(110))  # 10 in the bucket, 100 more: waits 1 s
        seconds, wake = await clock.sleeping.get()
        assert seconds == pytest.approx(1.0)
        pacer.pause(2.0, events=100)  # another batch's 429 while the first waits: 50 events/s from then on
        clock.now = 1.0
        wake.set()
        # Woken at 1 s, it is inside the pause: it queues again behind the pause, from an empty bucket.
        seconds, wake = await clock.sleeping.get()
        assert seconds == pytest.approx(2.0 + 110 / 50 - 1.0, rel=1e-2)
        clock.now = 4.2
        wake.set()
        await first
        return sent

    assert run(main) == [pytest.approx(4.2)]


def test_concurrent_requests_share_one_rate() -> None:
    clock = VirtualTime()
    pacer = paced(1_000, clock)
    sent: list[float] = []

    async def sender() -> None:
        for _ in range(5):
            assert await pacer.acquire(500)
            sent.append(clock.now)

    async def main() -> None:
        await asyncio.gather(*(sender() for _ in range(4)))

    run(main)
    # 4 senders x 5 batches of 500 = 10,000 events at 1,000/s: the last goes at 10 s less the bucket, not 2.5 s.
    assert len(sent) == 20
    assert max(sent) >= 9.9 - 1e-9


def test_current_rate_is_measured_over_the_recent_window() -> None:
    clock = VirtualTime()
    pacer = paced(1_000, clock)

    async def main() -> None:
        for _ in range(20):
            await pacer.acquire(500)

    run(main)
    assert pacer.metrics().current_rate == pytest.approx(1_000, rel=0.11)
    clock.now += RATE_WINDOW_SECONDS + 1
    assert pacer.metrics().current_rate == 0


@pytest.mark.parametrize("rate", [-1, float("inf"), float("nan")])
def test_a_rate_that_is_not_a_finite_positive_number_or_zero_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="max_rate"):
        RatePacer(rate)


def test_one_pacer_shared_by_threads_each_with_its_own_loop_keeps_one_rate() -> None:
    # Real time, kept short: 2 threads x 10 x 100 events at 10,000/s need at least 0.19 s in all.
    pacer = RatePacer(10_000)
    errors: list[BaseException] = []

    def worker() -> None:
        async def main() -> None:
            for _ in range(10):
                assert await pacer.acquire(100)

        try:
            asyncio.run(main())
        except BaseException as error:  # handed to the test thread
            errors.append(error)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    elapsed = time.monotonic() - started
    assert errors == []
    assert pacer.metrics().events == 2_000
    assert elapsed >= (2_000 - 1_000) / 10_000
