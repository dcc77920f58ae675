"""``segment-bridge twilio migrate``: replace deprecated call-progress types, add first, remove last.

:func:`plan_subscription` is pure: a subscription and what Twilio says about the types in, the steps out.
:func:`apply_plan` carries the steps out through an API object, printing each change as it happens:

1. **add** each replacement (at the deprecated type's schema version when the replacement's schema has it, else the
   latest). An add that Twilio refuses is looked up again: if the type is there after all (an earlier run added it,
   or the answer to a successful add was lost), that is the state wanted;
2. **confirm**: read the subscription back and check every replacement is on it;
3. **remove** each deprecated type whose replacement was confirmed. One already gone is fine.

So at every moment each call stage is carried by the old type, the new one or both, never by neither; a type whose
replacement cannot be added (restricted, unknown to Twilio) is never removed. A run that stops at any point leaves a
state that the next run plans from afresh and finishes: the commands are idempotent and resumable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from segment_bridge.catalog import EventSupport, classify
from segment_bridge.eventstreams.errors import TwilioApiError
from segment_bridge.eventstreams.model import AccountState, SubscribedType, Subscription, TypeStatus

__all__ = [
    "AddType",
    "Blocked",
    "MigrationError",
    "RemoveType",
    "Step",
    "apply_plan",
    "describe",
    "plan_subscription",
    "replacement_schema_ids",
]


@dataclass(frozen=True, slots=True)
class AddType:
    """Add ``event_type`` (at ``schema_version``; None = Twilio's latest) to stand in for ``replaces``."""

    subscription_sid: str
    event_type: str
    schema_version: int | None
    replaces: str


@dataclass(frozen=True, slots=True)
class RemoveType:
    """Remove ``event_type`` once ``replaced_by`` is confirmed on the subscription."""

    subscription_sid: str
    event_type: str
    replaced_by: str


@dataclass(frozen=True, slots=True)
class Blocked:
    """``event_type`` cannot be migrated, and stays: ``reason`` says why."""

    subscription_sid: str
    event_type: str
    reason: str


Step = AddType | RemoveType | Blocked


class MigrationError(TwilioApiError):
    """A replacement was not on the subscription when read back; its deprecated type was kept."""


def replacement_schema_ids(state: AccountState) -> tuple[str, ...]:
    """The schemas whose published versions a plan needs (those of the replacements Twilio lists)."""
    ids = set()
    for subscription in state.subscriptions:
        for subscribed in subscription.types:
            replacement = classify(subscribed.type).replacement
            live = state.types.get(replacement) if replacement else None
            if live is not None and live.schema_id:
                ids.add(live.schema_id)
    return tuple(sorted(ids))


def _version_for(old_version: int, published: frozenset[int]) -> int | None:
    if old_version in published:
        return old_version
    return max(published) if published else None


def plan_subscription(subscription: Subscription, state: AccountState) -> list[Step]:
    """The steps that migrate one subscription: every add, then every remove, then what cannot be done."""
    sid = subscription.sid
    adds: list[Step] = []
    removes: list[Step] = []
    blocked: list[Step] = []
    subscribed = {each.type for each in subscription.types}
    for old in subscription.types:
        entry = classify(old.type)
        if entry.support is not EventSupport.DEPRECATED:
            continue
        new = entry.replacement
        if new is None:
            blocked.append(Blocked(sid, old.type, "the bridge knows no Segment-compatible replacement for it"))
            continue
        if new not in subscribed:
            live = state.types.get(new)
            if live is None:
                blocked.append(Blocked(sid, old.type, f"Twilio does not list its replacement {new} (/v1/Types)"))
                continue
            if live.status in (TypeStatus.RESTRICTED, TypeStatus.DISCONTINUED):
                blocked.append(Blocked(sid, old.type, f"its replacement {new} is {live.status} at Twilio"))
                continue
            version = _version_for(old.schema_version, state.schema_versions.get(live.schema_id, frozenset()))
            adds.append(AddType(sid, new, version, replaces=old.type))
            subscribed.add(new)
        removes.append(RemoveType(sid, old.type, replaced_by=new))
    return adds + removes + blocked


def describe(step: Step) -> str:
    """One line saying what a planned step will do."""
    if isinstance(step, AddType):
        version = f"schema version {step.schema_version}" if step.schema_version is not None else "latest version"
        return f"add    {step.event_type} ({version}), replacing {step.replaces}"
    if isinstance(step, RemoveType):
        return f"remove {step.event_type}, once {step.replaced_by} is confirmed"
    return f"keep   {step.event_type}: cannot migrate it, {step.reason}"


class SubscribedEventsApi(Protocol):
    """The calls :func:`apply_plan` makes (:class:`~segment_bridge.eventstreams.api.EventStreamsApi` has them)."""

    def subscribed_types(self, subscription_sid: str) -> tuple[SubscribedType, ...]: ...
    def add_subscribed_type(self, subscription_sid: str, event_type: str, schema_version: int | None) -> None: ...
    def remove_subscribed_type(self, subscription_sid: str, event_type: str) -> None: ...


def _current(api: SubscribedEventsApi, sid: str) -> set[str]:
    return {each.type for each in api.subscribed_types(sid)}


def apply_plan(api: SubscribedEventsApi, steps: list[Step], say: Callable[[str], None]) -> None:
    """Carry out one subscription's steps, saying each change as it happens.

    Raises:
        TwilioApiError: a call failed (after the retries Twilio asks for); nothing was removed whose
            replacement is not confirmed.
        MigrationError: a replacement was not on the subscription when read back.
    """
    for step in steps:
        if not isinstance(step, AddType):
            continue
        try:
            api.add_subscribed_type(step.subscription_sid, step.event_type, step.schema_version)
        except TwilioApiError as error:
            if error.status is None or error.status in (401, 403, 429) or error.status >= 500:
                raise
            # Twilio refused the add (already there, say). Whether it is there is what matters.
            if step.event_type not in _current(api, step.subscription_sid):
                raise
            say(f"{step.subscription_sid}: {step.event_type} was already subscribed")
            continue
        version = f"schema version {step.schema_version}" if step.schema_version is not None else "latest version"
        say(f"{step.subscription_sid}: added {step.event_type} ({version})")
    removes = [step for step in steps if isinstance(step, RemoveType)]
    if not removes:
        return
    sid = removes[0].subscription_sid
    present = _current(api, sid)
    for remove in removes:
        if remove.replaced_by not in present:
            raise MigrationError(
                f"{sid}: {remove.replaced_by} is not on the subscription after adding it, so {remove.event_type} "
                "was kept; run the command again"
            )
    say(f"{sid}: confirmed {', '.join(remove.replaced_by for remove in removes)} subscribed")
    for remove in removes:
        try:
            api.remove_subscribed_type(sid, remove.event_type)
        except TwilioApiError as error:
            if error.status != 404 or remove.event_type in _current(api, sid):
                raise
            say(f"{sid}: {remove.event_type} was already removed")
            continue
        say(f"{sid}: removed {remove.event_type}")
