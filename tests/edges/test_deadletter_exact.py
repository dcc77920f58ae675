"""Dead-letter records keep integers beyond 64 bits exact (orjson cannot write them)."""

from __future__ import annotations

import json
from pathlib import Path

from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.outcomes import Refusal, RefusalReason


def test_a_record_with_an_integer_beyond_64_bits_is_written_exactly(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    event = {"id": "EV1", "data": {"request": {"parameters": {"CallDuration": 2**64, "From": "+14155550100 ✓"}}}}
    with DeadLetterWriter(path) as writer:
        writer.write(Refusal(RefusalReason.INVALID_EVENT, "a mapped value cannot be sent", event_id="EV1"), event)
    (line,) = path.read_bytes().splitlines()
    assert json.loads(line)["event"] == event
