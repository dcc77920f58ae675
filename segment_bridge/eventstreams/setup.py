"""``segment-bridge twilio setup``: a webhook sink for the bridge, validated, with a call-progress subscription.

Every step looks first and changes only what is missing, so running it again finishes what an earlier run left:

1. reuse a webhook sink that already posts to the URL, or create one (single events, ``POST``);
2. if it is not ``active``, ask Twilio to send its test event, and wait (``--wait`` seconds) for it to become
   active: ``serve`` given ``TWILIO_ACCOUNT_SID`` validates it on that event by itself;
3. once it is active: create a subscription with the four call-progress types at their schema's latest version,
   or add those missing to the sink's existing subscription (Twilio allows one subscription per sink).

Twilio creates subscriptions only for active sinks; when the sink is still waiting for validation, what remains is
printed and the command exits 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from segment_bridge.catalog import SUPPORTED_TYPES, EventSupport, classify
from segment_bridge.eventstreams.api import EventStreamsApi
from segment_bridge.eventstreams.check import display_url
from segment_bridge.eventstreams.model import CALL_PROGRESS_SCHEMA_ID, Sink, SubscribedType, same_destination

__all__ = ["SetupResult", "run_setup"]

SINK_DESCRIPTION = "segment-bridge"
SUBSCRIPTION_DESCRIPTION = "segment-bridge call progress"
_POLL_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class SetupResult:
    """What the run ended with: the sink, and the subscription when there is one."""

    sink: Sink
    subscription_sid: str | None

    @property
    def complete(self) -> bool:
        """Whether nothing remains to do."""
        return self.sink.status == "active" and self.subscription_sid is not None


def _find_sink(api: EventStreamsApi, sink_url: str) -> Sink | None:
    matching = [
        sink for sink in api.sinks() if sink.sink_type == "webhook" and same_destination(sink.destination, sink_url)
    ]
    # Prefer one Twilio already delivers to.
    matching.sort(key=lambda sink: sink.status != "active")
    return matching[0] if matching else None


def _wait_active(
    api: EventStreamsApi,
    sink: Sink,
    wait: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Sink:
    deadline = clock() + wait
    while sink.status != "active" and clock() < deadline:
        sleep(min(_POLL_EVERY, max(0.0, deadline - clock())))
        sink = api.sink(sink.sid)
    return sink


def run_setup(
    api: EventStreamsApi,
    sink_url: str,
    say: Callable[[str], None],
    *,
    wait: float = 20.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SetupResult:
    """Set the account up for the bridge at ``sink_url``, saying each step; see the module docstring."""
    shown = display_url(sink_url)
    sink = _find_sink(api, sink_url)
    if sink is None:
        sink = api.create_sink(sink_url, SINK_DESCRIPTION)
        say(f"created webhook sink {sink.sid} posting to {shown} (status {sink.status or 'unknown'})")
    else:
        say(f"reusing webhook sink {sink.sid} posting to {shown} (status {sink.status or 'unknown'})")
    if sink.status != "active":
        result = api.test_sink(sink.sid)
        say(f"asked Twilio to send the sink's test event to {shown} (Twilio: {result or 'no result'})")
        if wait > 0:
            say(f"waiting up to {wait:g} s for the sink to be validated...")
            sink = _wait_active(api, sink, wait, clock, sleep)
    if sink.status != "active":
        say(
            f"sink {sink.sid} is {sink.status or 'not active'}: it must be validated before Twilio subscribes it. "
            "Run serve with TWILIO_ACCOUNT_SID (and TWILIO_AUTH_TOKEN) set and it validates the sink on the test "
            "event; or find the test id in the bridge's sink_test_event log line and POST it to "
            f"/v1/Sinks/{sink.sid}/Validate as TestId (docs/webhook.md#3). Then run this command again."
        )
        return SetupResult(sink, None)
    say(f"sink {sink.sid} is active")
    versions = api.schema_versions(CALL_PROGRESS_SCHEMA_ID)
    latest = max(versions) if versions else None
    existing = next((each for each in api.subscriptions() if each.sink_sid == sink.sid), None)
    if existing is None:
        types = tuple(SubscribedType(stage, latest or 2) for stage in SUPPORTED_TYPES)
        created = api.create_subscription(sink.sid, SUBSCRIPTION_DESCRIPTION, types)
        say(f"created subscription {created.sid} with {', '.join(SUPPORTED_TYPES)} (schema version {latest or 2})")
        return SetupResult(sink, created.sid)
    subscribed = {each.type for each in existing.types}
    missing = [stage for stage in SUPPORTED_TYPES if stage not in subscribed]
    for stage in missing:
        api.add_subscribed_type(existing.sid, stage, latest)
        say(f"{existing.sid}: added {stage} (schema version {latest if latest is not None else 'latest'})")
    if not missing:
        say(f"subscription {existing.sid} already carries the four call-progress types")
    if any(classify(each.type).support is EventSupport.DEPRECATED for each in existing.types):
        say(f"subscription {existing.sid} still carries deprecated types: segment-bridge twilio migrate shows the plan")
    return SetupResult(sink, existing.sid)
