"""CloudEvents as Twilio sends them, their ``Voice.WebhookEvent`` data, and the one decoder of what a valid event is.

Every input the bridge takes, valid or not, is decoded here, by msgspec, into frozen structs: the envelope's
attributes are checked while the JSON is parsed, the fields no one reads are skipped without building objects, and
every refusal of the decoder (not JSON, not a CloudEvent, a field that fails) is said in the words below. Twilio is
loose and the models are tolerant: unknown attributes and ``data`` fields are allowed (Twilio adds parameters
without notice), ``data`` may arrive as a JSON-encoded string, its keys may be camelCase or snake_case, and ``time``
may be absent (the documentation samples put a timestamp in ``datacontenttype`` instead). Nothing here reads the
clock: an event's time is only ever its own.

Longer than the usual 500 lines because it is the one place that says what an event is: the models, the decoder,
its words for every refusal, and the rules for the event's own time.
"""

from __future__ import annotations

import operator
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import parsedate_tz
from typing import Annotated, Any, Literal

import msgspec

from segment_bridge.exceptions import InvalidEventError

__all__ = [
    "CallEventDecoder",
    "CallbackRequest",
    "CallbackResponse",
    "CloudEvent",
    "JSONProblem",
    "TimeZoneError",
    "VoiceCallEvent",
    "call_event_decoder",
    "decode_json",
    "decode_string_data",
    "event_timestamp",
    "format_timestamp",
    "is_output_form",
    "json_kind",
    "parse_event",
    "parse_timestamp",
    "validation_problem",
]

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _Envelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The CloudEvents 1.0 context attributes: the one definition, shared by the public model and the decoder."""

    specversion: Literal["1.0"]
    id: _NonEmpty
    source: _NonEmpty
    type: _NonEmpty
    time: str | None = None
    dataschema: str | None = None


class CloudEvent(_Envelope, frozen=True, kw_only=True):
    """A CloudEvents 1.0 envelope, as :func:`parse_event` makes it; extension attributes are in ``extensions``."""

    # Twilio's documentation samples carry a timestamp here: never trust it as a MIME type.
    datacontenttype: str | None = None
    subject: str | None = None
    #: ``data`` as decoded JSON; a JSON-encoded string is decoded (see :func:`decode_string_data`).
    data: Any = None
    #: Attributes CloudEvents does not define (``traceparent``, a partner's own), as decoded JSON.
    extensions: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def schema_version(self) -> int | None:
        """The trailing version number of ``dataschema`` (``…/Voice.WebhookEvent/2`` → 2), if any."""
        tail = (self.dataschema or "").rstrip("/").rpartition("/")[2]
        return int(tail) if tail.isascii() and tail.isdigit() else None


class CallbackRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Twilio's request to the status-callback URL; ``parameters`` are the callback's form fields."""

    method: str | None = None
    url: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class CallbackResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The status-callback endpoint's answer, as Twilio recorded it."""

    response_code: int | None = None
    request_duration: int | None = None
    content_type: str | None = None
    response_body: str | None = None
    date_created: str | None = None


class VoiceCallEvent(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``data`` of a ``Voice.WebhookEvent`` (schema v1 and v2 are field-identical); see :meth:`from_data`."""

    sid: _NonEmpty
    request_date_created: str | None = None
    timestamp: str | None = None
    event_sid: str | None = None
    request: CallbackRequest | None = None
    response: CallbackResponse | None = None

    @classmethod
    def from_data(cls, data: Any) -> VoiceCallEvent:
        """Validate a CloudEvent's decoded ``data``; snake_case keys (``event_sid``) are read as camelCase ones.

        Raises:
            InvalidEventError: ``data`` is not a ``Voice.WebhookEvent``; ``path`` names the offending field.
        """
        data = decode_string_data(data)
        if isinstance(data, dict):
            data = {**data, **{_camel(key): value for key, value in data.items() if "_" in key}}
            for part in ("request", "response"):
                inner = data.get(part)
                if isinstance(inner, dict):
                    data[part] = {**inner, **{_camel(key): value for key, value in inner.items() if "_" in key}}
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as error:
            path, words = validation_problem(error, "data")
            raise InvalidEventError(words, path) from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# ---------------------------------------------------------------------------------------------------------------
# JSON itself: what msgspec refuses, and the two edges it leaves to us.
#
# msgspec checks UTF-8 only in the strings it decodes, not in those it skips, so non-ASCII input is checked whole
# first. Its nesting limit is Python's recursion limit, counted from wherever the caller stands (a web server's stack
# is deeper than a script's), so the limit is the bridge's own instead: 1,024 levels, whoever calls.

_MAX_DEPTH = 1024
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_DEEP = threading.Lock()


class JSONProblem(ValueError):
    """Input that is not JSON; the message is the reason, in the user's words, with its position."""


def _depth(raw: bytes) -> int:
    """How deep ``raw`` nests (brackets inside strings do not count).

    Raises:
        JSONProblem: it nests more than 1,024 levels deep.
    """
    depth = deepest = 0
    for token in _TOKEN.finditer(raw):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > _MAX_DEPTH:
                raise JSONProblem(f"not JSON: values nested more than 1,024 levels deep at position {token.start()}")
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def _decode_deep(decode: Callable[[bytes], Any], raw: bytes) -> Any:
    """``decode(raw)`` with room for as deep as ``raw`` nests (up to 1,024 levels), from wherever it is called."""
    depth = _depth(raw)
    # The limit is the interpreter's, not the thread's: the lock keeps two deep inputs from restoring each
    # other's. Inputs msgspec decodes within the caller's limit, the usual case, never take it.
    with _DEEP:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + depth + 64)
        try:
            return decode(raw)
        finally:
            sys.setrecursionlimit(limit)


def encode_deep(value: Any) -> bytes:
    """``msgspec.json.encode(value)`` with the bridge's nesting limit rather than the caller's stack depth.

    Raises:
        JSONProblem: nesting deeper than 1,024 levels.
        TypeError, ValueError, OverflowError: as msgspec raises them for a value JSON cannot hold.
    """
    try:
        return msgspec.json.encode(value)
    except RecursionError:  # as in guarded: room for 1,024 levels, under the lock, then the bridge's own limit
        with _DEEP:
            limit = sys.getrecursionlimit()
            sys.setrecursionlimit(limit + _MAX_DEPTH + 64)
            try:
                raw = msgspec.json.encode(value)
            except RecursionError:
                raise JSONProblem("not JSON: values nested more than 1,024 levels deep") from None
            finally:
                sys.setrecursionlimit(limit)
        _depth(raw)
        return raw


def check_text(raw: bytes) -> None:
    """Refuse bytes that are not UTF-8 anywhere, even in a string msgspec would skip.

    Raises:
        JSONProblem: the reason, in the user's words.
    """
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError as error:
            raise JSONProblem(f"not JSON: bytes that are not valid UTF-8 at position {error.start}") from None


_JSON_WORDS = (
    ("surrogate", "a lone UTF-16 surrogate escape (\\ud800-\\udfff) in a string"),
    ("hex escape", "a lone UTF-16 surrogate escape (\\ud800-\\udfff) in a string"),
    ("UTF-8", "bytes that are not valid UTF-8"),
    ("truncated", "the text ends before the value does"),
)
_AT_BYTE = re.compile(r"\s*\(byte (\d+)\)")
# A high surrogate escape with no low one after it, outside an escaped backslash: msgspec says "truncated" for
# one that ends its string.
_LONE_SURROGATE = re.compile(rb"(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F])")


def json_problem(error: msgspec.DecodeError | RecursionError, raw: bytes) -> str:
    """Why msgspec refused ``raw`` as JSON, in the user's words."""
    if isinstance(error, RecursionError):
        return "not JSON: values nested more than 1,024 levels deep"
    text = str(error).removeprefix("JSON is malformed: ")
    found = _AT_BYTE.search(text)
    position = int(found.group(1)) if found else len(raw)
    if "trailing characters" in text:  # msgspec counts the byte after the first trailing one
        position -= 1
    words = _AT_BYTE.sub("", text)
    lone = _LONE_SURROGATE.search(raw) if "truncated" in text else None
    if lone is not None:
        text, position = "surrogate", lone.start(1)
    for marker, plain in _JSON_WORDS:
        if marker in text:
            words = plain
            break
    return f"not JSON: {words} at position {position}"


def guarded(decode: Callable[[bytes], Any], raw: bytes) -> Any:
    """``decode(raw)``, with the bridge's nesting limit rather than the caller's stack depth.

    Raises:
        JSONProblem: nesting deeper than 1,024 levels.
        msgspec.DecodeError, msgspec.ValidationError: as ``decode`` raises them.
    """
    try:
        return decode(raw)
    except RecursionError:  # msgspec's limit, counted from the caller's stack: try again with room for the input
        return _decode_deep(decode, raw)


# Numbers beyond double range (1e400) are read as Python reads them, as infinity, wherever the type is open: an
# event with one where the mapping does not look still translates, and one it sends is refused at serialization.
_decode_any = msgspec.json.Decoder(float_hook=float).decode


def decode_json(raw: bytes | str) -> Any:
    """Decode JSON text the bridge has taken: any value, integers exact, numbers beyond double range infinite.

    Raises:
        JSONProblem: the text is not JSON; the message says why.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        check_text(data)
        return guarded(_decode_any, data)
    except (msgspec.DecodeError, RecursionError) as error:
        raise JSONProblem(json_problem(error, data)) from None


_STRING_OR_KEY = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?')
# Numbers as written (Decimal), so that re-encoding changes nothing but the keys a later duplicate replaced.
_decode_exact = msgspec.json.Decoder(float_hook=Decimal).decode
_encode_exact = msgspec.json.Encoder(decimal_format="number").encode


def without_duplicate_keys(raw: bytes) -> bytes | None:
    """``raw`` (known to be JSON) with each object's duplicate keys reduced to the last, or ``None`` if it has none.

    msgspec's structs check every occurrence of a key, the last one wins only among valid values; a JSON object's
    duplicate key means its last value, so an event is judged by that. Only for input the decoder refused: the
    rare case pays for the second decode.
    """
    keys = sum(1 for token in _STRING_OR_KEY.finditer(raw) if token.group(1))
    value = guarded(_decode_exact, raw)
    unique, values = 0, [value]
    while values:
        item = values.pop()
        if isinstance(item, dict):
            unique += len(item)
            values.extend(item.values())
        elif isinstance(item, list):
            values.extend(item)
    if unique == keys:
        return None
    try:
        return _encode_exact(value)
    except RecursionError:  # deeper than this stack encodes: judged as it came
        return None


def decode_string_data(value: Any) -> Any:
    """Decode ``data`` sent as a JSON-encoded string (Twilio does so for the sink test event, among others).

    A string that is not JSON is returned unchanged.
    """
    if isinstance(value, str):
        try:
            return decode_json(value)
        except (JSONProblem, UnicodeEncodeError):
            return value
    return value


# ---------------------------------------------------------------------------------------------------------------
# Validation problems: msgspec's messages, said as the bridge has always said them (a dotted path, then the words).

_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
# msgspec's "Number out of range" does not say what was expected; at these paths it was an object.
_OBJECT_PATHS = frozenset({"data", "data.request", "data.request.parameters", "data.response"})
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def validation_problem(error: msgspec.ValidationError, prefix: str = "") -> tuple[str, str]:
    """Return ``(dotted field path, words)`` for a msgspec validation error."""
    text = str(error)
    at = _AT_PATH.search(text)
    parts = [prefix] if prefix else []
    if at is not None:
        text = text[: at.start()]
        parts += [part for part in re.split(r"[.\[\]]", at.group("path")) if part]
    missing = _MISSING.match(text)
    if missing is not None:
        return ".".join([*parts, missing.group("field")]), "Field required"
    path = ".".join(parts)
    if path.endswith("specversion") and path.count(".") == 0:
        words = "Input should be '1.0'"
    elif text.startswith(("Expected `object", "Expected `str | object")):
        words = "Input should be a JSON object"
    elif text.startswith("Expected `str` of length"):
        words = "String should have at least 1 character"
    elif text.startswith("Number out of range") and path in _OBJECT_PATHS:
        words = "Input should be a JSON object"
    elif text.startswith(("Expected `str", "Number out of range")):
        words = "Input should be a valid string"
    else:
        words = text
    return path, words


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words (``null``, ``a string``), for messages: never a Python type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else "not JSON"


_CLOUD_EVENT_FIELDS = frozenset(CloudEvent.__struct_fields__) - {"extensions"}


def parse_event(obj: Any) -> CloudEvent:
    """Validate one decoded JSON element as a CloudEvent.

    Raises:
        InvalidEventError: the element is not a CloudEvent; ``path`` names the offending field.
    """
    if not isinstance(obj, dict):
        raise InvalidEventError(f"expected a CloudEvent object, got {json_kind(obj)}")
    attributes = {key: value for key, value in obj.items() if key in _CLOUD_EVENT_FIELDS}
    attributes["data"] = decode_string_data(obj.get("data"))
    try:
        event = msgspec.convert(attributes, CloudEvent)
    except msgspec.ValidationError as error:
        path, words = validation_problem(error)
        raise InvalidEventError(words, path) from None
    extensions = {key: value for key, value in obj.items() if key not in _CLOUD_EVENT_FIELDS}
    return msgspec.structs.replace(event, extensions=extensions) if extensions else event


# ---------------------------------------------------------------------------------------------------------------
# The decoder of call-progress events, made per mapping: the envelope above, ``data.sid`` and the other fields the
# bridge reads, and one field for each callback parameter, ``data`` field and attribute the mapping reads. What no
# field names is skipped without building it, so JSON goes from bytes to a validated event at about the cost of
# plain decoding.


class _CallData(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sid: _NonEmpty
    timestamp: str | None = None
    # UNSET when absent: a present eventSid wins over event_sid even when it is null. Either is checked when read
    # (see CallEventDecoder.event_sid), so that the one not read is not held against the event.
    eventSid: Any = msgspec.UNSET  # the JSON key
    event_sid: Any = msgspec.UNSET


@dataclass(frozen=True)
class CallEventDecoder:
    """Decode and validate call-progress CloudEvents from JSON, reading only what one mapping needs.

    ``decode(raw)`` returns a struct with the envelope's attributes (``specversion``, ``id``, ``source``, ``type``,
    ``time``, ``dataschema``) and ``data`` (``sid``, ``timestamp``, ``eventSid`` / ``event_sid``, ``request``), or
    ``data`` as a string when it was sent as one (``decode_data`` reads that). Each callback parameter, ``data``
    field or extension attribute the mapping reads is an attribute named in ``parameters``, ``data_fields`` or
    ``attributes``. It raises :class:`msgspec.ValidationError` or :class:`msgspec.DecodeError` for anything it does
    not accept.
    """

    decode: Callable[[bytes], Any] = field(repr=False)
    decode_data: Callable[[bytes | str], Any] = field(repr=False)
    #: parameter key as sent (``CallSid``, ``call_sid``) -> attribute of ``data.request.parameters``
    parameters: dict[str, str]
    #: key of ``data`` beyond the ones always read -> attribute of ``data`` (``msgspec.UNSET`` when absent)
    data_fields: dict[str, str]
    #: key of ``data.request`` other than ``parameters`` -> attribute of ``data.request`` (``UNSET`` when absent)
    request_fields: dict[str, str]
    #: extension attribute -> attribute of the event (``None`` when absent)
    attributes: dict[str, str]
    #: ``data.request.parameters`` when Twilio sent none (``request`` absent or null)
    empty_parameters: Any = field(repr=False)
    #: ``time_parameter(parameters)``: the callback's ``Timestamp`` (or ``timestamp``) parameter, or ``None``
    time_parameter: Callable[[Any], Any] = field(repr=False)


def _fields(prefix: str, keys: Iterable[str], reserved: Iterable[str] = ()) -> dict[str, str]:
    """An attribute name per key: keys are JSON text, and may be no Python name at all."""
    taken = set(reserved)
    return {key: f"{prefix}{index}" for index, key in enumerate(sorted(set(keys) - taken))}


def call_event_decoder(
    parameter_keys: Iterable[str],
    data_keys: Iterable[str] = (),
    request_keys: Iterable[str] = (),
    attribute_keys: Iterable[str] = (),
) -> CallEventDecoder:
    """Build the decoder of call-progress events that reads the given parameter, ``data`` and attribute keys.

    The ``Timestamp`` parameter is always read: an event's time falls back to it.
    """
    parameters = _fields("p", {*parameter_keys, "Timestamp", "timestamp"})
    data_fields = _fields("d", data_keys, ("sid", "timestamp", "eventSid", "event_sid", "request"))
    request_fields = _fields("r", request_keys, ("parameters",))
    attributes = _fields("e", attribute_keys, (*_Envelope.__struct_fields__, "data"))

    def struct(name: str, base: Any, fields: Mapping[str, str], default: Any, *more: tuple[str, Any, Any]) -> Any:
        return msgspec.defstruct(
            name,
            [*((attribute, Any, default) for attribute in fields.values()), *more],
            bases=(base,) if base is not None else None,
            rename={attribute: key for key, attribute in fields.items()},
            frozen=True,
            kw_only=True,
            gc=False,
        )

    params = struct("_Parameters", None, parameters, None)
    request = struct(
        "_Request", None, request_fields, msgspec.UNSET, ("parameters", params, msgspec.field(default_factory=params))
    )
    data = struct("_Data", _CallData, data_fields, msgspec.UNSET, ("request", request | None, None))
    event = struct("_CallEvent", _Envelope, attributes, None, ("data", data | str, msgspec.NODEFAULT))
    pascal, snake = operator.attrgetter(parameters["Timestamp"]), operator.attrgetter(parameters["timestamp"])

    def time_parameter(values: Any) -> Any:
        return pascal(values) or snake(values)

    decode_data = msgspec.json.Decoder(data, float_hook=float).decode
    return CallEventDecoder(
        msgspec.json.Decoder(event, float_hook=float).decode,
        decode_data,
        parameters,
        data_fields,
        request_fields,
        attributes,
        params(),
        time_parameter,
    )


class TimeZoneError(ValueError):
    """An RFC 2822 timestamp whose zone is missing or not one RFC 2822 defines; the message says which."""


# RFC 2822's own zone names (section 4.3), plus UTC, which no reader takes for anything else. Other names are
# refused, not guessed: "CET" or "IST" mean different offsets to different writers, and the standard library
# reads any name it does not know as UTC.
_RFC2822_ZONES = {
    "UT": 0,
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
}
# The zone is what follows the time of day (glued on or after spaces), and only a comment may come after it.
_RFC2822_ZONE = re.compile(r"(?<!\S)\d{1,2}:\d{2}(?::\d{2})?[ \t]*(?P<zone>(?!:)[^\s(]*)\s*(?:\(.*\)\s*)?$")
_NUMERIC_ZONE = re.compile(r"[+-](\d\d)(\d\d)")
_ZONE_NAME = re.compile(r"[A-Za-z]{1,10}")
_KNOWN_ZONES = "a numeric offset such as +0000 or -0500, or " + ", ".join(_RFC2822_ZONES)


def _rfc2822_offset(value: str) -> timedelta:
    """The UTC offset an RFC 2822 timestamp names.

    Raises:
        TimeZoneError: the zone is missing or not RFC 2822's.
        ValueError: no zone can be told apart (the text is not RFC 2822).
    """
    match = _RFC2822_ZONE.search(value)
    if match is None:
        raise ValueError("not an RFC 2822 timestamp")
    zone = match.group("zone")
    numeric = _NUMERIC_ZONE.fullmatch(zone)
    if numeric is not None:
        hours, minutes = int(numeric.group(1)), int(numeric.group(2))
        if minutes >= 60 or hours >= 24:
            raise TimeZoneError(f"time zone offset out of range; RFC 2822 takes {_KNOWN_ZONES}")
        offset = timedelta(hours=hours, minutes=minutes)
        return -offset if zone[0] == "-" else offset
    hours_east = _RFC2822_ZONES.get(zone.upper())
    if hours_east is not None:
        return timedelta(hours=hours_east)
    if not zone:
        raise TimeZoneError(f"no time zone; RFC 2822 takes {_KNOWN_ZONES}")
    # Quote the zone only when it is plainly a zone name: refusal messages reach logs.
    named = f"time zone {zone!r}" if _ZONE_NAME.fullmatch(zone) else "time zone"
    raise TimeZoneError(f"unknown {named} (its offset is not guessed); RFC 2822 takes {_KNOWN_ZONES}")


def parse_timestamp(value: str, *, rfc2822: bool = False) -> datetime:
    """Parse an ISO-8601 (or, with ``rfc2822``, an RFC 2822) timestamp as an aware UTC datetime.

    An ISO-8601 timestamp without an offset is taken as UTC: Twilio writes every time in UTC. An RFC 2822 one must
    name its zone as RFC 2822 does (an offset, or UT, GMT, Z, EST/EDT, CST/CDT, MST/MDT, PST/PDT; UTC too).

    Raises:
        TimeZoneError: an RFC 2822 timestamp without a zone, or with one RFC 2822 does not define.
        ValueError: the text is not a timestamp of that form.
    """
    if rfc2822:
        offset = _rfc2822_offset(value)
        fields = parsedate_tz(value)
        if fields is None:
            raise ValueError("not an RFC 2822 timestamp")
        year, month, day, hour, minute, second = fields[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset)).astimezone(UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def event_timestamp(value: str, *, rfc2822: bool = False) -> str:
    """Normalize an event's timestamp to ISO-8601 UTC with milliseconds.

    Raises:
        ValueError: the text is not a timestamp of that form.
    """
    # Twilio already writes `time` and `data.timestamp` in exactly the output form; checking beats reformatting.
    if not rfc2822 and is_output_form(value):
        return value
    return format_timestamp(parse_timestamp(value, rfc2822=rfc2822))


def is_output_form(value: str) -> bool:
    """Whether ``value`` is an ISO-8601 timestamp already written as :func:`format_timestamp` writes it."""
    # Every separator is checked: fromisoformat also takes week dates ("2025-W01-1T…") of the same length.
    if (
        len(value) == 24
        and value[4] == "-"
        and value[7] == "-"
        and value[10] == "T"
        and value[13] == ":"
        and value[16] == ":"
        and value[19] == "."
        and value[23] == "Z"
    ):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def format_timestamp(moment: datetime) -> str:
    """Write an aware datetime as ISO-8601 UTC with milliseconds, e.g. ``2025-01-01T00:00:00.000Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
