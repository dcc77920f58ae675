"""The pure parts of the Twilio commands: check's findings and migrate's plan, from data alone."""

from __future__ import annotations

import pytest

from segment_bridge.catalog import SUPPORTED_TYPES
from segment_bridge.eventstreams.check import display_url, find_problems
from segment_bridge.eventstreams.migrate import AddType, Blocked, RemoveType, plan_subscription
from segment_bridge.eventstreams.model import (
    AccountState,
    EventType,
    Sink,
    SubscribedType,
    Subscription,
    same_destination,
)

CURRENT = SUPPORTED_TYPES
DEPRECATED = tuple(t.replace("com.twilio.voice.", "com.twilio.voice.webhook.") for t in CURRENT)
API_REQUEST = "com.twilio.voice.api-request.call.created"
URL = "https://bridge.example.com/events"


def _types(**status: str) -> dict[str, EventType]:
    types = {name: EventType(name, "available", "Voice.WebhookEvent") for name in CURRENT}
    types.update({name: EventType(name, "deprecated", "Voice.WebhookEvent") for name in DEPRECATED})
    types[API_REQUEST] = EventType(API_REQUEST, "available", "Voice.WebhookEvent")
    for name, value in status.items():
        full = next(t for t in types if t.endswith(name.replace("_", "-")))
        types[full] = EventType(full, value, "Voice.WebhookEvent")
    return types


def _state(
    subscription: Subscription, *, sink_status: str = "active", types: dict[str, EventType] | None = None
) -> AccountState:
    return AccountState(
        types=types if types is not None else _types(),
        sinks=(Sink("DG1", "bridge", "webhook", sink_status, URL),),
        subscriptions=(subscription,),
        schema_versions={"Voice.WebhookEvent": frozenset({1, 2})},
    )


def _sub(*types: tuple[str, int]) -> Subscription:
    return Subscription("DF1", "calls", "DG1", tuple(SubscribedType(t, v) for t, v in types))


# check


def test_a_complete_current_subscription_on_an_active_sink_has_no_findings():
    state = _state(_sub(*((t, 2) for t in CURRENT)))
    assert find_problems(state) == []
    assert find_problems(state, URL) == []


def test_deprecated_types_are_reported_with_their_replacement_and_not_as_missing_stages():
    state = _state(_sub((DEPRECATED[0], 2), *((t, 2) for t in CURRENT[1:])))
    findings = find_problems(state)
    assert [(f.code, f.event_type) for f in findings] == [("deprecated_type", DEPRECATED[0])]
    assert CURRENT[0] in findings[0].message
    assert "segment-bridge twilio migrate DF1 --apply" in findings[0].fix


def test_live_status_from_twilio_wins_over_the_catalog():
    # Twilio has restricted the deprecated type: check says so, from /v1/Types.
    types = _types()
    types[DEPRECATED[3]] = EventType(DEPRECATED[3], "restricted", "Voice.WebhookEvent")
    state = _state(_sub(*((t, 2) for t in CURRENT[:3]), (DEPRECATED[3], 2)), types=types)
    [finding] = find_problems(state)
    assert finding.code == "restricted_type"
    assert "can no longer be added back" in finding.message


def test_refused_missing_untested_and_inactive_sink_findings():
    state = _state(_sub((CURRENT[0], 3), (API_REQUEST, 1)), sink_status="validating")
    codes = [(f.code, f.event_type or f.sink_sid) for f in find_problems(state)]
    assert codes == [
        ("sink_not_active", "DG1"),
        ("untested_schema_version", CURRENT[0]),
        ("refused_type", API_REQUEST),
        ("missing_call_progress", CURRENT[1]),
        ("missing_call_progress", CURRENT[2]),
        ("missing_call_progress", CURRENT[3]),
    ]


def test_sink_url_narrows_to_the_bridges_sink_and_says_when_there_is_none():
    other = Subscription("DF2", "sms", "DG2", (SubscribedType("com.twilio.messaging.message.delivered", 1),))
    state = AccountState(
        types=_types(),
        sinks=(Sink("DG1", "bridge", "webhook", "active", URL), Sink("DG2", "other", "webhook", "failed", "https://x")),
        subscriptions=(_sub(*((t, 2) for t in CURRENT)), other),
    )
    # Without --sink-url every sink counts; the messaging subscription is not the bridge's business.
    assert [f.code for f in find_problems(state)] == ["sink_not_active", "refused_type"]
    assert find_problems(state, "https://user:pw@BRIDGE.example.com/events/") == []
    [none] = find_problems(state, "https://elsewhere.example.com/events")
    assert none.code == "no_bridge_sink"


def test_a_subscription_of_the_bridges_sink_without_call_progress_misses_all_four():
    state = _state(_sub((API_REQUEST, 1)))
    missing = [f.event_type for f in find_problems(state, URL) if f.code == "missing_call_progress"]
    assert missing == list(CURRENT)


def test_display_url_hides_a_password_only():
    assert display_url("https://u:secret@host/p?q=1") == "https://u:***@host/p?q=1"
    assert display_url("https://host/p") == "https://host/p"
    assert display_url("https://u@host/p") == "https://u@host/p"


def test_same_destination():
    assert same_destination("https://u:p@Bridge.example.com/events/", URL)
    assert not same_destination("https://bridge.example.com/other", URL)
    assert not same_destination("", URL)


# migrate


def test_plan_adds_every_replacement_before_any_removal_at_the_same_schema_version():
    sub = _sub((DEPRECATED[0], 1), (DEPRECATED[1], 2), (CURRENT[2], 2), (API_REQUEST, 1))
    assert plan_subscription(sub, _state(sub)) == [
        AddType("DF1", CURRENT[0], 1, replaces=DEPRECATED[0]),
        AddType("DF1", CURRENT[1], 2, replaces=DEPRECATED[1]),
        RemoveType("DF1", DEPRECATED[0], replaced_by=CURRENT[0]),
        RemoveType("DF1", DEPRECATED[1], replaced_by=CURRENT[1]),
    ]


def test_plan_uses_the_latest_version_when_the_replacement_lacks_the_old_one():
    sub = _sub((DEPRECATED[0], 7))
    [add, _remove] = plan_subscription(sub, _state(sub))
    assert add == AddType("DF1", CURRENT[0], 2, replaces=DEPRECATED[0])


def test_plan_only_removes_when_the_replacement_is_already_there():
    sub = _sub((DEPRECATED[0], 2), (CURRENT[0], 2))
    assert plan_subscription(sub, _state(sub)) == [RemoveType("DF1", DEPRECATED[0], replaced_by=CURRENT[0])]


@pytest.mark.parametrize("status", ["restricted", "discontinued"])
def test_plan_keeps_a_type_whose_replacement_cannot_be_added(status):
    types = _types()
    types[CURRENT[0]] = EventType(CURRENT[0], status, "Voice.WebhookEvent")
    sub = _sub((DEPRECATED[0], 2))
    [step] = plan_subscription(sub, _state(sub, types=types))
    assert isinstance(step, Blocked)
    assert status in step.reason


def test_plan_keeps_a_type_whose_replacement_twilio_does_not_list():
    types = _types()
    del types[CURRENT[0]]
    sub = _sub((DEPRECATED[0], 2))
    [step] = plan_subscription(sub, _state(sub, types=types))
    assert isinstance(step, Blocked)


def test_nothing_to_plan_for_a_current_subscription():
    sub = _sub(*((t, 2) for t in CURRENT))
    assert plan_subscription(sub, _state(sub)) == []
