"""track: messageId is deterministic, bounded and collision-resistant across the fields."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from segment_bridge.track import MAX_MESSAGE_ID_LENGTH, TrackCall, message_id_for

ids = st.text(min_size=1, max_size=300)


@settings(deadline=None)  # a busy machine is no failure
@given(ids, ids, ids)
def test_message_id_is_deterministic_and_at_most_100_characters(source: str, event_id: str, event_type: str) -> None:
    first = message_id_for(source, event_id, event_type, "twilio-voice")
    assert first == message_id_for(source, event_id, event_type, "twilio-voice")
    assert len(first) <= MAX_MESSAGE_ID_LENGTH
    assert first.startswith("twilio-voice:")


@settings(deadline=None)  # a busy machine is no failure
@given(ids, ids, ids, ids)
def test_message_id_differs_when_any_field_differs(source: str, event_id: str, event_type: str, other: str) -> None:
    base = message_id_for(source, event_id, event_type, "p")
    if other != source:
        assert message_id_for(other, event_id, event_type, "p") != base
    if other != event_id:
        assert message_id_for(source, other, event_type, "p") != base
    if other != event_type:
        assert message_id_for(source, event_id, other, "p") != base


def test_field_boundaries_matter() -> None:
    assert message_id_for("a", "bc", "t", "p") != message_id_for("ab", "c", "t", "p")


def test_track_call_serializes_once_and_hides_payload_in_repr() -> None:
    call = TrackCall.from_message({"messageId": "m", "event": "Call Answered", "anonymousId": "+1415"}, "VW1", "t")
    assert call.body == b'{"messageId":"m","event":"Call Answered","anonymousId":"+1415"}'
    # As sent by the SDK: one space after each of the 2 commas and 3 colons.
    assert call.size == len(call.body) + 5
    assert call.message_id == "m"
    assert "+1415" not in repr(call)


@settings(deadline=None)  # a busy machine is no failure
@given(
    st.dictionaries(
        st.text(max_size=10),
        st.text(max_size=30) | st.integers(-(2**63), 2**63 - 1) | st.lists(st.text(max_size=5), max_size=3),
        max_size=8,
    )
)
def test_size_is_never_below_what_the_sdk_sends(properties: dict[str, object]) -> None:
    import json

    message = {"type": "track", "event": "Call Answered", "messageId": "m", "properties": properties}
    call = TrackCall.from_message(message, "VW1", "t")
    # segment-analytics-python's request.post serializes with json.dumps defaults.
    assert call.size >= len(json.dumps(message).encode())
    assert call.size >= len(call.body)


@settings(deadline=None)  # a busy machine is no failure
@given(
    st.dictionaries(
        st.text(max_size=4),
        st.text(max_size=4) | st.integers(0, 9) | st.lists(st.integers(0, 9), max_size=5),
        max_size=40,
    ),
    st.integers(10, 4000),
)
def test_within_is_sound_and_no_stricter_than_size(properties: dict[str, object], limit: int) -> None:
    import json

    message = {"type": "track", "messageId": "m", "properties": properties}
    call = TrackCall.from_message(message, "VW1", "t")
    if call.within(limit):
        assert len(json.dumps(message).encode()) <= limit  # what the SDK sends fits
    if call.size <= limit:
        assert call.within(limit)
