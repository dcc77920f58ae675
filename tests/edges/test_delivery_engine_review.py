"""The delivery engine under faults a production run meets: a metrics hook that raises, outcomes held by the
hundred thousand (replay), an engine thread closed after its transport crashed."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Sequence

import pytest

from segment_bridge.delivery import DeliveryEngine, EngineMetrics, EngineThread, RetryPolicy
from segment_bridge.delivery.batches import BatchResult
from segment_bridge.track import TrackCall

EXACT = RetryPolicy(max_attempts=1, budget_seconds=60, max_retry_after=30, backoff_multiplier=0.5, jitter=0)


def make_call(i: int) -> TrackCall:
    message = {
        "type": "track",
        "event": "Call Answered",
        "anonymousId": f"CA{i:032d}",
        "messageId": f"twilio-voice:{i:040d}",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "properties": {"call_sid": f"CA{i:032d}"},
    }
    return TrackCall.from_message(message, f"EV{i}", "com.twilio.voice.status-callback.call.answered")


class Accepting:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def send(self, batch: Sequence[TrackCall]) -> None:
        with self.lock:
            self.sent.extend(call.message_id for call in batch)

    def close(self) -> None:
        pass


class BrokenExporter(EngineMetrics):
    """A metrics subclass whose export fails (a bug, a full registry): delivery must go on regardless."""

    def request_finished(self, status: str, seconds: float) -> None:
        super().request_finished(status, seconds)
        raise RuntimeError("exporter down")

    def batch_settled(self, results: Sequence[BatchResult]) -> None:
        super().batch_settled(results)
        raise RuntimeError("exporter down")


def test_a_metrics_hook_that_raises_frees_the_slot_and_settles_every_message() -> None:
    # Accepted by Segment, a batch is delivered whatever the exporter says. One slot: had the failing hook kept it,
    # the second batch would never be sent and its caller would wait forever (serve: every later request answered
    # 503; shutdown's drain hung).
    transport = Accepting()

    async def main() -> None:
        engine = DeliveryEngine(transport, EXACT, max_messages=2, max_in_flight=1, metrics=BrokenExporter())
        first = [make_call(i) for i in range(4)]
        outcomes = await asyncio.wait_for(engine.submit(first, flush=True), 5)
        assert all(outcome.delivered for outcome in outcomes)
        later = await asyncio.wait_for(engine.submit([make_call(9)], flush=True), 5)
        assert later[0].delivered
        await asyncio.wait_for(engine.drain(), 5)

    asyncio.run(main())
    assert len(transport.sent) == 5


def test_outcomes_are_not_tracked_by_the_garbage_collector() -> None:
    # Replay holds an outcome per message in flight; tracked, each brought the next full collection (which walks
    # every message held) closer: a third of replay's CPU per event.
    with EngineThread(DeliveryEngine(Accepting(), EXACT)) as sender:
        outcomes = sender.deliver([make_call(i) for i in range(3)])
    assert all(outcome.delivered for outcome in outcomes)
    assert not any(gc.is_tracked(outcome) for outcome in outcomes)


class Crashing:
    def send(self, batch: Sequence[TrackCall]) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def test_an_engine_thread_closed_after_its_transport_crashed_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    sender = EngineThread(DeliveryEngine(Crashing(), EXACT))
    with pytest.raises(OSError, match="disk full"):
        sender.deliver([make_call(1)])
    sender.close(abandon=True)
    sender.close()  # twice: nothing left to do
    left = [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]
    assert left == []


def test_a_worker_waiting_for_the_pacer_gives_up_when_the_loop_stops() -> None:
    # A second Ctrl-C while replay closes stops the engine's loop: a worker waiting for the pacer's answer must not
    # block the pool's shutdown for good.
    class NeverAcquires:
        async def acquire(self, messages: int, deadline: float | None) -> bool:
            await asyncio.Event().wait()
            return True

        def pause(self, retry_after: float | None, events: int) -> None:
            pass

    engine = DeliveryEngine(Accepting(), EXACT, pacer=NeverAcquires())
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    answers: list[bool] = []
    worker = threading.Thread(
        target=lambda: answers.append(engine._before_attempt(loop, None)([make_call(1)])), daemon=True
    )
    worker.start()
    try:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=5)
        worker.join(timeout=5)
        assert not worker.is_alive()
        assert answers == [False]
    finally:
        if runner.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            runner.join(timeout=5)
        # The worker cancelled its wait; let the stopped loop see that before it is closed.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
    closed = engine._before_attempt(loop, None)  # a closed loop: nothing more is sent, at once
    assert closed([make_call(2)]) is False
