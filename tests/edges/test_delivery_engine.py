"""segment_bridge.delivery.engine: batching, group commit, bounded sends, deadlines, retries, outcomes, hooks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from conftest import FakeClock
from standin import StandIn

from segment_bridge.delivery import (
    DeliveryEngine,
    EngineThread,
    MessageStatus,
    RetryPolicy,
    SegmentTransport,
    StageFailure,
    StageResult,
)
from segment_bridge.exceptions import PayloadTooLargeError, PermanentDeliveryError, RetryableDeliveryError
from segment_bridge.track import TrackCall

EXACT = RetryPolicy(max_attempts=5, budget_seconds=60, max_retry_after=30, backoff_multiplier=0.5, jitter=0)


def make_call(i: int, *, pad: int = 0, user: str | None = None) -> TrackCall:
    message: dict[str, Any] = {
        "type": "track",
        "event": "Call Answered",
        "anonymousId": f"CA{i:032d}",
        "messageId": f"twilio-voice:{i:040d}",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "properties": {"call_sid": f"CA{i:032d}", "padding": "x" * pad},
    }
    if user is not None:
        message["userId"] = user
    return TrackCall.from_message(message, f"EV{i}", "com.twilio.voice.status-callback.call.answered")


def calls(start: int, n: int, **kwargs: Any) -> list[TrackCall]:
    return [make_call(i, **kwargs) for i in range(start, start + n)]


class Recorder:
    """A transport that notes each batch's messageIds and answers as ``answer(batch)`` says (None: accepted)."""

    def __init__(self, answer: Any = None, log: list[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.answer = answer
        self.log = log if log is not None else []
        self.lock = threading.Lock()

    def send(self, batch: Sequence[TrackCall]) -> None:
        with self.lock:
            self.batches.append([call.message_id for call in batch])
            self.log.append(f"send {len(batch)}")
        if self.answer is not None:
            error = self.answer(batch)
            if error is not None:
                raise error

    def close(self) -> None:
        pass


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- batching ---------------------------------------------------------------------------------------------------


def test_batches_respect_the_message_count_and_byte_limits() -> None:
    transport = Recorder()

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, max_messages=3, max_in_flight=1)
        outcomes = await engine.submit(calls(0, 7), flush=True)
        assert [o.status for o in outcomes] == [MessageStatus.DELIVERED] * 7
        # Each message is about 330 bytes with 2,000 of padding: two fit in 5,000 bytes, three do not.
        small = DeliveryEngine(transport, EXACT, max_messages=10, max_bytes=5_000, max_in_flight=1)
        await small.submit(calls(100, 5, pad=2_000), flush=True)
        await engine.drain()
        await small.drain()

    run(main())
    assert [len(batch) for batch in transport.batches] == [3, 3, 1, 2, 2, 1]


def test_concurrent_callers_share_batches_and_each_gets_only_its_own_outcomes() -> None:
    transport = Recorder()

    async def main() -> None:
        # No linger timer can fire during the test: only a full batch (30) is sent.
        engine = DeliveryEngine(transport, EXACT, max_messages=30, linger=60, max_linger=60)
        results = await asyncio.gather(*(engine.submit(calls(i * 3, 3)) for i in range(10)))
        for i, outcomes in enumerate(results):
            assert [o.call.message_id for o in outcomes] == [c.message_id for c in calls(i * 3, 3)]
            assert all(o.delivered and o.attempts == 1 for o in outcomes)
        await engine.drain()

    run(main())
    assert len(transport.batches) == 1
    assert len(transport.batches[0]) == 30


def test_a_message_already_queued_is_sent_once_and_both_callers_get_its_outcome() -> None:
    transport = Recorder()

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, linger=60, max_linger=60, max_messages=4)
        first, second = await asyncio.gather(engine.submit(calls(0, 2)), engine.submit(calls(1, 2), flush=True))
        assert [o.delivered for o in first + second] == [True] * 4
        await engine.drain()

    run(main())
    assert sorted(m for batch in transport.batches for m in batch) == sorted(c.message_id for c in calls(0, 3))


def test_no_more_than_max_in_flight_batches_are_sent_at_once() -> None:
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()
    two_in = threading.Event()

    def answer(batch: Sequence[TrackCall]) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            if state["now"] == 2:
                two_in.set()
        two_in.wait(5)  # the first batches are held until two are in flight at once
        with lock:
            state["now"] -= 1

    transport = Recorder(answer)
    with EngineThread(DeliveryEngine(transport, EXACT, max_messages=5, max_in_flight=2)) as engine:
        outcomes = engine.deliver(calls(0, 50))
    assert all(o.delivered for o in outcomes)
    assert len(transport.batches) == 10
    assert state["peak"] == 2


# -- deadlines and retries --------------------------------------------------------------------------------------


def test_a_batch_that_cannot_start_before_its_deadline_times_out_unsent(clock: FakeClock) -> None:
    transport = Recorder()

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, attempt_reserve=0.25, clock=clock, sleep=clock.sleep)
        outcomes = await engine.submit(calls(0, 2), deadline=clock() + 0.2, flush=True)
        assert [o.status for o in outcomes] == [MessageStatus.TIMED_OUT] * 2
        assert all(isinstance(o.error, RetryableDeliveryError) and o.error.kind == "deadline" for o in outcomes)
        await engine.drain()

    run(main())
    assert transport.batches == []


def test_a_caller_whose_deadline_passes_gets_timed_out_while_the_batch_goes_on() -> None:
    release = threading.Event()
    transport = Recorder(lambda batch: release.wait(5) and None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        engine = DeliveryEngine(transport, EXACT)
        outcomes = await engine.submit(calls(0, 2), deadline=loop.time() + 0.05, flush=True)
        assert [o.status for o in outcomes] == [MessageStatus.TIMED_OUT] * 2
        assert all(o.error is None for o in outcomes)  # still in flight, not failed
        release.set()
        later = await engine.submit(calls(0, 2), flush=True)  # the same messages: already in flight, shared
        assert [o.status for o in later] == [MessageStatus.DELIVERED] * 2
        await engine.drain()

    run(main())
    assert transport.batches == [[c.message_id for c in calls(0, 2)]]


def test_a_batch_is_retried_through_the_retry_policy(clock: FakeClock) -> None:
    answers = [RetryableDeliveryError("503", status=503), RetryableDeliveryError("503", status=503), None]
    transport = Recorder(lambda batch: answers.pop(0))

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, clock=clock, sleep=clock.sleep)
        (outcome,) = await engine.submit(calls(0, 1), flush=True)
        assert outcome.delivered
        assert outcome.attempts == 3
        await engine.drain()
        assert engine.metrics.requests == {"503": 2, "200": 1}
        assert engine.metrics.retries == 2
        assert engine.metrics.in_flight == 0

    run(main())
    assert clock.sleeps == [0.5, 1.0]


def test_after_a_split_each_message_gets_its_own_sub_batch_outcome() -> None:
    batch = calls(0, 4)
    poison = batch[2].message_id

    def answer(sent: Sequence[TrackCall]) -> Exception | None:
        if len(sent) > 1 or sent[0].message_id == poison:
            return PayloadTooLargeError("too large", status=413, kind="too_large", count=len(sent))
        return None

    transport = Recorder(answer)

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT)
        outcomes = await engine.submit(batch, flush=True)
        assert [o.status for o in outcomes] == ["delivered", "delivered", "failed", "delivered"]
        failed = outcomes[2]
        assert isinstance(failed.error, PayloadTooLargeError)
        assert failed.error.count == 1
        assert failed.attempts == 1
        await engine.drain()

    run(main())


def test_a_permanent_error_fails_the_batch_with_its_error_and_attempts() -> None:
    transport = Recorder(lambda batch: PermanentDeliveryError("401", status=401))

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT)
        outcomes = await engine.submit(calls(0, 3), flush=True)
        assert {(o.status, o.attempts) for o in outcomes} == {(MessageStatus.FAILED, 1)}
        assert all(isinstance(o.error, PermanentDeliveryError) and o.error.status == 401 for o in outcomes)
        await engine.drain()

    run(main())


# -- hooks ------------------------------------------------------------------------------------------------------


class RecordingPacer:
    def __init__(self, log: list[str], allow: bool = True) -> None:
        self.log = log
        self.allow = allow

    async def acquire(self, messages: int, deadline: float | None) -> bool:
        self.log.append(f"acquire {messages}")
        return self.allow

    def pause(self, retry_after: float | None, events: int) -> None:
        self.log.append(f"pause {retry_after} {events}")


def test_the_pacer_is_acquired_before_every_request_and_paused_by_a_429_before_the_retry(clock: FakeClock) -> None:
    log: list[str] = []
    answers = [RetryableDeliveryError("429", status=429, retry_after=7.0), None]
    transport = Recorder(lambda batch: answers.pop(0), log)

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, pacer=RecordingPacer(log), clock=clock, sleep=clock.sleep)
        (outcome,) = await engine.submit(calls(0, 1), flush=True)
        assert outcome.delivered
        await engine.drain()

    run(main())
    assert log == ["acquire 1", "send 1", "pause 7.0 1", "acquire 1", "send 1"]
    assert clock.sleeps == [7.0]


def test_a_pacer_that_says_the_deadline_would_pass_times_the_messages_out_unsent() -> None:
    log: list[str] = []
    transport = Recorder(None, log)

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, pacer=RecordingPacer(log, allow=False))
        outcomes = await engine.submit(calls(0, 2), deadline=asyncio.get_running_loop().time() + 60, flush=True)
        assert [o.status for o in outcomes] == [MessageStatus.TIMED_OUT] * 2
        await engine.drain()

    run(main())
    assert log == ["acquire 2"]


def enrich(batch: Sequence[TrackCall], log: list[int]) -> list[StageResult]:
    log.append(len(batch))
    out: list[StageResult] = []
    for call in batch:
        i = int(call.message_id.rsplit(":", 1)[1])
        if i == 1:
            out.append(StageFailure(RetryableDeliveryError("lookup down", kind="identity"), "identity_lookup_failed"))
        else:
            out.append(make_call(i, user=f"user-{i}"))
    return out


@pytest.mark.parametrize("kind", ["threaded", "async"])
def test_the_batch_stage_runs_once_per_batch_right_before_sending(kind: str) -> None:
    stage_calls: list[int] = []
    sent: list[dict[str, Any]] = []

    class Keep(Recorder):
        def send(self, batch: Sequence[TrackCall]) -> None:
            sent.extend(call.message for call in batch)
            super().send(batch)

    transport = Keep()

    def threaded(batch: Sequence[TrackCall]) -> list[StageResult]:
        assert transport.batches == []  # nothing sent before the stage ran
        return enrich(batch, stage_calls)

    async def asynchronous(batch: Sequence[TrackCall]) -> list[StageResult]:
        return threaded(batch)

    async def main() -> None:
        stage = threaded if kind == "threaded" else asynchronous
        engine = DeliveryEngine(transport, EXACT, stage=stage, max_messages=3, max_in_flight=1)
        outcomes = await engine.submit(calls(0, 3), flush=True)
        assert [o.status for o in outcomes] == ["delivered", "failed", "delivered"]
        assert outcomes[1].reason == "identity_lookup_failed"
        assert outcomes[1].call.message_id == calls(1, 1)[0].message_id
        assert outcomes[0].call.message["userId"] == "user-0"
        await engine.drain()

    run(main())
    assert stage_calls == [3]
    assert [m.get("userId") for m in sent] == ["user-0", "user-2"]


# -- synchronous facade and real HTTP ---------------------------------------------------------------------------


def test_the_engine_thread_delivers_to_the_stand_in_and_counts_requests(write_key: str) -> None:
    with StandIn(write_key) as segment:
        segment.script(500)
        transport = SegmentTransport(write_key, host=segment.url)
        policy = RetryPolicy(max_attempts=3, backoff_multiplier=0, jitter=0)
        engine = DeliveryEngine(transport, policy, max_messages=50)
        with EngineThread(engine) as thread:
            futures = [thread.submit(calls(i * 40, 40)) for i in range(5)]
            outcomes = [o for future in futures for o in future.result(10)]
        transport.close()
        accepted = segment.accepted_ids
    assert all(o.delivered for o in outcomes)
    assert accepted == {o.call.message_id for o in outcomes}
    assert engine.metrics.requests["500"] == 1
    assert engine.metrics.requests["200"] == engine.metrics.batches


# -- what serve relies on (ported from the GroupCommitBatcher tests) --------------------------------------------


def test_a_transport_error_that_is_no_delivery_error_reaches_every_caller_of_the_batch() -> None:
    def answer(batch: Sequence[TrackCall]) -> Exception:
        return OSError("disk full")

    async def main() -> None:
        engine = DeliveryEngine(Recorder(answer), EXACT, max_messages=4, linger=60, max_linger=60)
        first = asyncio.ensure_future(engine.submit(calls(0, 2)))
        second = asyncio.ensure_future(engine.submit(calls(2, 2)))
        for task in (first, second):
            with pytest.raises(OSError, match="disk full"):
                await task
        await engine.drain()

    run(main())


def test_waiting_messages_go_as_soon_as_a_slot_frees() -> None:
    # The batch that finishes must free its slot before the flush it triggers, or the waiting messages sit with no
    # timer (linger is an hour here) until another caller happens to arrive.
    transport = Recorder()

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, max_messages=1, linger=3600, max_linger=3600, max_in_flight=1)
        outcomes = await asyncio.wait_for(engine.submit(calls(0, 3), flush=True), 5)
        assert all(o.delivered for o in outcomes)
        await engine.drain()

    run(main())
    assert len(transport.batches) == 3


def test_a_batch_takes_the_latest_deadline_of_its_messages() -> None:
    # A message left from a caller already answered must not cut a fresh caller's retries short: alone, the first
    # message would time out unsent; sharing a batch with a fresh one, it goes.
    transport = Recorder()

    async def main() -> None:
        now = asyncio.get_running_loop().time()
        engine = DeliveryEngine(transport, EXACT, max_messages=2, linger=3600, max_linger=3600)
        _, fresh = await asyncio.gather(engine.submit(calls(0, 1), now - 1), engine.submit(calls(1, 1), now + 60))
        assert fresh[0].delivered
        await engine.drain()

    run(main())
    assert transport.batches == [[c.message_id for c in calls(0, 2)]]
