"""The catalog of Twilio event types: which are translated, which are refused, and what to do instead.

One table decides every type. The four ``com.twilio.voice.status-callback.call.*`` call-progress types are the ones
Twilio marks Segment-compatible; their deprecated ``.webhook.`` twins and the ``api-request`` types are refused with
a reason and a hint naming what to subscribe to instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEPRECATED_PREFIX",
    "STATUS_CALLBACK_PARAMETERS",
    "SUPPORTED_TYPES",
    "TEST_EVENT_TYPE",
    "CatalogEntry",
    "EventSupport",
    "classify",
]

_CALL_PROGRESS = "com.twilio.voice.status-callback.call."
DEPRECATED_PREFIX = "com.twilio.voice.webhook.status-callback.call."
_API_REQUEST = "com.twilio.voice.api-request.call."
TEST_EVENT_TYPE = "com.twilio.eventstreams.test-event"

_STAGES = ("initiated", "ringing", "answered", "completed")
SUPPORTED_TYPES: tuple[str, ...] = tuple(_CALL_PROGRESS + stage for stage in _STAGES)
_SUPPORTED_SET = frozenset(SUPPORTED_TYPES)
_SUBSCRIBED_EVENTS_URL = "https://events.twilio.com/v1/Subscriptions/<SubscriptionSid>/SubscribedEvents"

# The status-callback parameters Twilio documents for Voice calls (the Call resource's StatusCallback section and its
# voice request parameters), in Twilio's PascalCase. A mapping's `param:` sources are linted against them so that a
# typo is not a property silently missing from every event. Twilio adds parameters without notice: a mapping names
# the newer ones it reads in `[lint] known_params`.
_GEOGRAPHY = tuple(
    party + field for party in ("From", "To", "Caller", "Called") for field in ("City", "State", "Zip", "Country")
)
STATUS_CALLBACK_PARAMETERS: frozenset[str] = frozenset(
    {
        # sent with every status callback
        "CallSid",
        "AccountSid",
        "From",
        "To",
        "Caller",
        "Called",
        "CallStatus",
        "ApiVersion",
        "Direction",
        "Timestamp",
        "CallbackSource",
        "SequenceNumber",
        # sent when Twilio knows them
        *_GEOGRAPHY,
        "ForwardedFrom",
        "CallerName",
        "ParentCallSid",
        "CallToken",
        "ApplicationSid",
        "StirVerstat",
        # answering machine detection
        "AnsweredBy",
        "MachineDetectionDuration",
        # the completed call
        "CallDuration",
        "Duration",
        "SipResponseCode",
        # recorded calls
        "RecordingUrl",
        "RecordingSid",
        "RecordingDuration",
    }
)


class EventSupport(StrEnum):
    """How the bridge treats an event type."""

    SUPPORTED = "supported"
    DEPRECATED = "deprecated"
    NOT_SEGMENT_COMPATIBLE = "not_segment_compatible"
    TEST_EVENT = "test_event"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The verdict on one event type: its support, and for refusals a message and a hint."""

    event_type: str
    support: EventSupport
    message: str = ""
    hint: str = ""
    replacement: str | None = None


def _deprecated(event_type: str) -> CatalogEntry:
    replacement = _CALL_PROGRESS + event_type.removeprefix(DEPRECATED_PREFIX)
    if replacement not in _SUPPORTED_SET:
        # A deprecated webhook type with no current twin we know of: say so rather than invent a replacement.
        return CatalogEntry(
            event_type,
            EventSupport.DEPRECATED,
            message="deprecated Twilio event type with no Segment-compatible replacement in this bridge",
            hint=f"Subscribe to one of {', '.join(SUPPORTED_TYPES)} instead.",
        )
    hint = (
        f"Subscribe to {replacement} instead: `segment-bridge twilio migrate --apply` does it for you; or in the "
        f"Twilio Console (Event Streams > Manage subscriptions) add it "
        f"to the subscription, or with the Subscribed Events API: POST {_SUBSCRIBED_EVENTS_URL} "
        f"Type={replacement} SchemaVersion=2, then remove the deprecated type with "
        f"DELETE {_SUBSCRIBED_EVENTS_URL}/{event_type}. Add first, then remove, so no call events are missed."
    )
    return CatalogEntry(
        event_type,
        EventSupport.DEPRECATED,
        message=f"deprecated Twilio event type; its replacement is {replacement}",
        hint=hint,
        replacement=replacement,
    )


def _classify_uncached(event_type: str) -> CatalogEntry:
    if event_type in _SUPPORTED_SET:
        return CatalogEntry(event_type, EventSupport.SUPPORTED)
    if event_type == TEST_EVENT_TYPE:
        return CatalogEntry(
            event_type,
            EventSupport.TEST_EVENT,
            message="Event Streams sink test event: acknowledged, not forwarded",
        )
    if event_type.startswith(DEPRECATED_PREFIX):
        return _deprecated(event_type)
    if event_type.startswith(_API_REQUEST):
        return CatalogEntry(
            event_type,
            EventSupport.NOT_SEGMENT_COMPATIBLE,
            message=(
                "Call API Request events are Webhook/Kinesis-only types that Twilio does not mark "
                "Segment-compatible; they record API requests, not call progress"
            ),
            hint=(
                f"Call progress is carried by {', '.join(SUPPORTED_TYPES)}: subscribe to those, and remove "
                f"{event_type} from subscriptions whose sink feeds this bridge."
            ),
        )
    return CatalogEntry(
        event_type,
        EventSupport.UNKNOWN,
        message="unknown event type: segment-bridge translates Twilio Voice call-progress events only",
        hint=f"Subscribe this sink to {', '.join(SUPPORTED_TYPES)}, or route other types to another sink.",
    )


_CACHE: dict[str, CatalogEntry] = {}
# Unknown types come from the outside world; bound the memo so hostile input cannot grow it without limit.
_CACHE_LIMIT = 1024


def classify(event_type: str) -> CatalogEntry:
    """Return the catalog's verdict on a CloudEvent ``type``."""
    entry = _CACHE.get(event_type)
    if entry is None:
        entry = _classify_uncached(event_type)
        if len(_CACHE) < _CACHE_LIMIT:
            _CACHE[event_type] = entry
    return entry
