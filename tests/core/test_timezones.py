"""The RFC 2822 ``Timestamp`` parameter: RFC 2822's zones are read, any other zone is refused, never guessed.

An event's time falls back to the ``Timestamp`` callback parameter when ``time`` and ``data.timestamp`` are
absent. The event is judged alike from its bytes and as a decoded object (``translate_event``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eventfiles import load_event

from segment_bridge import translate_event, translate_record
from segment_bridge.events import TimeZoneError, event_timestamp
from segment_bridge.mapping import load_mapping
from segment_bridge.outcomes import Outcome, RefusalReason, Translation

MAPPING = load_mapping()
REFUSED_ZONES = ["CET", "CEST", "BST", "IST", "AST", "ADT", "EET", "A", "J", "Europe/Paris", "GMT+1", "+01:00"]


def _event(timestamp: str) -> dict[str, Any]:
    event = load_event("real_inbound_initiated.json")
    del event["time"]
    del event["data"]["timestamp"]
    event["data"]["request"]["parameters"]["Timestamp"] = timestamp
    return event


def _both_ways(timestamp: str) -> tuple[Translation, Translation]:
    event = _event(timestamp)
    (fast,) = translate_record(json.dumps(event).encode(), MAPPING)
    general = translate_event(event, MAPPING)
    return fast, general


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("Mon, 02 Mar 2026 14:54:00 +0000", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 14:54:00 -0000", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 15:54:00 +0100", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 09:24:00 -0530", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 14:54:00 UT", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 14:54:00 GMT", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 14:54:00 gmt", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 14:54:00 Z", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 14:54:00 UTC", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 09:54:00 EST", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 10:54:00 EDT", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 08:54:00 CST", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 09:54:00 CDT", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 07:54:00 MST", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 08:54:00 MDT", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 06:54:00 PST", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 07:54:00 PDT", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 14:54:00 +0000 (UTC)", "2026-03-02T14:54:00.000Z"),
        ("2 Mar 2026 15:54 +0100", "2026-03-02T14:54:00.000Z"),
        ("Mon, 02 Mar 2026 15:54:00+0100", "2026-03-02T14:54:00.000Z"),
    ],
)
def test_rfc2822_zones_are_read_the_same_on_both_ways(timestamp: str, expected: str) -> None:
    assert event_timestamp(timestamp, rfc2822=True) == expected
    for translation in _both_ways(timestamp):
        assert translation.outcome is Outcome.TRANSLATED
        assert translation.track is not None
        assert translation.track.message["timestamp"] == expected


@pytest.mark.parametrize("zone", REFUSED_ZONES)
def test_an_unknown_zone_is_refused_with_its_reason_on_both_ways(zone: str) -> None:
    timestamp = f"Mon, 02 Mar 2026 14:54:00 {zone}"
    with pytest.raises(TimeZoneError, match="unknown time zone"):
        event_timestamp(timestamp, rfc2822=True)
    fast, general = _both_ways(timestamp)
    for translation in (fast, general):
        assert translation.outcome is Outcome.REFUSED
        assert translation.refusal is not None
        assert translation.refusal.reason is RefusalReason.INVALID_EVENT
        assert translation.refusal.message.startswith("data.request.parameters.Timestamp: unknown time zone")
        assert "its offset is not guessed" in translation.refusal.message
        assert "+0000" in translation.refusal.message  # says what is accepted
    assert fast.refusal == general.refusal


def test_the_refusal_names_a_zone_name_but_never_quotes_other_text() -> None:
    fast, _ = _both_ways("Mon, 02 Mar 2026 14:54:00 CET")
    assert fast.refusal is not None and "'CET'" in fast.refusal.message
    fast, _ = _both_ways("Mon, 02 Mar 2026 14:54:00 Europe/Paris")
    assert fast.refusal is not None and "Paris" not in fast.refusal.message


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        ("Mon, 02 Mar 2026 14:54:00", "no time zone"),
        ("Mon, 02 Mar 2026 14:54:00 +2400", "time zone offset out of range"),
        ("Mon, 02 Mar 2026 14:54:00 +0160", "time zone offset out of range"),
    ],
)
def test_a_missing_or_impossible_zone_is_refused(timestamp: str, message: str) -> None:
    fast, general = _both_ways(timestamp)
    for translation in (fast, general):
        assert translation.refusal is not None
        assert translation.refusal.message == f"data.request.parameters.Timestamp: {message}" + (
            "; RFC 2822 takes a numeric offset such as +0000 or -0500, or UT, UTC, GMT, Z, EST, EDT, CST, CDT, MST, "
            "MDT, PST, PDT"
        )


@pytest.mark.parametrize("timestamp", ["yesterday", "Mon, 02 Mar 2026", "Mon, 32 Mar 2026 14:54:00 +0000"])
def test_what_is_not_rfc2822_keeps_its_reason(timestamp: str) -> None:
    fast, general = _both_ways(timestamp)
    for translation in (fast, general):
        assert translation.refusal is not None
        assert translation.refusal.message == "data.request.parameters.Timestamp: not a valid RFC 2822 timestamp"


def test_time_and_data_timestamp_still_win_over_the_parameter() -> None:
    event = load_event("real_inbound_initiated.json")
    event["data"]["request"]["parameters"]["Timestamp"] = "Mon, 02 Mar 2026 14:54:00 CET"
    (translation,) = translate_record(json.dumps(event).encode(), MAPPING)
    assert translation.outcome is Outcome.TRANSLATED
