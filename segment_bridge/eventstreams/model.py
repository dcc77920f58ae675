"""What the Event Streams API says about an account, as plain frozen values.

The I/O module (:mod:`segment_bridge.eventstreams.api`) reads Twilio into these; the planning modules
(:mod:`~segment_bridge.eventstreams.check`, :mod:`~segment_bridge.eventstreams.migrate`) take them in and return
findings or steps, so they are tested with plain equality and no server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "CALL_PROGRESS_SCHEMA_ID",
    "TESTED_SCHEMA_VERSIONS",
    "AccountState",
    "EventType",
    "Sink",
    "SubscribedType",
    "Subscription",
    "TypeStatus",
    "same_destination",
]

#: The schema the call-progress types (current and deprecated) follow.
CALL_PROGRESS_SCHEMA_ID = "Voice.WebhookEvent"
#: The ``Voice.WebhookEvent`` versions the bridge's mapping was tested with (v1 and v2 carry the same fields).
TESTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1, 2})


class TypeStatus(StrEnum):
    """An event type's place in Twilio's lifecycle (``/v1/Types``)."""

    AVAILABLE = "available"
    DEPRECATED = "deprecated"
    RESTRICTED = "restricted"
    DISCONTINUED = "discontinued"


@dataclass(frozen=True, slots=True)
class EventType:
    """One entry of ``/v1/Types``."""

    type: str
    status: str
    schema_id: str = ""
    documentation_url: str = ""


@dataclass(frozen=True, slots=True)
class SubscribedType:
    """A type a subscription carries, at a schema version."""

    type: str
    schema_version: int


@dataclass(frozen=True, slots=True)
class Sink:
    """One sink of the account; ``destination`` is the webhook URL (empty for other sink types)."""

    sid: str
    description: str
    sink_type: str
    status: str
    destination: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription with the types it carries."""

    sid: str
    description: str
    sink_sid: str
    types: tuple[SubscribedType, ...] = ()

    def version_of(self, event_type: str) -> int | None:
        """The schema version ``event_type`` is subscribed at, or ``None`` when it is not subscribed."""
        for subscribed in self.types:
            if subscribed.type == event_type:
                return subscribed.schema_version
        return None


@dataclass(frozen=True, slots=True)
class AccountState:
    """Everything the commands read from one account.

    ``schema_versions`` maps a schema id to the versions Twilio publishes for it (for choosing the version a
    replacement is added at); a schema that was not read is absent.
    """

    types: Mapping[str, EventType] = field(default_factory=dict)
    sinks: tuple[Sink, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    schema_versions: Mapping[str, frozenset[int]] = field(default_factory=dict)

    def sink(self, sid: str) -> Sink | None:
        """The sink with this SID, if the account has it."""
        return next((sink for sink in self.sinks if sink.sid == sid), None)


def _normalised(url: str) -> str:
    # Twilio drops URL credentials before calling, and a trailing slash or case in scheme/host is the same place.
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/") or "/", parts.query, ""))


def same_destination(configured: str, wanted: str) -> bool:
    """Whether a sink's destination is the URL ``wanted``, ignoring user-info, case of scheme/host, a final ``/``."""
    if not configured or not wanted:
        return False
    return _normalised(configured) == _normalised(wanted)
