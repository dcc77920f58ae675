"""segment-bridge: Twilio Voice call events into Segment as clean, deduplicated, correctly timed track calls.

The pure core (parse, classify, map, check) is importable without any server or cloud extra::

    from segment_bridge import load_mapping, translate

    for translation in translate(body_bytes, load_mapping()):
        if translation.track is not None:
            batch.append(translation.track.message)
        elif translation.refusal is not None:
            log.warning(translation.refusal.describe())
"""

from __future__ import annotations

__version__ = "0.1.0"

from segment_bridge.catalog import CatalogEntry, EventSupport, classify
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.events import CloudEvent, VoiceCallEvent, parse_event
from segment_bridge.exceptions import (
    BridgeError,
    ConfigurationError,
    DeliveryError,
    EventError,
    InvalidEventError,
    MappingError,
    MissingExtraError,
    PayloadTooLargeError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SignatureError,
)
from segment_bridge.mapping import CompiledMapping, MappingSpec, load_mapping
from segment_bridge.outcomes import Outcome, Refusal, RefusalReason, Translation
from segment_bridge.track import TrackCall
from segment_bridge.translate import check_track_message, translate, translate_event, translate_record

__all__ = [
    "BridgeError",
    "CatalogEntry",
    "CloudEvent",
    "CompiledMapping",
    "ConfigurationError",
    "DeadLetterWriter",
    "DeliveryError",
    "EventError",
    "EventSupport",
    "InvalidEventError",
    "MappingError",
    "MappingSpec",
    "MissingExtraError",
    "Outcome",
    "PayloadTooLargeError",
    "PermanentDeliveryError",
    "Refusal",
    "RefusalReason",
    "RetryableDeliveryError",
    "SignatureError",
    "TrackCall",
    "Translation",
    "VoiceCallEvent",
    "__version__",
    "check_track_message",
    "classify",
    "load_mapping",
    "parse_event",
    "translate",
    "translate_event",
    "translate_record",
]
