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
from typing import Any

import msgspec
import orjson

from segment_bridge import __version__
from segment_bridge.catalog import SUPPORTED_TYPES, EventSupport, classify
from segment_bridge.events import (
    JSONProblem,
    TimeZoneError,
    check_text,
    decode_json,
    encode_deep,
    event_timestamp,
    guarded,
    is_output_form,
    json_kind,
    json_problem,
    validation_problem,
    without_duplicate_keys,
)
from segment_bridge.external_ids import EXTERNAL_IDS
from segment_bridge.mapping import CompiledMapping, load_mapping
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


# ---------------------------------------------------------------------------------------------------------------
# What is not a valid call-progress event: read only as far as its refusal needs.


class _Head(msgspec.Struct, gc=False):
    """An object that the event decoder did not take: its id and type, whatever their JSON types."""

    id: Any = None
    type: Any = None


class _DeadLetter(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A dead-letter record (deadletter.py): exactly these keys, ``event_encoding`` when it keeps text.

    A CloudEvent never has exactly these keys (it needs ``specversion`` and ``source``).
    """

    reason: Any
    id: Any
    type: Any
    message: Any
    hint: Any
    event: msgspec.Raw
    event_encoding: Any = msgspec.UNSET


_decode_head = msgspec.json.Decoder(_Head, float_hook=float).decode
_decode_dead_letter = msgspec.json.Decoder(_DeadLetter).decode
_decode_array = msgspec.json.Decoder(list[msgspec.Raw]).decode


def _dead_letter(raw: bytes) -> _DeadLetter | None:
    try:
        return guarded(_decode_dead_letter, raw)  # type: ignore[no-any-return]
    except msgspec.ValidationError:
        return None


def _kept_text(record: _DeadLetter) -> str | bytes | None:
    """The input a record kept as text (it was not JSON, or could not be embedded), to be read again; else ``None``.

    A record's ``event`` is the raw text of a line that was not JSON; with ``event_encoding`` it is the event's JSON
    text (``json-text``) or, for bytes that are not UTF-8, base64 (returned as the original bytes).
    """
    event = bytes(record.event)
    if not event.startswith(b'"'):
        return None
    text = decode_json(event)
    if record.event_encoding is msgspec.UNSET or record.event_encoding == "json-text":
        return text  # type: ignore[no-any-return]
    if record.event_encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except ValueError:
            return None
    return None


def _not_a_call_event(raw: bytes, error: msgspec.ValidationError) -> Translation:
    """The answer for JSON the event decoder did not take: acknowledged, refused for its type, or invalid."""
    try:
        head = guarded(_decode_head, raw)
    except msgspec.ValidationError:
        try:
            kind = json_kind(decode_json(raw))
        except JSONProblem as problem:  # a value the struct refused before reaching what follows it: `0 x`, `1 2`
            return _refuse(_as_text(raw), RefusalReason.INVALID_JSON, str(problem))
        return _refuse(None, RefusalReason.INVALID_EVENT, f"expected a CloudEvent object, got {kind}", raw=raw)
    event_id, event_type = _str_or_none(head.id), _str_or_none(head.type)
    if event_type is None:
        message = "type: a CloudEvent needs a non-empty string 'type'"
        return _refuse(None, RefusalReason.INVALID_EVENT, message, event_id=event_id, raw=raw)
    refused = _by_type(event_id, event_type, raw)
    if refused is not None:
        return refused
    path, words = validation_problem(error)
    return _refuse(None, RefusalReason.INVALID_EVENT, f"{path}: {words}", "", event_id, event_type, raw)


def _by_type(event_id: str | None, event_type: str, raw: bytes) -> Translation | None:
    """The answer for a type the bridge does not translate (the sink test event, deprecated, unknown); else None."""
    entry = classify(event_type)
    if entry.support is EventSupport.TEST_EVENT:
        return Translation(Outcome.ACKNOWLEDGED, None, event_id, event_type, note=entry.message, raw=raw)
    if entry.support is not EventSupport.SUPPORTED:
        reason = _REFUSAL_REASONS[entry.support]
        return _refuse(None, reason, entry.message, entry.hint, event_id, event_type, raw)
    return None


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


# ---------------------------------------------------------------------------------------------------------------
# Translation.


def _element(raw: bytes, mapping: CompiledMapping, *, unwrap: bool) -> Translation:
    """Translate one JSON value known to be JSON; ``unwrap``: a dead-letter record stands for its event object."""
    decoder = mapping.decoder
    try:
        try:
            event = guarded(decoder.decode, raw)
        except msgspec.ValidationError as error:
            unique = without_duplicate_keys(raw)
            if unique is not None:  # judged by each key's last value, as JSON means it
                return _element(unique, mapping, unwrap=unwrap)
            record = _dead_letter(raw) if unwrap else None
            if record is not None and bytes(record.event).startswith(b"{"):
                return _element(bytes(record.event), mapping, unwrap=False)
            return _not_a_call_event(raw, error)
    except Exception as error:  # a bug must cost one event, never the request, batch or shard
        return _translation_error(None, error, None, None, raw)
    try:
        return _call_event(event, raw, mapping)
    except Exception as error:  # the id and type are known by now: the answer and the record keep them
        return _translation_error(None, error, event.id, event.type, raw)


def _call_event(event: Any, raw: bytes, mapping: CompiledMapping) -> Translation:
    """Translate what the event decoder took: its type is known; ``data`` may still be a JSON string."""
    if event.type not in _SUPPORTED:
        refused = _by_type(event.id, event.type, raw)
        if refused is not None:
            return refused
    decoder = mapping.decoder
    data = event.data
    if isinstance(data, str):  # data sent as a JSON string: the same struct, from that string
        try:
            data = guarded(decoder.decode_data, data.encode())
        except msgspec.ValidationError as error:
            try:  # msgspec stops at a value the struct refuses, before text after it ("2025-01-01T…": 2025, then junk)
                decode_json(data)
            except JSONProblem:
                message = "data: a string that is not JSON"
                return _refuse(None, RefusalReason.INVALID_EVENT, message, "", event.id, event.type, raw)
            unique = without_duplicate_keys(data.encode())  # as for the event itself: a key's last value counts
            try:
                if unique is None:
                    raise error
                data = guarded(decoder.decode_data, unique)
            except msgspec.ValidationError as last:
                path, words = validation_problem(last, "data")
                return _refuse(None, RefusalReason.INVALID_EVENT, f"{path}: {words}", "", event.id, event.type, raw)
        except (msgspec.DecodeError, RecursionError, JSONProblem, UnicodeEncodeError):
            message = "data: a string that is not JSON"
            return _refuse(None, RefusalReason.INVALID_EVENT, message, "", event.id, event.type, raw)
        event = msgspec.structs.replace(event, data=data)
    # eventSid, else event_sid: only the one read must be a string (or null).
    read_camel = data.eventSid is not msgspec.UNSET
    key, event_sid = ("eventSid", data.eventSid) if read_camel else ("event_sid", data.event_sid)
    if not (event_sid is None or type(event_sid) is str or event_sid is msgspec.UNSET):
        message = f"data.{key}: Input should be a valid string"
        return _refuse(None, RefusalReason.INVALID_EVENT, message, "", event.id, event.type, raw)
    request = data.request
    params = request.parameters if request is not None else decoder.empty_parameters
    return _map(event, data, params, mapping, raw)


def _map(event: Any, data: Any, params: Any, mapping: CompiledMapping, raw: bytes) -> Translation:
    """Map a validated event: the compiled mapping, the event's time, and Segment's rules."""
    timestamp = event.time
    if not (timestamp and is_output_form(timestamp)):  # else the usual case: nothing to parse or normalize
        timestamp, problem = _event_time(event, mapping.decoder.time_parameter(params))
        if timestamp is None:
            if problem:
                return _refuse(None, RefusalReason.INVALID_EVENT, problem, "", event.id, event.type, raw)
            return _refuse(
                None,
                RefusalReason.MISSING_TIMESTAMP,
                "no event time in time, data.timestamp or the Timestamp parameter",
                "The bridge never stamps events with the time of processing; fix the producer or the archive.",
                event.id,
                event.type,
                raw,
            )
    anonymous_id, user_id, properties = mapping.apply(event, data, params, raw)
    # A fresh context per message: callers own their messages and may change them.
    context: dict[str, Any] = {"library": {"name": _LIBRARY_NAME, "version": __version__}}
    if EXTERNAL_IDS in properties:
        context["externalIds"] = properties.pop(EXTERNAL_IDS)
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
    except TypeError as error:  # orjson's words are not for users; the values come from JSON, so it refuses
        # an integer beyond 64 bits, which no JSON consumer downstream takes, or nesting beyond its 254 levels.
        too_deep = "ecursion" in str(error)
        what = "values nested more than 254 levels deep" if too_deep else "an integer beyond 64 bits"
        message_text = f"a mapped value cannot be sent: {what}"
        return _refuse(None, RefusalReason.INVALID_EVENT, message_text, "", event_id, event_type, raw)
    # orjson writes infinity (a number beyond double range, as the decoder reads it) as null.
    if b"null" in body and _has_infinity(message):
        message_text = "a mapped value cannot be sent: a number beyond double range"
        return _refuse(None, RefusalReason.INVALID_EVENT, message_text, "", event_id, event_type, raw)
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
        return Translation(Outcome.TRANSLATED, None, event_id, event_type, call, None, raw=raw)
    refusal = check_track_message(call)
    if refusal is None:
        return Translation(Outcome.TRANSLATED, None, event_id, event_type, call, None, raw=raw)
    return Translation(Outcome.REFUSED, None, event_id, event_type, None, refusal, raw=raw)


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


def translate_event(element: Any, mapping: CompiledMapping) -> Translation:
    """Translate one decoded CloudEvent (a JSON object) into a :class:`Translation`. Never raises.

    A dead-letter record (from ``--dead-letter``) is unwrapped and its original event translated.
    """
    try:
        raw = encode_deep(element)
    except JSONProblem as problem:  # as translate_record refuses the same event as text
        return _refuse(element, RefusalReason.INVALID_JSON, str(problem))
    except (TypeError, ValueError, OverflowError):
        return _refuse(element, RefusalReason.INVALID_EVENT, f"expected a CloudEvent object, got {json_kind(element)}")
    return _element(raw, mapping, unwrap=True)


def translate_record(raw: str | bytes, mapping: CompiledMapping) -> list[Translation]:
    """Translate one HTTP body or one JSON Lines line: a CloudEvent object or a JSON array of them.

    Text that is not JSON comes back as one ``invalid_json`` refusal carrying the raw text; an array yields one
    translation per element, in order. Dead-letter records are unwrapped, so a dead-letter file replays.
    """
    try:
        data = raw.encode() if isinstance(raw, str) else raw
    except UnicodeEncodeError as error:  # a str holding a lone surrogate: no UTF-8 text has one
        words = "a lone UTF-16 surrogate (\\ud800-\\udfff) in a string"
        return [_refuse(raw, RefusalReason.INVALID_JSON, f"not JSON: {words} at position {error.start}")]
    try:
        if not data.isascii():
            check_text(data)
        if data[:1] == b"[" or (data[:1].isspace() and data.lstrip()[:1] == b"["):
            elements = guarded(_decode_array, data)
        else:
            single = _record(data, mapping)
            # The record of an input that was not JSON, or kept as text: read its raw text again.
            return [single] if isinstance(single, Translation) else translate_record(single, mapping)
    except JSONProblem as problem:
        return [_refuse(_as_text(raw), RefusalReason.INVALID_JSON, str(problem))]
    except (msgspec.DecodeError, RecursionError) as error:
        return [_refuse(_as_text(raw), RefusalReason.INVALID_JSON, json_problem(error, data))]
    if not elements:
        return [_refuse([], RefusalReason.INVALID_EVENT, "an empty JSON array holds no CloudEvent")]
    return [_element(bytes(element), mapping, unwrap=True) for element in elements]


def _record(raw: bytes, mapping: CompiledMapping) -> Translation | str | bytes:
    """Translate a line or body that is one value (not an array); a text to read again for a record that kept one.

    Raises:
        msgspec.DecodeError, RecursionError, JSONProblem: ``raw`` is not JSON.
    """
    decoder = mapping.decoder
    try:
        event = guarded(decoder.decode, raw)
    except msgspec.ValidationError:
        # msgspec stops at the first value the struct refuses, before it sees text that follows (`{"a": 1} x`):
        # that text decides whether this is invalid JSON or an invalid event.
        decode_json(raw)
        record = _dead_letter(raw)
        text = None if record is None else _kept_text(record)
        # Decoded again: invalid events are the rare case.
        return _element(raw, mapping, unwrap=True) if text is None else text
    try:
        return _call_event(event, raw, mapping)
    except Exception as error:  # see _element
        return _translation_error(None, error, event.id, event.type, raw)


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
