"""translate: fixtures in, track messages or refusals out. No fakes."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from eventfiles import BROKEN, EVENTS, GOLDEN, event_bytes, load_event
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_bridge import Outcome, Refusal, RefusalReason, __version__, load_mapping, translate, translate_event
from segment_bridge.samples import call_events
from segment_bridge.track import MAX_MESSAGE_BYTES

MAPPING = load_mapping()


def _outcomes(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for translation in translate(raw, MAPPING):
        record: dict[str, Any] = {"outcome": str(translation.outcome)}
        if translation.refusal is not None:
            record["reason"] = str(translation.refusal.reason)
        if translation.track is not None:
            record["message"] = translation.track.message
        out.append(record)
    return out


@pytest.mark.parametrize("name", sorted(path.name for path in EVENTS.glob("*.json")))
def test_golden_default_mapping(name: str) -> None:
    expected = json.loads((GOLDEN / name).read_text().replace("{{version}}", __version__))
    assert _outcomes(event_bytes(name)) == expected


def test_every_fixture_has_a_golden_file() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == {p.name for p in GOLDEN.glob("*.json")}


def test_seed_examples_translate_and_do_not_collide_despite_shared_placeholder_id() -> None:
    ids = set()
    for stage in ("initiated", "ringing", "answered", "completed"):
        (translation,) = translate(event_bytes(f"seed_{stage}.json"), MAPPING)
        assert translation.outcome is Outcome.TRANSLATED
        assert translation.track is not None
        # The seed's `datacontenttype` is a timestamp and `time` is absent: the time comes from data.timestamp.
        assert translation.track.message["timestamp"] == "2025-01-01T00:00:00.000Z"
        # Parameters are `{}` in the seeds: identity falls back to the Call SID, never empty.
        assert translation.track.message["anonymousId"] == "CA0000000000000000000000000000001"
        assert "responseBody" not in translation.track.body.decode()
        ids.add(translation.track.message_id)
    assert len(ids) == 4


@pytest.mark.parametrize("stage", ["initiated", "ringing", "answered", "completed"])
def test_deprecated_types_are_refused_with_the_exact_replacement(stage: str) -> None:
    (translation,) = translate(event_bytes(f"seed_deprecated_{stage}.json"), MAPPING)
    refusal = translation.refusal
    assert refusal is not None
    assert refusal.reason is RefusalReason.DEPRECATED_EVENT_TYPE
    replacement = f"com.twilio.voice.status-callback.call.{stage}"
    assert replacement in refusal.message
    assert f"Type={replacement} SchemaVersion=2" in refusal.hint
    assert (
        f"DELETE https://events.twilio.com/v1/Subscriptions/<SubscriptionSid>/SubscribedEvents/{translation.event_type}"
        in refusal.hint
    )
    assert "Console" in refusal.hint
    assert translation.event_id == "NO00000000000000000000000001"


@pytest.mark.parametrize("action", ["created", "modified"])
def test_api_request_types_are_not_segment_compatible(action: str) -> None:
    (translation,) = translate(event_bytes(f"seed_api_request_{action}.json"), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.NOT_SEGMENT_COMPATIBLE
    assert "Webhook/Kinesis-only" in translation.refusal.message
    assert "com.twilio.voice.status-callback.call.completed" in translation.refusal.hint


def test_test_event_is_acknowledged_not_forwarded() -> None:
    (translation,) = translate(event_bytes("sink_test_event.json"), MAPPING)
    assert translation.outcome is Outcome.ACKNOWLEDGED
    assert translation.track is None
    assert translation.refusal is None


def test_busy_completed_carries_the_final_status_and_is_not_an_answer() -> None:
    (translation,) = translate(event_bytes("real_outbound_busy_completed.json"), MAPPING)
    assert translation.track is not None
    message = translation.track.message
    assert message["event"] == "Call Completed"
    assert message["properties"]["call_status"] == "busy"
    assert message["properties"]["call_duration"] == 0
    # Outbound: the customer is the callee.
    assert message["anonymousId"] == "+442071838750"


def test_unknown_fields_and_attributes_survive_in_the_event_kept_for_dead_letters() -> None:
    event = load_event("seed_deprecated_answered.json")
    event["partnerext"] = "kept"
    event["data"]["newTwilioField"] = {"nested": True}
    (translation,) = translate(orjson.dumps(event), MAPPING)
    assert translation.event["partnerext"] == "kept"
    assert translation.event["data"]["newTwilioField"] == {"nested": True}


def test_translated_event_keeps_original_for_later_dead_lettering() -> None:
    raw = event_bytes("real_inbound_answered.json")
    (translation,) = translate(raw, MAPPING)
    assert translation.event == json.loads(raw)


def test_redelivery_gets_the_same_message_id_and_types_differ() -> None:
    first = translate(event_bytes("real_inbound_answered.json"), MAPPING)[0].track
    again = translate(event_bytes("real_inbound_answered.json"), MAPPING)[0].track
    assert first is not None and again is not None
    assert first.message_id == again.message_id
    event = load_event("real_inbound_answered.json")
    event["type"] = "com.twilio.voice.status-callback.call.ringing"
    other = translate(orjson.dumps(event), MAPPING)[0].track
    assert other is not None and other.message_id != first.message_id


def test_time_never_comes_from_processing() -> None:
    event = load_event("real_inbound_answered.json")
    del event["time"]
    del event["data"]["timestamp"]
    del event["data"]["request"]["parameters"]["Timestamp"]
    (translation,) = translate(orjson.dumps(event), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.MISSING_TIMESTAMP


def test_time_attribute_wins_and_is_normalised_to_utc_milliseconds() -> None:
    event = load_event("real_inbound_answered.json")
    event["time"] = "2026-03-02T16:05:07.2+02:00"
    (translation,) = translate(orjson.dumps(event), MAPPING)
    assert translation.track is not None
    assert translation.track.message["timestamp"] == "2026-03-02T14:05:07.200Z"


@pytest.mark.parametrize(
    ("name", "reason", "fragment"),
    [
        ("not_json.txt", RefusalReason.INVALID_JSON, "not JSON"),
        ("missing_id.json", RefusalReason.INVALID_EVENT, "id"),
        ("missing_data_sid.json", RefusalReason.INVALID_EVENT, "data.sid"),
        ("bad_time.json", RefusalReason.INVALID_EVENT, "time: not a valid ISO-8601 timestamp"),
        ("array_of_number.json", RefusalReason.INVALID_EVENT, "expected a CloudEvent object"),
        ("empty_array.json", RefusalReason.INVALID_EVENT, "empty JSON array"),
        ("wrong_specversion.json", RefusalReason.INVALID_EVENT, "specversion"),
        ("unknown_type.json", RefusalReason.UNKNOWN_EVENT_TYPE, "unknown event type"),
    ],
)
def test_broken_inputs_are_refused_with_reason_and_field_path(name: str, reason: RefusalReason, fragment: str) -> None:
    raw = (BROKEN / name).read_bytes()
    (translation,) = translate(raw, MAPPING)
    assert translation.outcome is Outcome.REFUSED
    assert translation.refusal is not None
    assert translation.refusal.reason is reason
    assert fragment in translation.refusal.message


def test_invalid_json_keeps_the_raw_text() -> None:
    raw = (BROKEN / "not_json.txt").read_text()
    (translation,) = translate(raw, MAPPING)
    assert translation.event == raw
    record = translation.refusal.dead_letter_record(translation.event)  # type: ignore[union-attr]
    assert set(record) == {"reason", "id", "type", "message", "hint", "event"}
    assert record["event"] == raw


def test_oversized_message_is_refused_before_sending() -> None:
    event = call_events(0)[0]
    event["data"]["request"]["parameters"]["CallerName"] = "x" * (MAX_MESSAGE_BYTES + 10)
    (translation,) = translate(orjson.dumps(event), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.MESSAGE_TOO_LARGE


def test_translate_event_accepts_decoded_objects_like_the_fast_path() -> None:
    for name in ("real_inbound_answered.json", "data_as_string_ringing.json", "snake_case_params_answered.json"):
        raw = event_bytes(name)
        from_bytes = translate(raw, MAPPING)[0].track
        from_dict = translate_event(json.loads(raw), MAPPING).track
        assert from_bytes is not None and from_dict is not None
        assert from_bytes.body == from_dict.body


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    # Strings that look numeric to some checks and not to others.
    | st.sampled_from(["²", "٣٤", "--5", " 7 ", "1e3", "0x1F", "-0"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def _event_like() -> st.SearchStrategy[Any]:
    base = load_event("real_inbound_answered.json")
    keys = st.sampled_from(sorted(base)) | st.text(max_size=8)
    return st.builds(lambda k, v: {**base, k: v}, keys, json_values)


def _parameters_like() -> st.SearchStrategy[Any]:
    base = load_event("real_inbound_answered.json")
    names = st.sampled_from(sorted(base["data"]["request"]["parameters"])) | st.text(max_size=8)

    def with_parameters(parameters: Any, data_key: str, data_value: Any) -> dict[str, Any]:
        event = json.loads(json.dumps(base))
        event["data"]["request"]["parameters"].update(parameters) if isinstance(parameters, dict) else None
        event["data"][data_key] = data_value
        return event

    return st.builds(
        with_parameters,
        st.dictionaries(names, json_values, max_size=6),
        st.sampled_from(["timestamp", "sid", "eventSid", "request", "new"]),
        json_values,
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, _event_like(), _parameters_like(), st.lists(_event_like(), max_size=3)))
def test_translation_never_raises_on_arbitrary_json(value: Any) -> None:
    for translation in translate(json.dumps(value), MAPPING):
        assert translation.outcome in set(Outcome)
        assert (translation.track is None) or (translation.refusal is None)
        if translation.outcome is Outcome.REFUSED:
            assert translation.refusal is not None and translation.refusal.message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_translation_never_raises_on_arbitrary_bytes(raw: bytes | str) -> None:
    assert translate(raw, MAPPING)


def test_dead_letter_records_replay_as_their_original_events() -> None:
    raw = event_bytes("real_inbound_answered.json")
    (original,) = translate(raw, MAPPING)
    assert original.track is not None
    refusal = Refusal(RefusalReason.DELIVERY_FAILED, "Segment answered 503 after 8 attempts", "", "VW2", "t")
    record = orjson.dumps(refusal.dead_letter_record(original.event))
    (again,) = translate(record, MAPPING)
    assert again.track is not None
    assert again.track.body == original.track.body
    # The record of a line that was not JSON carries its raw text: fixed text translates, broken text refuses again.
    fixed = Refusal(RefusalReason.INVALID_JSON, "not JSON", "").dead_letter_record(raw.decode())
    assert translate(orjson.dumps(fixed), MAPPING)[0].track is not None
    broken = Refusal(RefusalReason.INVALID_JSON, "not JSON", "").dead_letter_record("{oops")
    assert translate(orjson.dumps(broken), MAPPING)[0].refusal.reason is RefusalReason.INVALID_JSON  # type: ignore[union-attr]
    # In a batched array too.
    (in_array,) = translate(orjson.dumps([refusal.dead_letter_record(original.event)]), MAPPING)
    assert in_array.track is not None


def test_huge_integer_parameter_is_refused_not_raised() -> None:
    event = load_event("real_inbound_answered.json")
    event["data"]["request"]["parameters"]["CallerName"] = 10**30
    (translation,) = translate(json.dumps(event), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.INVALID_EVENT
    assert "beyond 64 bits" in translation.refusal.message


def test_an_unexpected_error_costs_one_event_not_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    # `segment_bridge.translate` the attribute is the function; the module is reached by name.
    module = importlib.import_module("segment_bridge.translate")

    def broken(*args: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(module, "_map", broken)
    body = orjson.dumps([load_event("real_inbound_answered.json"), load_event("sink_test_event.json")])
    first, second = translate(body, MAPPING)
    assert first.refusal is not None
    assert first.refusal.reason is RefusalReason.TRANSLATION_ERROR
    assert first.event["id"] == "VW2d9f0e1a2b3c4d5e6f708192a3b4c5d6"
    assert second.outcome is Outcome.ACKNOWLEDGED
    (fast,) = translate(event_bytes("real_inbound_answered.json"), MAPPING)
    assert fast.refusal is not None
    assert fast.refusal.reason is RefusalReason.TRANSLATION_ERROR
    assert fast.event["id"] == "VW2d9f0e1a2b3c4d5e6f708192a3b4c5d6"


def test_an_integer_beyond_64_bits_is_refused_alike_alone_in_an_array_and_from_its_dead_letter_record() -> None:
    # orjson reads such an integer as a float: the array and the dead-letter record must not translate it rounded.
    # 2**64 has 20 digits, the shortest integer orjson rounds: it must be the only run of 20 digits in the line,
    # or the sample's 32-digit SIDs would trip the exact decoding whatever its threshold.
    event = json.loads(re.sub(r"([0-9]{18})[0-9]", r"\1x", json.dumps(call_events(5)[3])))
    event["data"]["request"]["parameters"]["CallDuration"] = 2**64
    line = json.dumps(event).encode()
    assert re.findall(rb"[0-9]{20,}", line) == [str(2**64).encode()]
    alone, in_array = translate(line)[0], translate(json.dumps([event]).encode())[0]
    record = json.dumps(alone.refusal.dead_letter_record(alone.event) if alone.refusal else {}).encode()
    from_record = translate(record)[0]
    for translation in (alone, in_array, from_record):
        assert translation.refusal is not None
        assert translation.refusal.reason is RefusalReason.INVALID_EVENT
        assert "beyond 64 bits" in translation.refusal.message
    # The record keeps the integer exact, so what is replayed is what arrived.
    assert from_record.event["data"]["request"]["parameters"]["CallDuration"] == 2**64
