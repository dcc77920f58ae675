"""events: CloudEvent parsing tolerates Twilio's quirks and names bad fields."""

from __future__ import annotations

import pytest
from eventfiles import load_event

from segment_bridge import CloudEvent, InvalidEventError, VoiceCallEvent, parse_event
from segment_bridge.events import event_timestamp


def test_seed_quirks_parse() -> None:
    event = parse_event(load_event("seed_answered.json"))
    assert event.time is None
    assert event.datacontenttype == "2025-10-08T07:17:02.363Z"
    assert event.schema_version == 2
    data = VoiceCallEvent.from_data(event.data)
    assert data.event_sid == "VW0000000000000000000000000000001"
    assert data.request is not None
    assert data.request.parameters == {}


def test_data_as_json_string_and_extensions_survive() -> None:
    raw = load_event("data_as_string_ringing.json")
    raw["traceparent"] = "00-abc-def-01"
    event = parse_event(raw)
    assert isinstance(event.data, dict)
    assert event.extensions == {"traceparent": "00-abc-def-01"}


def test_snake_case_data_keys_are_accepted() -> None:
    data = VoiceCallEvent.from_data({"sid": "CA1", "event_sid": "VW1", "request_date_created": "x"})
    assert data.event_sid == "VW1"
    assert data.request_date_created == "x"


def test_unknown_data_fields_are_accepted_and_kept_in_the_cloud_event() -> None:
    raw = load_event("seed_answered.json")
    raw["data"]["brandNewField"] = 3
    event = parse_event(raw)
    assert VoiceCallEvent.from_data(event.data).sid == raw["data"]["sid"]
    assert event.data["brandNewField"] == 3


def test_voice_call_data_names_the_field_that_fails() -> None:
    with pytest.raises(InvalidEventError) as caught:
        VoiceCallEvent.from_data({"sid": "CA1", "request": {"parameters": []}})
    assert caught.value.path == "data.request.parameters"
    assert str(caught.value).endswith("Input should be a JSON object")


@pytest.mark.parametrize(("obj", "path"), [({}, "specversion"), ([], ""), ({"specversion": "1.0", "id": ""}, "id")])
def test_invalid_events_name_the_field(obj: object, path: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(obj)
    assert caught.value.path == path
    assert isinstance(caught.value, ValueError)


def test_cloud_event_is_frozen() -> None:
    event = parse_event(load_event("seed_answered.json"))
    assert isinstance(event, CloudEvent)
    with pytest.raises(AttributeError):
        event.id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "rfc2822", "expected"),
    [
        ("2025-01-01T00:00:00.000Z", False, "2025-01-01T00:00:00.000Z"),
        ("2025-01-01T00:00:00Z", False, "2025-01-01T00:00:00.000Z"),
        ("2025-01-01T02:00:00.123456+02:00", False, "2025-01-01T00:00:00.123Z"),
        ("2025-01-01T00:00:00", False, "2025-01-01T00:00:00.000Z"),
        ("Sun, 24 Aug 2025 13:49:54 +0000", True, "2025-08-24T13:49:54.000Z"),
        # A week date of the output form's length: normalised, not passed through as if already in output form.
        ("2025-W01-1T00:00:00.000Z", False, "2024-12-30T00:00:00.000Z"),
        ("Sun, 24 Aug 2025 15:49:54 +0200", True, "2025-08-24T13:49:54.000Z"),
    ],
)
def test_event_timestamps_normalise_to_utc_milliseconds(text: str, rfc2822: bool, expected: str) -> None:
    assert event_timestamp(text, rfc2822=rfc2822) == expected


@pytest.mark.parametrize("text", ["2025-13-01T00:00:00.000Z", "yesterday", ""])
def test_bad_timestamps_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        event_timestamp(text)
