"""Small helpers of the request handling in :mod:`.app` that hold no app state.

What a body holds (an empty array, CloudEvent-like elements, a sink test id), which Segment errors are final for
an event, and the paths events are served at.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from segment_bridge.exceptions import DeliveryError, PayloadTooLargeError, PermanentDeliveryError
from segment_bridge.outcomes import Translation
from segment_bridge.server.config import _route_path
from segment_bridge.track import MAX_MESSAGE_BYTES, TrackCall


def _settle_recorded(futures: list[asyncio.Future[Exception | None]], errors: list[Exception | None]) -> None:
    for future, error in zip(futures, errors, strict=True):
        if not future.done():
            future.set_result(error)


def _test_id(element: Any) -> str | None:
    """``data.test_id`` of a sink test event (``data`` is a JSON string there), or ``None``."""
    data = element.get("data") if isinstance(element, dict) else None
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    value = data.get("test_id") if isinstance(data, dict) else None
    return str(value) if value is not None else None


def _too_large_alone(error: DeliveryError, call: TrackCall) -> bool:
    """Whether Segment refused this message on its own as too large, so that no retry can ever deliver it.

    :func:`~segment_bridge.delivery.send_batch` splits a batch answered "too large" until the message is alone,
    and refuses a message over Segment's 32 KB limit without sending it.
    """
    return isinstance(error, PayloadTooLargeError) and (error.count == 1 or call.size > MAX_MESSAGE_BYTES)


def _rejected(error: DeliveryError, call: TrackCall) -> bool:
    """A batch-level permanent refusal (write key, 403, 404, a 400 not "too large"): answered 503, never 200."""
    return isinstance(error, PermanentDeliveryError) and not _too_large_alone(error, call)


def _event_of(translations: list[Translation], call: TrackCall) -> Any:
    for translation in translations:
        if translation.track is call:
            return translation.event
    return None


_JSON_WHITESPACE = b" \t\n\r"


def _is_empty_array(body: bytes) -> bool:
    """Whether the body is the JSON ``[]`` (with any JSON whitespace), and nothing else."""
    stripped = body.strip(_JSON_WHITESPACE)
    return stripped[:1] == b"[" and stripped[-1:] == b"]" and not stripped[1:-1].strip(_JSON_WHITESPACE)


def _event_paths(public_url: str | None) -> list[str]:
    """The paths ``POST`` events are served at: ``/events`` and the path of the public URL, each exactly as given.

    A sink whose destination ends in ``/events/`` is served there, not redirected: Twilio does not follow a redirect
    as a delivery, and one to ``http://`` would downgrade the scheme behind a TLS proxy.
    """
    paths = ["/events"]
    if public_url is not None:
        paths.append(_route_path(public_url))
    return list(dict.fromkeys(paths))


def _is_cloud_event_like(element: Any) -> bool:
    """An object with a non-empty string ``type``: malformed maybe, but an event to answer for one by one."""
    return isinstance(element, dict) and isinstance(element.get("type"), str) and bool(element["type"])
