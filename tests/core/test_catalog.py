"""catalog: one table decides every type."""

from __future__ import annotations

import pytest

from segment_bridge import EventSupport, classify
from segment_bridge.catalog import SUPPORTED_TYPES


@pytest.mark.parametrize("stage", ["initiated", "ringing", "answered", "completed"])
def test_call_progress_types_are_supported(stage: str) -> None:
    entry = classify(f"com.twilio.voice.status-callback.call.{stage}")
    assert entry.support is EventSupport.SUPPORTED
    assert entry.event_type in SUPPORTED_TYPES


@pytest.mark.parametrize("stage", ["initiated", "ringing", "answered", "completed"])
def test_deprecated_twins_name_their_replacement(stage: str) -> None:
    entry = classify(f"com.twilio.voice.webhook.status-callback.call.{stage}")
    assert entry.support is EventSupport.DEPRECATED
    assert entry.replacement == f"com.twilio.voice.status-callback.call.{stage}"


def test_deprecated_type_without_a_twin_does_not_invent_one() -> None:
    entry = classify("com.twilio.voice.webhook.status-callback.call.queued")
    assert entry.support is EventSupport.DEPRECATED
    assert entry.replacement is None
    assert "com.twilio.voice.status-callback.call.completed" in entry.hint


@pytest.mark.parametrize(
    ("event_type", "support"),
    [
        ("com.twilio.voice.api-request.call.created", EventSupport.NOT_SEGMENT_COMPATIBLE),
        ("com.twilio.voice.api-request.call.modified", EventSupport.NOT_SEGMENT_COMPATIBLE),
        ("com.twilio.eventstreams.test-event", EventSupport.TEST_EVENT),
        ("com.twilio.voice.status-callback.amd.detected", EventSupport.UNKNOWN),
        ("com.twilio.messaging.message.delivered", EventSupport.UNKNOWN),
        ("", EventSupport.UNKNOWN),
    ],
)
def test_other_types(event_type: str, support: EventSupport) -> None:
    entry = classify(event_type)
    assert entry.support is support
    if support is not EventSupport.TEST_EVENT:
        assert entry.message
        assert entry.hint


def test_memo_is_bounded_under_hostile_types() -> None:
    from segment_bridge import catalog

    for n in range(catalog._CACHE_LIMIT + 50):
        classify(f"x.{n}")
    assert len(catalog._CACHE) <= catalog._CACHE_LIMIT
