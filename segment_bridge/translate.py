"""Translate Twilio CloudEvents into Segment ``track`` calls, or into reasoned refusals.

This is the pure heart of the bridge: bytes or decoded JSON in, :class:`Translation` values out. It never raises
for bad input, never does I/O, and never reads the clock; every event comes back translated, acknowledged (the sink
test event) or refused with a :class:`RefusalReason`, so callers can count, log and dead-letter each one.

Segment answers 200 and then silently drops messages without identity or event name, duplicates, and oversized
messages; :func:`check_track_message` refuses those here, before anything is sent.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from segment_bridge import __version__
from segment_bridge.catalog import SUPPORTED_TYPES, EventSupport, classify
from segment_bridge.events import (
    CallProgressEvent,
    TimeZoneError,
    decode_string_data,
    event_timestamp,
    is_output_form,
    json_kind,
    loads_exact,
    validation_error_path,
)
from segment_bridge.mapping import Applier, CompiledMapping, load_mapping
from segment_bridge.outcomes import Outcome, Refusal, RefusalReason, Translation
from segment_bridge.track import MAX_MESSAGE_BYTES, MAX_MESSAGE_ID_LENGTH, TrackCall, message_id_for

__all__ = ["check_track_message", "translate", "translate_event", "translate_record"]

_LIBRARY_NAME = "segment-bridge"
_SUPPORTED = frozenset(SUPPORTED_TYPES)
# An ASCII message at most this long is within Segment's limit as sent (see TrackCall.within).
_SURELY_SENDABLE_BYTES = MAX_MESSAGE_BYTES * 2 // 3
_REFUSAL_REASONS = {
    EventSupport.DEPRECATED: RefusalReason.DEPRECATED_EVENT_TYPE,
    EventSupport.NOT_SEGMENT_COMPATIBLE: RefusalReason.NOT_SEGMENT_COMPATIBLE,
    EventSupport.UNKNOWN: RefusalReason.UNKNOWN_EVENT_TYPE,
}


def _refuse(
    element: Any,
    reason: RefusalReason,
    message: str,
    hint: str = "",
    event_id: str | None = None,
    event_type: str | None = None,
    raw: bytes | None = None,
) -> Translation:
    refusal = Refusal(reason, message, hint, event_id, event_type)
    return Translation(Outcome.REFUSED, element, event_id, event_type, refusal=refusal, raw=raw)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_time(event: Any, time_parameter: Any) -> tuple[str | None, str]:
    """Return ``(timestamp, problem)``: the event's own time, never the time of processing.

    The first of ``time``, ``data.timestamp`` and the RFC 2822 ``Timestamp`` parameter that is set wins.
    ``problem`` names the field whose value is not a timestamp; both are empty when the event has no time at all.
    ``event`` is a :class:`CallProgressEvent` or what the typed decoder made of one.
    """
    if event.time:
        return _normalized_time("time", event.time, rfc2822=False)
    if event.data.timestamp:
        return _normalized_time("data.timestamp", event.data.timestamp, rfc2822=False)
    value = time_parameter
    if value:
        return _normalized_time("data.request.parameters.Timestamp", value, rfc2822=True)
    return None, ""


def _normalized_time(path: str, value: Any, *, rfc2822: bool) -> tuple[str | None, str]:
    try:
        return event_timestamp(str(value), rfc2822=rfc2822), ""
    except TimeZoneError as error:  # a reason of its own: the zone, never a guessed offset
        return None, f"{path}: {error}"
    except (ValueError, TypeError, IndexError, OverflowError):
        kind = "RFC 2822" if rfc2822 else "ISO-8601"
        # The value is not quoted: refusal messages reach logs, and the dead-letter record keeps the event anyway.
        return None, f"{path}: not a valid {kind} timestamp"


def check_track_message(call: TrackCall) -> Refusal | None:
    """Refuse a message that Segment would accept with 200 and then drop; ``None`` when it is sendable."""
    message = call.message
    reason: RefusalReason | None = None
    if not (message.get("anonymousId") or message.get("userId")):
        reason, text = RefusalReason.MISSING_IDENTITY, "no anonymousId or userId: Segment drops it"
        hint = "Add a source to [identity] anonymous_id in the mapping that is present on every event."
    elif not message.get("event"):
        reason, text = (
            RefusalReason.MISSING_EVENT_NAME,
            "no event name: Segment drops a track call without one",
        )
        hint = f"Add {call.event_type!r} to [events] in the mapping."
    elif len(call.message_id) > MAX_MESSAGE_ID_LENGTH:
        reason = RefusalReason.MESSAGE_ID_TOO_LONG
        text = f"messageId is {len(call.message_id)} characters; Segment keeps at most {MAX_MESSAGE_ID_LENGTH}"
        hint = "Shorten message_id_prefix in the mapping."
    elif not call.within(MAX_MESSAGE_BYTES):
        reason = RefusalReason.MESSAGE_TOO_LARGE
        text = f"message is {call.size} bytes; Segment drops messages over {MAX_MESSAGE_BYTES} bytes"
        hint = "Map fewer or smaller properties (large data fields such as responseBody do not belong in Segment)."
    if reason is None:
        return None
    return Refusal(reason, text, hint, call.event_id, call.event_type)


_DEAD_LETTER_KEYS = frozenset({"reason", "id", "type", "message", "hint", "event"})
_KEPT_AS_TEXT_KEYS = _DEAD_LETTER_KEYS | {"event_encoding"}


def _dead_letter_event(element: Any) -> Any:
    """The original event inside a dead-letter record, or ``None`` when ``element`` is not one.

    Dead-letter files are replayable: their records wrap the original CloudEvent (or raw text) under ``event``.
    A CloudEvent never has exactly these keys (it needs ``specversion`` and ``source``). A record whose event could
    not be embedded keeps it as text, and says so in ``event_encoding``: its JSON text (returned as is, to be read
    again) or, for bytes that are not UTF-8, base64 (returned as the original bytes).
    """
    if not isinstance(element, dict):
        return None
    if element.keys() == _DEAD_LETTER_KEYS:
        return element["event"]
    if element.keys() == _KEPT_AS_TEXT_KEYS and isinstance(element["event"], str):
        if element["event_encoding"] == "json-text":
            return element["event"]
        if element["event_encoding"] == "base64":
            try:
                return base64.b64decode(element["event"], validate=True)
            except ValueError:
                return None
    return None


def translate_event(element: Any, mapping: CompiledMapping) -> Translation:
    """Translate one decoded CloudEvent (a JSON object) into a :class:`Translation`. Never raises.

    A dead-letter record (from ``--dead-letter``) is unwrapped and its original event translated.
    """
    original = _dead_letter_event(element)
    if isinstance(original, dict):
        element = original
    if not isinstance(element, dict):
        return _refuse(
            element,
            RefusalReason.INVALID_EVENT,
            f"expected a CloudEvent object, got {json_kind(element)}",
        )
    event_id = _str_or_none(element.get("id"))
    event_type = _str_or_none(element.get("type"))
    if event_type is None:
        return _refuse(
            element,
            RefusalReason.INVALID_EVENT,
            "type: a CloudEvent needs a non-empty string 'type'",
            event_id=event_id,
        )
    entry = classify(event_type)
    if entry.support is EventSupport.TEST_EVENT:
        return Translation(Outcome.ACKNOWLEDGED, element, event_id, event_type, note=entry.message)
    if entry.support is not EventSupport.SUPPORTED:
        return _refuse(element, _REFUSAL_REASONS[entry.support], entry.message, entry.hint, event_id, event_type)
    try:
        return _translate_supported(element, mapping, event_id, event_type)
    except Exception as error:  # a bug must cost one event, never the request, batch or shard
        return _translation_error(element, error, event_id, event_type)


def _translation_error(
    element: Any, error: Exception, event_id: str | None, event_type: str | None, raw: bytes | None = None
) -> Translation:
    return _refuse(
        element,
        RefusalReason.TRANSLATION_ERROR,
        f"unexpected {type(error).__name__} while translating",
        "A bug in segment-bridge or the mapping: the event is kept (dead-letter file); please report it.",
        event_id,
        event_type,
        raw,
    )


def _translate_supported(
    element: dict[str, Any], mapping: CompiledMapping, event_id: str | None, event_type: str
) -> Translation:
    data = decode_string_data(element.get("data"))
    if isinstance(data, str):
        return _refuse(
            element, RefusalReason.INVALID_EVENT, "data: a string that is not JSON", "", event_id, event_type
        )
    try:
        event = CallProgressEvent.model_validate(
            {**element, "data": data} if data is not element.get("data") else element
        )
    except ValidationError as error:
        path, text = validation_error_path(error)
        return _refuse(
            element, RefusalReason.INVALID_EVENT, f"{path}: {_model_problem(text)}", "", event_id, event_type
        )
    return _map(event, mapping.apply, element, data, event.parameters, _time_parameter, mapping, element, None)


# What the JSON and model libraries say, in the user's words: their messages name internals (a model's class,
# Python's own types) or describe the input from the library's side.
_JSON_PROBLEMS = (
    ("number is infinity", "a number beyond the range of a double (about 1.8e308), which no JSON consumer reads"),
    ("not valid UTF-8", "bytes that are not valid UTF-8"),
    ("surrogate", "a lone UTF-16 surrogate escape (\\ud800-\\udfff) in a string"),
    ("depth limit", "values nested more than 1,024 levels deep"),
    ("recursion", "values nested more than 1,024 levels deep"),
)
_MODEL_WORDS = re.compile(r" or instance of \w+|\bvalid tuple\b|\bvalid dictionary\b")
_MODEL_REPLACEMENTS = {"valid tuple": "valid array", "valid dictionary": "JSON object"}


def _json_problem(error: orjson.JSONDecodeError) -> str:
    """The reason a text is not JSON, for a refusal message."""
    for marker, words in _JSON_PROBLEMS:
        if marker in error.msg:
            return f"not JSON: {words} at position {error.pos}"
    return f"not JSON: {error.msg} at position {error.pos}"


def _model_problem(text: str) -> str:
    """A pydantic message without the names of the bridge's internal models."""
    return _MODEL_WORDS.sub(lambda found: _MODEL_REPLACEMENTS.get(found.group(), ""), text)


def _time_parameter(params: dict[str, Any]) -> Any:
    return params.get("Timestamp") or params.get("timestamp")


def _map(
    event: Any,
    apply: Applier,
    attributes: Any,
    data: Any,
    params: Any,
    time_parameter: Callable[[Any], Any],
    mapping: CompiledMapping,
    element: Any,
    raw: bytes | None,
) -> Translation:
    """Map a validated event: ``apply(attributes, data, params)`` is the mapping over the event's own form.

    ``event`` is a :class:`CallProgressEvent` over decoded dicts, or the typed decoder's struct over its structs;
    ``time_parameter(params)`` reads the ``Timestamp`` parameter of either.
    """
    timestamp = event.time
    if not (timestamp and is_output_form(timestamp)):  # else the usual case: nothing to parse or normalize
        timestamp, problem = _event_time(event, time_parameter(params))
        if timestamp is None:
            if problem:
                return _refuse(element, RefusalReason.INVALID_EVENT, problem, "", event.id, event.type, raw)
            return _refuse(
                element,
                RefusalReason.MISSING_TIMESTAMP,
                "no event time in time, data.timestamp or the Timestamp parameter",
                "The bridge never stamps events with the time of processing; fix the producer or the archive.",
                event.id,
                event.type,
                raw,
            )
    anonymous_id, user_id, properties = apply(attributes, data, params)
    # A fresh context per message: callers own their messages and may change them.
    context: dict[str, Any] = {"library": {"name": _LIBRARY_NAME, "version": __version__}}
    if mapping.external_ids is not None:
        external_ids = mapping.external_ids.take(properties)
        if external_ids:
            context["externalIds"] = external_ids
    event_id = event.id
    event_type = event.type
    name = mapping.event_names.get(event_type)
    message_id = message_id_for(event.source, event_id, event_type, mapping.spec.message_id_prefix)
    if name and user_id is None and anonymous_id is not None:  # the usual message, built in one go
        message: dict[str, Any] = {
            "type": "track",
            "event": name,
            "anonymousId": anonymous_id,
            "properties": properties,
            "timestamp": timestamp,
            "context": context,
            "messageId": message_id,
        }
    else:
        message = {"type": "track"}
        if name:
            message["event"] = name
        if user_id is not None:
            message["userId"] = user_id
        if anonymous_id is not None:
            message["anonymousId"] = anonymous_id
        message["properties"] = properties
        message["timestamp"] = timestamp
        message["context"] = context
        message["messageId"] = message_id
    try:
        body = orjson.dumps(message)
    except TypeError:  # orjson: an integer beyond 64 bits, which no JSON consumer downstream takes
        # orjson's own wording ("Integer exceeds 64-bit range") is not for users; the values come from JSON, so an
        # integer too large is the only thing it can refuse here.
        return _refuse(
            element,
            RefusalReason.INVALID_EVENT,
            "a mapped value cannot be sent: an integer beyond 64 bits",
            "",
            event_id,
            event_type,
            raw,
        )
    # orjson writes infinity as null; only the general path reads a number beyond double range (see loads_exact).
    if raw is None and b"null" in body and _has_infinity(message):
        return _refuse(
            element,
            RefusalReason.INVALID_EVENT,
            "a mapped value cannot be sent: a number beyond double range",
            "",
            event_id,
            event_type,
        )
    call = TrackCall(message, body, event_id, event_type)
    # check_track_message's rules for the usual message, without looking the values up again: small enough for
    # TrackCall.within to pass on length alone. Anything else gets the full check and its reason.
    if (
        (anonymous_id or user_id)
        and name
        and len(message_id) <= MAX_MESSAGE_ID_LENGTH
        and len(body) <= _SURELY_SENDABLE_BYTES
        and body.isascii()
    ):
        return Translation(Outcome.TRANSLATED, element, event_id, event_type, call, None, raw=raw)
    refusal = check_track_message(call)
    if refusal is None:
        return Translation(Outcome.TRANSLATED, element, event_id, event_type, call, None, raw=raw)
    return Translation(Outcome.REFUSED, element, event_id, event_type, None, refusal, raw=raw)


def _has_infinity(message: dict[str, Any]) -> bool:
    values = [message.get("anonymousId"), message.get("userId"), *message["properties"].values()]
    while values:
        value = values.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return True
        if isinstance(value, dict):
            values.extend(value.values())
        elif isinstance(value, list):
            values.extend(value)
    return False


def _translate_fast(raw: bytes | str, mapping: CompiledMapping) -> Translation | None:
    """Decode and validate a single supported event in one pass; ``None`` sends the input down the general path."""
    decoder = mapping.decoder
    if decoder is None:  # the mapping reads fields the typed decoder skips
        return None
    try:
        event = decoder.decode(raw)
    except Exception:  # whatever the typed decoder does not take, the general path judges
        return None
    if event.type not in _SUPPORTED:
        return None
    # msgspec checks UTF-8 only in the strings it decodes, not in those it skips (unread parameters, response...),
    # where orjson, and so the general path, refuses it: such bytes are not JSON, and `event` could not decode them.
    if isinstance(raw, bytes) and not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    data = event.data
    request = data.request
    params = request.parameters if request is not None else decoder.empty_parameters
    body = raw.encode() if isinstance(raw, str) else raw
    return _map(event, mapping.apply_decoded, event, data, params, decoder.time_parameter, mapping, None, body)


def translate_record(raw: str | bytes, mapping: CompiledMapping) -> list[Translation]:
    """Translate one HTTP body or one JSON Lines line: a CloudEvent object or a JSON array of them.

    Text that is not JSON comes back as one ``invalid_json`` refusal carrying the raw text; an array yields one
    translation per element, in order. Dead-letter records are unwrapped, so a dead-letter file replays.
    """
    try:
        fast = _translate_fast(raw, mapping)
    except Exception as error:  # see translate_event
        return [_translation_error(None, error, None, None, raw.encode() if isinstance(raw, str) else raw)]
    if fast is not None:
        return [fast]
    try:
        decoded = loads_exact(raw)
    except orjson.JSONDecodeError as error:
        return [_refuse(_as_text(raw), RefusalReason.INVALID_JSON, _json_problem(error))]
    original = _dead_letter_event(decoded)
    if isinstance(original, str | bytes):
        # The record of an input that was not JSON, or kept as text: read its raw text again.
        return translate_record(original, mapping)
    if isinstance(decoded, list):
        if not decoded:
            return [_refuse(decoded, RefusalReason.INVALID_EVENT, "an empty JSON array holds no CloudEvent")]
        return [translate_event(element, mapping) for element in decoded]
    return [translate_event(decoded, mapping)]


def _as_text(raw: str | bytes) -> str | bytes:
    """Input that is not JSON, as its text; bytes that are not UTF-8 stay bytes, so that nothing of them is lost."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


_DEFAULT: list[CompiledMapping] = []


def translate(raw: str | bytes, mapping: CompiledMapping | None = None) -> list[Translation]:
    """Translate a body or line with ``mapping``, or the packaged default mapping (loaded once)."""
    if mapping is None:
        if not _DEFAULT:
            _DEFAULT.append(load_mapping())
        mapping = _DEFAULT[0]
    return translate_record(raw, mapping)
