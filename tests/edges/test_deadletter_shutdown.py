"""Dead-letter recording across a stop of ``serve``'s app: a request that reaches its records after the stop is
not recorded (so answered 503), and the app, started again, records (and answers) every later request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from segment_bridge.outcomes import Refusal, RefusalReason

pytest.importorskip("starlette")

TOKEN = "tw_auth_T0ken-for-shutdown-0123456789"


class AcceptingTransport:
    def send(self, batch: Sequence[Any]) -> None:
        pass

    def close(self) -> None:
        pass


def refusal(number: int) -> Refusal:
    return Refusal(RefusalReason.UNKNOWN_EVENT_TYPE, f"unknown type {number}", "route it elsewhere", f"EV{number}", "x")


def test_records_that_arrive_after_a_stop_do_not_stall_the_app_started_again(tmp_path: Path) -> None:
    from segment_bridge.server import ServerConfig, create_app
    from segment_bridge.settings import Settings

    path = tmp_path / "refused.jsonl"
    config = ServerConfig.from_env(
        {}, public_url="https://bridge.example.com/events", auth_token=TOKEN, dead_letter=path
    )
    bridge = create_app(Settings(), config, transport=AcceptingTransport()).state.bridge

    async def scenario() -> None:
        bridge.start()
        assert await bridge._record([(refusal(1), {"id": "EV1"})], kind="refused")
        await bridge.stop()
        # A request still in progress when the app stopped (its delivery was drained) reaches its records now:
        # not recorded, so it is answered 503 and Twilio retries it.
        assert not await bridge._record([(refusal(2), {"id": "EV2"})], kind="refused")
        bridge.start()  # a host that runs the lifespan again
        try:
            recorded = await asyncio.wait_for(bridge._record([(refusal(3), {"id": "EV3"})], kind="refused"), 5)
        finally:
            await bridge.stop()
        assert recorded

    asyncio.run(scenario())
    assert [b'"EV1"' in line or b'"EV3"' in line for line in path.read_bytes().splitlines()] == [True, True]
