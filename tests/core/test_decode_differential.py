"""Edges where the one decoder first answered otherwise than the two paths before it (differential review).

Each input here was fed to today's code and to the code before the one-decoder change (825fe59); these pin the
answers where the new code was wrong and the old one right, or both wrong.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pytest

from segment_bridge import RefusalReason, translate_event, translate_record
from segment_bridge.catalog import SUPPORTED_TYPES
from segment_bridge.deadletter import record_line
from segment_bridge.mapping import CompiledMapping, load_mapping, parse_mapping
from segment_bridge.outcomes import Refusal

MAPPING = load_mapping()
#: The customer's number, else the call: Direction is read, and sent nowhere.
PHONE = CompiledMapping.compile(
    parse_mapping(
        {
            "events": {SUPPORTED_TYPES[0]: "Call Progressed"},
            "identity": {"anonymous_id": ["derived:customer_phone", "param:CallSid"]},
            "properties": {"call_sid": {"from": ["param:CallSid"]}},
        }
    )
)


def call_event(**data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "VW1",
        "source": "s",
        "type": SUPPORTED_TYPES[0],
        "time": "2026-01-01T00:00:03.000Z",
        "data": {"sid": "CA1", "request": {"parameters": {"CallSid": "CA1"}}, **data},
    }


def _broken_apply(event: Any, data: Any, params: Any) -> Any:
    raise KeyError("a bug")


@pytest.mark.parametrize("wrap", ["alone", "array element", "dead-letter record"])
def test_a_translation_error_keeps_the_event_id_and_type(wrap: str) -> None:
    # The id and type go to serve's answer, the log and the dead-letter record: a bug must not lose them.
    event = orjson.dumps(call_event())
    if wrap == "array element":
        event = b"[" + event + b"]"
    elif wrap == "dead-letter record":
        refusal = Refusal(RefusalReason.MISSING_IDENTITY, "m", "", "VW1", SUPPORTED_TYPES[0])
        event = record_line(refusal, json.loads(event))
    broken = dataclasses.replace(MAPPING, apply=_broken_apply)
    (translation,) = translate_record(event, broken)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.TRANSLATION_ERROR
    assert (translation.event_id, translation.event_type) == ("VW1", SUPPORTED_TYPES[0])
    assert (translation.refusal.event_id, translation.refusal.event_type) == ("VW1", SUPPORTED_TYPES[0])


@pytest.mark.parametrize("number", [b"1e400", b"99999999999999999999"])
@pytest.mark.parametrize("path", ["data", "data.request", "data.request.parameters"])
def test_a_number_out_of_range_where_an_object_belongs_is_said_so(number: bytes, path: str) -> None:
    # msgspec says only "Number out of range"; the field wants an object, not a string.
    event = call_event()
    *parents, last = path.split(".")
    node = event
    for key in parents:
        node = node[key]
    node[last] = "@@"
    (translation,) = translate_record(orjson.dumps(event).replace(b'"@@"', number), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.INVALID_EVENT
    assert translation.refusal.message == f"{path}: Input should be a JSON object"


@pytest.mark.parametrize("data", ["2025-01-01T00:00:00.000Z", "12345678901234567890 x", '{"sid": "CA1"} x', "null x"])
def test_data_as_a_string_that_starts_like_json_and_is_not_is_said_so(data: str) -> None:
    # msgspec refuses the first value's type before it reaches the text after it: that text decides the words.
    event = {**call_event(), "data": data}
    (translation,) = translate_record(orjson.dumps(event), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.INVALID_EVENT
    assert translation.refusal.message == "data: a string that is not JSON"
    assert (translation.event_id, translation.event_type) == ("VW1", SUPPORTED_TYPES[0])


@pytest.mark.parametrize("direction", [b"[" * 1000 + b"]" * 1000, b'{"a": "outbound-api"}', b"7", b'["inbound"]'])
def test_a_direction_that_is_no_string_names_no_customer_phone(direction: bytes) -> None:
    # derived:customer_phone read Direction with str(): a 1,000-deep array raised RecursionError (translation_error).
    event = call_event()
    event["data"]["request"]["parameters"].update({"Direction": "@@", "From": "+14155550100", "To": "+14155550199"})
    (translation,) = translate_record(orjson.dumps(event).replace(b'"@@"', direction), PHONE)
    assert translation.track is not None, translation.refusal
    assert translation.track.message["anonymousId"] == "CA1"  # the next identity source: CallSid


@pytest.mark.parametrize(
    ("value", "words"),
    [(b"[" * 300 + b"]" * 300, "values nested more than 254 levels deep"), (b"2" * 25, "an integer beyond 64 bits")],
)
def test_a_mapped_value_orjson_cannot_write_is_refused_in_words_that_say_why(value: bytes, words: str) -> None:
    # orjson refuses nesting beyond 254 levels as it refuses a big integer; the message said "64 bits" for both.
    event = call_event()
    event["data"]["request"]["parameters"]["CallStatus"] = "@@"
    (translation,) = translate_record(orjson.dumps(event).replace(b'"@@"', value), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.INVALID_EVENT
    assert translation.refusal.message == f"a mapped value cannot be sent: {words}"


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(("depth", "outcome"), [(1000, "translated"), (1100, "invalid_json")])
def test_translate_event_never_raises_on_a_deep_object(depth: int, outcome: str) -> None:
    # msgspec's encoder hit the caller's recursion limit: translate_event raised RecursionError for a decoded event
    # that translate_record takes (1,000 levels) or refuses (beyond 1,024) as text.
    event = call_event()
    event["extension"] = _nested(depth)
    translation = translate_event(event, MAPPING)
    assert (str(translation.refusal.reason) if translation.refusal else "translated") == outcome
    text = orjson.dumps({**event, "extension": "@@"}).replace(b'"@@"', b"[" * depth + b"]" * depth)
    (as_text,) = translate_record(text, MAPPING)
    assert (str(as_text.refusal.reason) if as_text.refusal else "translated") == outcome


@pytest.mark.parametrize(
    ("first", "where"),
    [(b'"id":null', b"{"), (b'"specversion":"0.3"', b"{"), (b'"sid":1', b'"data":{'), (b'"request":[]', b'"data":{')],
)
@pytest.mark.parametrize("wrap", ["alone", "array element"])
def test_a_duplicate_key_means_its_last_value_even_after_an_invalid_one(first: bytes, where: bytes, wrap: str) -> None:
    # msgspec checked every occurrence of a key, so an invalid earlier value refused an event whose last is valid
    # (and its dead-letter record, holding the last values, then translated on replay).
    raw = orjson.dumps(call_event()).replace(where, where + first + b",", 1)
    (translation,) = translate_record(b"[" + raw + b"]" if wrap == "array element" else raw, MAPPING)
    assert translation.track is not None, translation.refusal


def test_an_event_refused_for_a_duplicate_keys_last_value_is_refused_again_from_its_record() -> None:
    raw = orjson.dumps(call_event())[:-1] + b',"id":""}'
    (translation,) = translate_record(raw, MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.message == "id: String should have at least 1 character"
    (again,) = translate_record(record_line(translation.refusal, translation.event), MAPPING)
    assert again.refusal is not None and again.refusal.message == translation.refusal.message


@pytest.mark.parametrize("first", [b'"sid":1', b'"sid":"CA0"'])
def test_a_duplicate_key_in_data_sent_as_a_string_means_its_last_value(first: bytes) -> None:
    data = orjson.dumps(call_event()["data"]).replace(b"{", b"{" + first + b",", 1)
    (translation,) = translate_record(orjson.dumps({**call_event(), "data": data.decode()}), MAPPING)
    assert translation.track is not None, translation.refusal
    assert translation.track.message["anonymousId"] == "CA1"


def test_data_sent_as_a_string_whose_last_value_is_invalid_is_refused_for_it() -> None:
    data = orjson.dumps(call_event()["data"]).replace(b'"sid":"CA1"', b'"sid":"CA1","sid":2', 1)
    (translation,) = translate_record(orjson.dumps({**call_event(), "data": data.decode()}), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.message == "data.sid: Input should be a valid string"


@pytest.mark.parametrize("source", ["data:request", "data:request.parameters", "event:data"])
@pytest.mark.parametrize("data_as_string", [False, True])
def test_a_source_naming_a_whole_object_sends_all_of_it(source: str, data_as_string: bool) -> None:
    # The decoder keeps of data, data.request and its parameters only the fields the mapping reads: a source
    # naming one of them whole sent those fields (and a null Timestamp no one sent), not the object.
    mapping = CompiledMapping.compile(
        parse_mapping(
            {
                "events": {SUPPORTED_TYPES[0]: "Call Progressed"},
                "identity": {"anonymous_id": ["data:sid"]},
                "properties": {"whole": {"from": [source]}},
            }
        )
    )
    event = call_event(requestDateCreated="Thu, 01 Jan 2026 00:00:07 GMT")
    event["data"]["request"].update({"method": "POST", "url": "https://example.com/status"})
    event["data"]["request"]["parameters"].update({"From": "+14155550100", "CallStatus": "ringing"})
    data = event["data"]
    expected = {"data:request": data["request"], "data:request.parameters": data["request"]["parameters"]}
    expected["event:data"] = data
    if data_as_string:
        event["data"] = json.dumps(data)
        expected["event:data"] = event["data"]  # the attribute as sent, as before the one decoder
    for record in (orjson.dumps(event), b"[" + orjson.dumps(event) + b"]"):
        (translation,) = translate_record(record, mapping)
        assert translation.track is not None, translation.refusal
        assert translation.track.message["properties"]["whole"] == expected[source]
    assert mapping.properties(event)["whole"] == expected[source]
