"""``segment-bridge twilio check``: what is wrong with the account's sinks and subscriptions, from data alone.

:func:`find_problems` takes an :class:`~segment_bridge.eventstreams.model.AccountState` and returns
:class:`Finding` values; nothing here talks to Twilio. Per subscription it reports types whose live status (from
``/v1/Types``, not only the bridge's catalog) is deprecated, restricted or discontinued, with their replacement;
subscribed types the bridge refuses, and why; call-progress types missing for a complete funnel; schema versions
the bridge was not tested with; and sinks that are not ``active``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from segment_bridge.catalog import DEPRECATED_PREFIX, SUPPORTED_TYPES, EventSupport, classify
from segment_bridge.eventstreams.model import (
    TESTED_SCHEMA_VERSIONS,
    AccountState,
    Sink,
    Subscription,
    TypeStatus,
    same_destination,
)

__all__ = ["Finding", "bridge_sinks", "display_url", "find_problems"]

_LIFECYCLE = {
    TypeStatus.DEPRECATED: "deprecated (still delivered; replace it before Twilio restricts it)",
    TypeStatus.RESTRICTED: "restricted (still delivered to existing subscriptions, but can no longer be added back)",
    TypeStatus.DISCONTINUED: "discontinued (Twilio may no longer send it)",
}


def _twins() -> dict[str, str]:
    """Each call-progress type's deprecated twin, from the catalog's own replacement table."""
    twins: dict[str, str] = {}
    for supported in SUPPORTED_TYPES:
        twin = DEPRECATED_PREFIX + supported.rsplit(".", 1)[1]
        if classify(twin).replacement == supported:
            twins[supported] = twin
    return twins


_DEPRECATED_TWIN = _twins()


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: a code for machines, a sentence and the fix for people."""

    code: str
    message: str
    fix: str = ""
    subscription_sid: str = ""
    sink_sid: str = ""
    event_type: str = ""

    def as_json(self) -> dict[str, Any]:
        """The finding as a JSON object (empty fields left out)."""
        return {key: value for key, value in asdict(self).items() if value}


def display_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: a sink destination may carry Basic-auth credentials."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{tail}"


def bridge_sinks(state: AccountState, sink_url: str | None) -> tuple[Sink, ...]:
    """The sinks to look at: all of them, or with ``sink_url`` only the webhook sinks posting there."""
    if sink_url is None:
        return state.sinks
    return tuple(
        sink for sink in state.sinks if sink.sink_type == "webhook" and same_destination(sink.destination, sink_url)
    )


def find_problems(state: AccountState, sink_url: str | None = None) -> list[Finding]:
    """Every finding about the account (or, with ``sink_url``, about the sinks posting to it)."""
    sinks = bridge_sinks(state, sink_url)
    findings: list[Finding] = []
    if sink_url is not None and not sinks:
        findings.append(
            Finding(
                "no_bridge_sink",
                f"no webhook sink posts to {display_url(sink_url)}",
                fix=f"segment-bridge twilio setup --sink-url {display_url(sink_url)}",
            )
        )
    for sink in sinks:
        if sink.status != "active":
            findings.append(
                Finding(
                    "sink_not_active",
                    f"sink {sink.sid} is {sink.status or 'of unknown status'}, not active: Twilio sends it no events",
                    fix="validate it: serve with TWILIO_ACCOUNT_SID set does it on the sink's test event "
                    "(segment-bridge twilio setup --sink-url URL sends one); see docs/webhook.md#3",
                    sink_sid=sink.sid,
                )
            )
    wanted = {sink.sid for sink in sinks}
    for subscription in state.subscriptions:
        if sink_url is not None and subscription.sink_sid not in wanted:
            continue
        findings.extend(_subscription_problems(state, subscription, bridge_sink=sink_url is not None))
    return findings


def _subscription_problems(state: AccountState, subscription: Subscription, *, bridge_sink: bool) -> list[Finding]:
    sid = subscription.sid
    findings: list[Finding] = []
    for subscribed in subscription.types:
        live = state.types.get(subscribed.type)
        entry = classify(subscribed.type)
        status = live.status if live is not None else ""
        if status in _LIFECYCLE:
            replacement = entry.replacement
            fix = (
                f"segment-bridge twilio migrate {sid} --apply (adds {replacement}, then removes this type)"
                if replacement
                else (entry.hint or "remove it from the subscription")
            )
            if replacement:
                message = f"{subscribed.type} is {_LIFECYCLE[TypeStatus(status)]}; its replacement is {replacement}"
            else:
                message = f"{subscribed.type} is {_LIFECYCLE[TypeStatus(status)]}"
            findings.append(
                Finding(f"{status}_type", message, fix=fix, subscription_sid=sid, event_type=subscribed.type)
            )
            continue
        if entry.support is EventSupport.DEPRECATED:
            # Twilio still lists it as available, but the bridge refuses it all the same.
            findings.append(
                Finding(
                    "refused_type",
                    f"{subscribed.type}: the bridge refuses it: {entry.message}",
                    fix=f"segment-bridge twilio migrate {sid} --apply",
                    subscription_sid=sid,
                    event_type=subscribed.type,
                )
            )
        elif entry.support in (EventSupport.NOT_SEGMENT_COMPATIBLE, EventSupport.UNKNOWN):
            findings.append(
                Finding(
                    "refused_type",
                    f"{subscribed.type}: the bridge refuses it: {entry.message}",
                    fix=entry.hint,
                    subscription_sid=sid,
                    event_type=subscribed.type,
                )
            )
        elif entry.support is EventSupport.SUPPORTED and subscribed.schema_version not in TESTED_SCHEMA_VERSIONS:
            tested = ", ".join(str(version) for version in sorted(TESTED_SCHEMA_VERSIONS))
            findings.append(
                Finding(
                    "untested_schema_version",
                    f"{subscribed.type} is subscribed at schema version {subscribed.schema_version}; the bridge was "
                    f"tested with {tested}",
                    fix="check the translated events (segment-bridge translate on a few archived ones) or subscribe "
                    "at a tested version",
                    subscription_sid=sid,
                    event_type=subscribed.type,
                )
            )
    findings.extend(_missing_stages(subscription, bridge_sink=bridge_sink))
    return findings


def _missing_stages(subscription: Subscription, *, bridge_sink: bool) -> list[Finding]:
    subscribed = {each.type for each in subscription.types}
    call_progress = set(SUPPORTED_TYPES) | set(_DEPRECATED_TWIN.values())
    if not bridge_sink and not subscribed & call_progress:
        # A subscription for other products: not the bridge's business unless its sink is the bridge's.
        return []
    # A stage still carried by its deprecated twin is reported above, with the migration that fixes it.
    missing = [
        stage for stage in SUPPORTED_TYPES if stage not in subscribed and _DEPRECATED_TWIN.get(stage) not in subscribed
    ]
    return [
        Finding(
            "missing_call_progress",
            f"{stage} is not subscribed: the call funnel in Segment will lack this step",
            fix="segment-bridge twilio setup --sink-url URL adds the missing ones to the bridge's subscription",
            subscription_sid=subscription.sid,
            event_type=stage,
        )
        for stage in missing
    ]
