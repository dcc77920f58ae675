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

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from segment_bridge.delivery import (
        DeliveryReport,
        DryRunTransport,
        FileTransport,
        SegmentTransport,
        Transport,
        deliver,
    )
    from segment_bridge.settings import Settings

# The delivery edge imports requests and segment-analytics-python; load it on first use so `import segment_bridge`
# (a Lambda cold start, a translate-only script) stays light.
_LAZY = {
    "DeliveryReport": "segment_bridge.delivery",
    "DryRunTransport": "segment_bridge.delivery",
    "FileTransport": "segment_bridge.delivery",
    "SegmentTransport": "segment_bridge.delivery",
    "Transport": "segment_bridge.delivery",
    "deliver": "segment_bridge.delivery",
    "Settings": "segment_bridge.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'segment_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BridgeError",
    "CatalogEntry",
    "CloudEvent",
    "CompiledMapping",
    "ConfigurationError",
    "DeadLetterWriter",
    "DeliveryError",
    "DeliveryReport",
    "DryRunTransport",
    "EventError",
    "EventSupport",
    "FileTransport",
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
    "SegmentTransport",
    "Settings",
    "SignatureError",
    "TrackCall",
    "Translation",
    "Transport",
    "VoiceCallEvent",
    "__version__",
    "check_track_message",
    "classify",
    "deliver",
    "load_mapping",
    "parse_event",
    "translate",
    "translate_event",
    "translate_record",
]
