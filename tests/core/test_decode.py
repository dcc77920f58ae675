"""The one decoder: what a valid event is, for every input, whichever way it arrives.

Every line, body, array element and dead-letter record goes through the same msgspec decoder (events.py), so an
event is judged alike alone, in an array, as a string ``data``, from its dead-letter record, and from any caller's
stack depth. These pin the edges of JSON it decides deliberately.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import orjson
import pytest
from eventfiles import event_bytes, load_event

from segment_bridge import Refusal, RefusalReason, translate_event, translate_record
from segment_bridge.catalog import SUPPORTED_TYPES
from segment_bridge.mapping import CompiledMapping, load_mapping, parse_mapping
from segment_bridge.outcomes import Translation

MAPPING = load_mapping()
# Sources of every kind: typed attributes and data fields, an extension, data paths beyond the typed fields.
WIDE = CompiledMapping.compile(
    parse_mapping(
        {
            "events": {event_type: "Call Progressed" for event_type in SUPPORTED_TYPES},
            "identity": {"anonymous_id": ["param:CallSid", "data:sid"], "user_id": ["event:partnerext"]},
            "properties": {
                "event_sid": {"from": ["data:eventSid"]},
                "response_code": {"from": ["data:response.responseCode"]},
                "method": {"from": ["data:request.method"]},
                "status_via_data": {"from": ["data:request.parameters.CallStatus"]},
                "content_type": {"from": ["event:datacontenttype"]},
                "schema_version": {"from": ["derived:schema_version"]},
            },
        }
    )
)


def call_event(parameters: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """A valid supported event with these callback parameters (and extra attributes)."""
    return {
        "specversion": "1.0",
        "id": "VW1",
        "source": "s",
        "type": SUPPORTED_TYPES[0],
        "time": "2026-01-01T00:00:03.000Z",
        **attributes,
        "data": {"sid": "CA1", "request": {"parameters": parameters}},
    }


def answer(translation: Translation) -> tuple[Any, ...]:
    refusal = translation.refusal
    track = translation.track
    return (
        translation.outcome,
        translation.event_id,
        translation.event_type,
        None if refusal is None else (refusal.reason, refusal.message),
        None if track is None else track.body,
    )


@pytest.mark.parametrize("junk", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"])
@pytest.mark.parametrize("where", ["unread parameter", "unread data field", "unknown attribute", "key"])
def test_invalid_utf8_anywhere_is_not_json(junk: bytes, where: str) -> None:
    # msgspec checks UTF-8 only in the strings it decodes: the whole input is checked first, so a translation
    # made from such bytes can always decode its own `event`.
    event = call_event({"CallSid": "CA1", "Unread": "value"}, datacontenttype="application/json")
    event["data"]["response"] = {"responseBody": "body"}
    text = json.dumps(event).encode()
    old, new = {
        "unread parameter": (b'"value"', b'"val' + junk + b'ue"'),
        "unread data field": (b'"body"', b'"bo' + junk + b'dy"'),
        "unknown attribute": (b'"application/json"', b'"application/' + junk + b'json"'),
        "key": (b'"Unread"', b'"Un' + junk + b'read"'),
    }[where]
    raw = text.replace(old, new)
    for record in (raw, b"[" + raw + b"]"):
        (result,) = translate_record(record, MAPPING)
        assert result.refusal is not None
        assert result.refusal.reason == "invalid_json"
        assert result.refusal.message.startswith("not JSON: bytes that are not valid UTF-8 at position ")
        assert result.event == record  # kept as bytes, so the dead-letter record keeps every byte


def test_valid_utf8_beyond_ascii_translates() -> None:
    event = call_event({"CallerName": "Zoë 😀", "Unread": "é"})
    (result,) = translate_record(json.dumps(event, ensure_ascii=False).encode(), MAPPING)
    assert result.track is not None
    assert result.event == event


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_literals_are_not_json(literal: bytes) -> None:
    raw = orjson.dumps(call_event({"Unread": "X"})).replace(b'"X"', literal)
    (result,) = translate_record(raw, MAPPING)
    assert result.refusal is not None and result.refusal.reason == "invalid_json"


def test_a_number_beyond_double_range_in_a_parameter_read_but_not_used_still_translates() -> None:
    # The Timestamp parameter is read only when neither `time` nor `data.timestamp` is set.
    raw = orjson.dumps(call_event({"CallSid": "CA1", "Timestamp": "X"})).replace(b'"X"', b"1e400")
    (result,) = translate_record(raw, MAPPING)
    assert result.track is not None, result.refusal
    without_time = orjson.dumps({**call_event({"Timestamp": "X"}), "time": None}).replace(b'"X"', b"1e400")
    (refused,) = translate_record(without_time, MAPPING)
    assert refused.refusal is not None
    assert refused.refusal.message == "data.request.parameters.Timestamp: not a valid RFC 2822 timestamp"


def test_duplicate_keys_take_the_last_value_alike_alone_and_in_an_array() -> None:
    plain = orjson.dumps(call_event({"CallSid": "CA1"}))
    raw = plain[:-1] + b',"type":"com.example.unknown"}'
    for record in (raw, b"[" + raw + b"]"):
        (result,) = translate_record(record, MAPPING)
        assert result.refusal is not None and result.refusal.reason == "unknown_event_type"


def _at_depth(frames: int, fn: Any) -> Any:
    return fn() if frames == 0 else _at_depth(frames - 1, fn)


@pytest.mark.parametrize("frames", [0, 400, sys.getrecursionlimit() - 150])
def test_the_nesting_limit_is_the_same_from_any_stack_depth(frames: int) -> None:
    # msgspec's own limit is Python's recursion limit counted from the caller: a server's deep stack would refuse
    # what a script takes. The bridge's limit is 1,024 levels, whoever calls.
    event = call_event({"CallSid": "CA1"})
    fits = orjson.dumps(event)[:-1] + b',"deep":' + b"[" * 1000 + b"]" * 1000 + b"}"
    too_deep = orjson.dumps(event)[:-1] + b',"deep":' + b"[" * 1030 + b"]" * 1030 + b"}"
    limit = sys.getrecursionlimit()
    (translated,) = _at_depth(frames, lambda: translate_record(fits, MAPPING))
    (refused,) = _at_depth(frames, lambda: translate_record(too_deep, MAPPING))
    assert sys.getrecursionlimit() == limit
    assert translated.track is not None, translated.refusal
    assert refused.refusal is not None and refused.refusal.reason == "invalid_json"
    assert refused.refusal.message.startswith("not JSON: values nested more than 1,024 levels deep at position ")
    # The event is decoded again for its dead-letter record or a failure report, from the same stack.
    node, levels = _at_depth(frames, lambda: translated.event["deep"]), 1
    while node:
        (node,) = node
        levels += 1
    assert levels == 1000


def test_only_the_event_sid_spelling_read_must_be_a_string() -> None:
    event = call_event({"CallSid": "CA1"})
    event["data"] |= {"eventSid": "EV1", "event_sid": 7}
    (kept,) = translate_record(orjson.dumps(event), WIDE)
    assert kept.track is not None and kept.track.message["properties"]["event_sid"] == "EV1"
    event["data"] = {"sid": "CA1", "event_sid": 7}
    (refused,) = translate_record(orjson.dumps(event), WIDE)
    assert refused.refusal is not None
    assert refused.refusal.message == "data.event_sid: Input should be a valid string"


def test_data_paths_and_extensions_beyond_the_typed_fields_are_read() -> None:
    event = load_event("real_inbound_answered.json")
    event["partnerext"] = "acme"
    event["datacontenttype"] = "application/json"
    event["data"]["request"]["method"] = "POST"
    for raw in (orjson.dumps(event), orjson.dumps([event])):
        (result,) = translate_record(raw, WIDE)
        assert result.track is not None, result.refusal
        assert result.track.message["userId"] == "acme"
        properties = result.track.message["properties"]
        assert properties["response_code"] == event["data"]["response"]["responseCode"]
        assert properties["method"] == "POST"
        assert properties["status_via_data"] == event["data"]["request"]["parameters"]["CallStatus"]
        assert properties["content_type"] == "application/json"
        assert properties["schema_version"] == 2


@pytest.mark.parametrize(
    "fixture", ["real_inbound_answered.json", "data_as_string_ringing.json", "snake_case_params_answered.json"]
)
def test_an_event_translates_alike_alone_in_an_array_as_an_object_and_from_its_dead_letter_record(
    fixture: str,
) -> None:
    raw = event_bytes(fixture)
    (alone,) = translate_record(raw, MAPPING)
    (in_array,) = translate_record(b"[" + raw + b"]", MAPPING)
    from_object = translate_event(json.loads(raw), MAPPING)
    record = Refusal(RefusalReason.DELIVERY_FAILED, "Segment answered 503").dead_letter_record(json.loads(raw))
    (from_record,) = translate_record(orjson.dumps(record), MAPPING)
    assert alone.track is not None
    assert answer(alone) == answer(in_array) == answer(from_object) == answer(from_record)
    assert alone.event == json.loads(raw) == from_record.event


@pytest.mark.parametrize(("body", "words"), [(b"[]", "an empty JSON array holds no CloudEvent")])
def test_an_empty_array_is_one_invalid_event(body: bytes, words: str) -> None:
    (result,) = translate_record(body, MAPPING)
    assert result.refusal is not None and result.refusal.reason == "invalid_event"
    assert result.refusal.message == words and result.event == []


def test_rich_reprs_show_ids_only() -> None:
    (result,) = translate_record(event_bytes("real_inbound_answered.json"), MAPPING)
    assert result.track is not None
    for value in (result, result.track):
        shown = repr(list(value.__rich_repr__()))
        assert "VW" in shown
        assert "+1" not in shown and "properties" not in shown


def test_data_fields_are_found_in_either_spelling() -> None:
    event = call_event({"CallSid": "CA1"})
    event["data"] |= {"event_sid": "EV9", "response": {"response_code": 204}}
    (result,) = translate_record(orjson.dumps(event), WIDE)
    assert result.track is not None, result.refusal
    assert result.track.message["properties"]["event_sid"] == "EV9"
    assert result.track.message["properties"]["response_code"] == 204


@pytest.mark.parametrize(
    ("body", "position"),
    [
        (b"0\x00", 1),  # found by the server's fuzz test: a scalar the struct refuses, then a NUL
        (b"1 2", 2),
        (b"null x", 5),
        (b'{"a": 1} x', 9),  # an object that is no CloudEvent, then text
        (b'{"specversion": "1.0"} {}', 23),
    ],
)
def test_text_after_a_value_that_is_no_call_event_is_not_json(body: bytes, position: int) -> None:
    # The struct refuses the value before msgspec reaches what follows it; what follows still decides the reason.
    (translation,) = translate_record(body, load_mapping())
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.INVALID_JSON
    assert translation.refusal.message == f"not JSON: trailing characters at position {position}"
