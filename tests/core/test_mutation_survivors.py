"""Behaviours a mutation sample showed the suite did not hold (issue 15): each test here fails on that mutant.

The mutants are kept in benchmarks/mutants.toml; ``python benchmarks/mutants.py`` re-plants them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventfiles import load_event

from segment_bridge import Outcome, Refusal, RefusalReason, load_mapping, translate
from segment_bridge._resources import packaged_mapping
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.events import decode_json, event_timestamp
from segment_bridge.track import MAX_MESSAGE_BYTES, TrackCall, batch_growth

MAPPING = load_mapping()


# -- dead letters -----------------------------------------------------------------------------------------------


def test_a_new_dead_letter_writer_appends_to_the_records_of_earlier_runs(tmp_path: Path) -> None:
    # Each replay run and each Lambda cold start opens the file anew: earlier refused events must survive it.
    path = tmp_path / "dead.jsonl"
    for run in ("EV-first-run", "EV-second-run"):
        with DeadLetterWriter(path) as writer:
            writer.write(Refusal(RefusalReason.INVALID_EVENT, "bad", event_id=run), {"id": run})
    assert [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()] == ["EV-first-run", "EV-second-run"]


# -- identity ---------------------------------------------------------------------------------------------------


def test_a_mapped_user_id_keeps_the_anonymous_id(tmp_path: Path) -> None:
    # Segment links the anonymous and the known identity only when a message carries both.
    text = packaged_mapping().read_text().replace("user_id = []", 'user_id = ["param:AccountSid"]')
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    mapping = load_mapping(path)
    event = load_event("real_inbound_ringing.json")
    for raw in (orjson.dumps(event), orjson.dumps([event])):  # alone and in an array
        (translation,) = translate(raw, mapping)
        assert translation.track is not None
        message = translation.track.message
        assert message["userId"] == "AC3f1e2d4c5b6a79880716253443526170"
        assert message["anonymousId"] == event["data"]["request"]["parameters"]["From"]


# -- size -------------------------------------------------------------------------------------------------------


def _with_caller_name(length: int) -> dict[str, Any]:
    event = load_event("real_inbound_answered.json")
    event["data"]["request"]["parameters"]["CallerName"] = "x" * length
    return event


def _compact_size_with_caller_name(length: int) -> tuple[int, int]:
    """(compact bytes, bytes as the SDK sends it) of the message translated with a CallerName this long."""
    (translation,) = translate(orjson.dumps(_with_caller_name(length)), MAPPING)
    assert translation.track is not None
    return len(translation.track.body), len(json.dumps(translation.track.message).encode())


@pytest.mark.parametrize("compact", [32_758, MAX_MESSAGE_BYTES - 1])
def test_a_message_under_32_kb_compact_but_over_it_as_sent_is_refused(compact: int) -> None:
    # Segment counts what the SDK sends (json.dumps adds a space after every separator), not our compact bytes.
    small, _ = _compact_size_with_caller_name(10)
    length = 10 + compact - small
    event = _with_caller_name(length)
    (translation,) = translate(orjson.dumps(event), MAPPING)
    assert translation.refusal is not None, "sent, and Segment would answer 400"
    assert translation.refusal.reason is RefusalReason.MESSAGE_TOO_LARGE
    # The oracle: the message as the SDK serializes it is over the limit, its compact form under it.
    message = _message_for(length)
    assert len(orjson.dumps(message)) == compact <= MAX_MESSAGE_BYTES
    assert len(json.dumps(message).encode()) > MAX_MESSAGE_BYTES


def _message_for(length: int) -> dict[str, Any]:
    """The message a CallerName this long would give, built from a small one (it is refused, so has no track)."""
    (translation,) = translate(orjson.dumps(_with_caller_name(10)), MAPPING)
    assert translation.track is not None
    message = json.loads(json.dumps(translation.track.message))
    message["properties"]["caller_name"] = "x" * length
    return message


# -- time -------------------------------------------------------------------------------------------------------


@pytest.fixture
def kathmandu() -> Iterator[None]:
    """The process's local time zone is UTC+05:45 for the test (no host setting can hide a local-time reading)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "NPT-5:45"  # POSIX form: UTC+05:45 with no time-zone database needed
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.usefixtures("kathmandu")
def test_naive_timestamps_are_utc_whatever_the_host_time_zone() -> None:
    assert time.localtime().tm_gmtoff == 5 * 3600 + 45 * 60  # the zone really is in force
    assert event_timestamp("2025-01-01T00:00:00") == "2025-01-01T00:00:00.000Z"
    assert event_timestamp("Wed, 01 Jan 2025 00:00:00 -0000", rfc2822=True) == "2025-01-01T00:00:00.000Z"
    event = load_event("real_inbound_answered.json")
    event["time"] = "2025-01-01T00:00:00"
    (translation,) = translate(orjson.dumps(event), MAPPING)
    assert translation.track is not None
    assert translation.track.message["timestamp"] == "2025-01-01T00:00:00.000Z"


def test_a_space_instead_of_t_is_normalised_to_iso_8601() -> None:
    assert event_timestamp("2025-01-01 00:00:00.000Z") == "2025-01-01T00:00:00.000Z"
    event = load_event("real_inbound_answered.json")
    event["time"] = "2025-01-01 00:00:00.000Z"  # the output form's length, with a space
    for raw in (orjson.dumps(event), orjson.dumps([event])):
        (translation,) = translate(raw, MAPPING)
        assert translation.track is not None
        assert translation.track.message["timestamp"] == "2025-01-01T00:00:00.000Z"


# -- exact integers ---------------------------------------------------------------------------------------------


def without_long_digit_runs(value: Any) -> Any:
    """``value`` with every run of 20 or more digits in its strings broken, so only real integers have such runs."""
    if isinstance(value, str):
        return re.sub(r"[0-9]{19}", lambda match: match.group()[:18] + "x", value)
    if isinstance(value, dict):
        return {key: without_long_digit_runs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_long_digit_runs(item) for item in value]
    return value


def test_a_20_digit_integer_is_decoded_exactly() -> None:
    assert len(str(2**64)) == 20
    for raw in (b"[18446744073709551616]", "[18446744073709551616]"):
        (value,) = decode_json(raw)
        assert value == 2**64 and isinstance(value, int)
    event = without_long_digit_runs(load_event("real_inbound_answered.json"))
    event["data"]["request"]["parameters"]["CallDuration"] = 2**64
    line = json.dumps([event]).encode()
    assert re.findall(rb"[0-9]{20,}", line) == [b"18446744073709551616"]  # no other run to trip the check
    (in_array,) = translate(line, MAPPING)
    assert in_array.outcome is Outcome.REFUSED, "2**64 would be sent as a rounded float"
    assert in_array.refusal is not None and "beyond 64 bits" in in_array.refusal.message


# -- found by the kept mutant list (benchmarks/mutants.toml) -----------------------------------------------------


def _mapping(tmp_path: Path, old: str, new: str) -> Any:
    text = packaged_mapping().read_text()
    assert old in text
    path = tmp_path / "mapping.toml"
    path.write_text(text.replace(old, new))
    return load_mapping(path)


def test_an_integer_beyond_64_bits_in_string_data_is_refused_not_rounded() -> None:
    # Twilio sends some events with data as a JSON-encoded string: its integers must stay as exact as elsewhere.
    event = without_long_digit_runs(load_event("real_inbound_answered.json"))
    event["data"]["request"]["parameters"]["CallDuration"] = 2**64
    event["data"] = json.dumps(event["data"])
    for raw in (json.dumps(event), json.dumps([event])):
        (translation,) = translate(raw, MAPPING)
        assert translation.refusal is not None, "2**64 would be sent as a rounded float"
        assert "beyond 64 bits" in translation.refusal.message


def test_a_message_identified_by_user_id_alone_is_sent(tmp_path: Path) -> None:
    mapping = _mapping(
        tmp_path,
        'anonymous_id = ["derived:customer_phone", "param:CallSid", "data:sid"]\n'
        '# user_id = ["param:CustomerId"]   # set it only if your calls carry your own user id\nuser_id = []',
        'anonymous_id = []\nuser_id = ["param:AccountSid"]',
    )
    event = load_event("real_inbound_answered.json")
    # Non-ASCII, so the message takes the full check rather than the small-ASCII shortcut.
    event["data"]["request"]["parameters"]["CallerName"] = "Zoë"
    (translation,) = translate(orjson.dumps(event), mapping)
    assert translation.track is not None, translation.refusal
    assert "anonymousId" not in translation.track.message
    assert translation.track.message["userId"] == event["data"]["request"]["parameters"]["AccountSid"]


def test_the_longest_message_id_prefix_the_mapping_allows_gives_sendable_messages(tmp_path: Path) -> None:
    # The mapping takes a prefix of up to 59 characters: 59 + ":" + 40 hex digits is Segment's 100.
    mapping = _mapping(tmp_path, 'message_id_prefix = "twilio-voice"', f'message_id_prefix = "{"p" * 59}"')
    event = load_event("real_inbound_answered.json")
    event["data"]["request"]["parameters"]["CallerName"] = "Zoë"  # the full check, not the shortcut
    (translation,) = translate(orjson.dumps(event), mapping)
    assert translation.track is not None, translation.refusal
    assert len(translation.track.message_id) == 100


def test_dead_letter_records_keep_integers_exact_to_the_digit(tmp_path: Path) -> None:
    # 2**64 itself is exactly a float too: only an integer a float cannot hold shows a rounding on the way.
    path = tmp_path / "dead.jsonl"
    event = {"id": "EV1", "data": {"request": {"parameters": {"CallDuration": 2**64 + 1, "SequenceNumber": 3}}}}
    with DeadLetterWriter(path) as writer:
        writer.write(Refusal(RefusalReason.INVALID_EVENT, "a mapped value cannot be sent", event_id="EV1"), event)
    (line,) = path.read_bytes().splitlines()
    assert b'"CallDuration":18446744073709551617' in line
    parameters = json.loads(line)["event"]["data"]["request"]["parameters"]
    assert parameters == {"CallDuration": 2**64 + 1, "SequenceNumber": 3}
    assert all(type(value) is int for value in parameters.values())


def test_each_dead_letter_record_is_on_disk_and_counted_as_soon_as_written(tmp_path: Path) -> None:
    # A crash right after a refusal must not lose its record: it is flushed before write() returns, not at close.
    path = tmp_path / "dead.jsonl"
    with DeadLetterWriter(path) as writer:
        for number in (1, 2):
            writer.write(Refusal(RefusalReason.INVALID_EVENT, "bad", event_id=f"EV{number}"), {"id": f"EV{number}"})
            assert len(path.read_bytes().splitlines()) == number
            assert writer.count == number  # what the replay summary reports as dead-lettered


def test_a_batch_counts_the_comma_between_messages() -> None:
    call = TrackCall.from_message({"messageId": "m", "event": "Call Answered", "anonymousId": "a"}, "VW1", "t")
    assert batch_growth(0, 0, call, 10, 1_000) == call.size  # the first message: no comma
    assert batch_growth(1, call.size, call, 10, 1_000) == call.size + 1
    # Two messages fit only with the comma between them counted in.
    assert batch_growth(1, call.size, call, 10, 2 * call.size + 1) == call.size + 1
    assert batch_growth(1, call.size, call, 10, 2 * call.size) is None
