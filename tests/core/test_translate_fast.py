"""translate: the typed decoder's fast path gives exactly what the general path gives, whatever the event.

``translate_record`` first tries the typed decoder (msgspec structs with one field per parameter the mapping
reads) and falls back to the general path (orjson, then the pydantic models) for anything it does not take. The
general path is the reference: for any JSON, the result must be the same whichever path produced it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eventfiles import event_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_bridge import translate_event, translate_record
from segment_bridge.catalog import SUPPORTED_TYPES
from segment_bridge.events import loads_exact
from segment_bridge.mapping import CompiledMapping, load_mapping, parse_mapping
from segment_bridge.outcomes import Translation

# Only sources the typed decoder carries (so the fast path is taken), with hashing, identity fallbacks and types.
HOT = parse_mapping(
    {
        "events": {event_type: "Call Progressed" for event_type in SUPPORTED_TYPES[:3]},
        "identity": {
            "anonymous_id": ["derived:customer_phone", "data:eventSid", "param:CallSid", "data:sid"],
            "user_id": ["param:CustomerId", "event:source"],
        },
        "hashing": {"phone_numbers": True},
        "properties": {
            "sid": {"from": ["param:CallSid", "data:sid"]},
            "event_sid": {"from": ["data:eventSid"]},
            "data_time": {"from": ["data:timestamp"]},
            "time": {"from": ["event:time"]},
            "sequence_number": {"from": ["param:SequenceNumber"], "type": "int"},
            "as_text": {"from": ["param:CallDuration", "param:SequenceNumber"], "type": "string"},
            "phone": {"from": ["param:ForwardedFrom", "param:From"], "pii": "phone"},
            "constant": {"value": "x"},
            "schema_version": {"from": ["derived:schema_version"]},
            "spec": {"from": ["event:specversion"]},
        },
    }
)
MAPPINGS = {"default": load_mapping(), "hot": CompiledMapping.compile(HOT, hash_key=b"k")}


def summary(translation: Translation) -> tuple[Any, ...]:
    refusal = translation.refusal
    track = translation.track
    return (
        translation.outcome,
        translation.event_id,
        translation.event_type,
        translation.note,
        None if refusal is None else (refusal.reason, refusal.message, refusal.hint),
        None if track is None else (track.body, track.message, track.size),
        translation.event,
    )


def took_fast_path(translation: Translation) -> bool:
    return translation._event is None and translation.raw is not None


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


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0", "42", " 7", "x", "²", "9" * 19, "inbound", "outbound-api", "+14155550100"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.sampled_from(["a", "b"]), scalars))
times = st.sampled_from(
    [
        "2026-01-01T00:00:03.000Z",
        "2026-01-01T00:00:03Z",
        "2026-01-01T00:00:03.123456+02:00",
        "2025-W01-1T00:00:00.000Z",
        "2026-02-30T00:00:00.000Z",
        "0000-01-01T00:00:00.000Z",
        "Thu, 01 Jan 2026 00:00:03 GMT",
        "",
        "soon",
        None,
        5,
    ]
)
parameter_names = st.sampled_from(
    [
        "CallSid", "call_sid", "Direction", "direction", "From", "from", "To", "to", "SequenceNumber",
        "sequence_number", "CallDuration", "ForwardedFrom", "CustomerId", "customer_id", "Timestamp", "timestamp",
        "CallStatus", "Unread",
    ]
)  # fmt: skip
directions = st.sampled_from(["inbound", "outbound-dial", "trunking-originating", "trunking-terminating"])
parameters = st.dictionaries(parameter_names, st.one_of(values, times, directions), max_size=10)
valid_events = st.fixed_dictionaries(
    {
        "specversion": st.just("1.0"),
        "id": st.sampled_from(["VW1", "/a/b"]),
        "source": st.sampled_from(["/2010-04-01/Accounts/AC1/Calls/CA1.json", "s"]),
        "type": st.sampled_from(SUPPORTED_TYPES),
        "time": st.one_of(st.just("2026-01-01T00:00:03.000Z"), times),
        "data": st.fixed_dictionaries(
            {"sid": st.sampled_from(["CA1", "CA2"])},
            optional={
                "timestamp": times,
                "eventSid": st.one_of(st.just("EV1"), values),
                "event_sid": st.one_of(st.just("EV2"), values),
                "request": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"parameters": parameters})),
                "response": st.fixed_dictionaries({"responseBody": st.just("PD94")}),
            },
        ),
    },
    optional={
        "dataschema": st.sampled_from(["https://x/Voice.WebhookEvent/2", "https://x/", "7", ""]),
        "datacontenttype": st.just("application/json"),
        "extension": values,
    },
)
DELETE = object()
# Where a mutation may strike: every field the typed decoder checks, and the containers around them.
paths = st.sampled_from(
    [
        ("specversion",), ("id",), ("source",), ("type",), ("time",), ("dataschema",), ("data",), ("data", "sid"),
        ("data", "timestamp"), ("data", "eventSid"), ("data", "event_sid"), ("data", "request"),
        ("data", "request", "parameters"),
    ]
)  # fmt: skip
mutations = st.just([]) | st.lists(
    st.tuples(
        paths,
        st.one_of(
            st.just(DELETE),
            values,
            times,
            st.sampled_from(["", "1.0", "com.twilio.eventstreams.test-event", "x", '{"sid": "CA1"}']),
            parameters,
        ),
    ),
    max_size=2,
)


def mutated(event: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    for path, value in changes:
        node: Any = event
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            if value is DELETE:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    return event


@pytest.mark.parametrize("name", sorted(MAPPINGS))
@settings(max_examples=600, deadline=None)
@given(event=valid_events, changes=mutations, as_text=st.booleans())
def test_fast_path_matches_the_general_path(
    name: str, event: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]], as_text: bool
) -> None:
    mapping = MAPPINGS[name]
    text = json.dumps(mutated(event, changes))
    (result,) = translate_record(text if as_text else text.encode(), mapping)
    reference = translate_event(loads_exact(text), mapping)
    assert summary(result) == summary(reference)


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_real_events_take_the_fast_path(name: str) -> None:
    fixtures = ("real_inbound_answered.json", "snake_case_params_answered.json", "real_outbound_busy_completed.json")
    for fixture in (*fixtures, "seed_answered.json"):
        (result,) = translate_record(event_bytes(fixture), MAPPINGS[name])
        assert took_fast_path(result), fixture
        assert summary(result) == summary(translate_event(loads_exact(event_bytes(fixture)), MAPPINGS[name]))


def test_a_mapping_that_reads_beyond_the_typed_decoder_has_none() -> None:
    document = {"events": {SUPPORTED_TYPES[0]: "Call Initiated"}, "properties": {"code": {"from": ["data:response"]}}}
    mapping = CompiledMapping.compile(parse_mapping(document))
    assert mapping.reads_whole_event
    assert mapping.decoder is None


@pytest.mark.parametrize("name", sorted(MAPPINGS))
@pytest.mark.parametrize("direction_key", ["Direction", "direction"])
@pytest.mark.parametrize(
    "direction", ["inbound", "outbound-api", "outbound-dial", "trunking-originating", "trunking-terminating", "", "x"]
)
@pytest.mark.parametrize(
    "phones", [{"From": "+1", "To": "+2"}, {"from": "+1", "to": "+2"}, {"To": "+2"}, {"From": "", "from": "+1"}]
)
def test_the_customer_phone_is_read_alike_on_both_paths(
    name: str, direction_key: str, direction: str, phones: dict[str, str]
) -> None:
    # Every branch of the customer-phone rule, which both compiled functions hold inline.
    event = call_event({direction_key: direction, **phones})
    (result,) = translate_record(json.dumps(event).encode(), MAPPINGS[name])
    assert took_fast_path(result)
    assert summary(result) == summary(translate_event(event, MAPPINGS[name]))


@pytest.mark.parametrize("name", sorted(MAPPINGS))
@pytest.mark.parametrize("junk", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"])
@pytest.mark.parametrize("where", ["unread parameter", "unread data field", "unknown attribute", "key"])
def test_invalid_utf8_where_the_typed_decoder_skips_is_not_json_on_either_path(
    name: str, junk: bytes, where: str
) -> None:
    # msgspec checks UTF-8 only in the strings it decodes; orjson refuses it anywhere, so the general path answers
    # invalid_json, and a translation made from such bytes could not decode its own `event`.
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
    (result,) = translate_record(raw, MAPPINGS[name])
    assert result.refusal is not None
    assert result.refusal.reason == "invalid_json"
    assert result.event == raw  # kept as bytes, so the dead-letter record keeps every byte


def test_valid_utf8_beyond_ascii_still_takes_the_fast_path() -> None:
    event = call_event({"CallerName": "Zoë 😀", "Unread": "é"})
    raw = json.dumps(event, ensure_ascii=False).encode()
    (result,) = translate_record(raw, MAPPINGS["default"])
    assert took_fast_path(result)
    assert summary(result) == summary(translate_event(event, MAPPINGS["default"]))


def test_rich_reprs_show_ids_only() -> None:
    (result,) = translate_record(event_bytes("real_inbound_answered.json"), MAPPINGS["default"])
    assert result.track is not None
    for value in (result, result.track):
        shown = repr(list(value.__rich_repr__()))
        assert "VW" in shown
        assert "+1" not in shown and "properties" not in shown
