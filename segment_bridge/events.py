"""CloudEvents 1.0 envelopes as Twilio Event Streams sends them, and the ``Voice.WebhookEvent`` data they carry.

Models are frozen and tolerant where Twilio is loose: unknown CloudEvent attributes and unknown ``data`` fields are
kept (Twilio adds parameters without notice), ``data`` may arrive as a JSON-encoded string, ``data`` keys may be
camelCase (``eventSid``) or snake_case (``event_sid``), and ``time`` may be absent (the documentation samples put a
timestamp in ``datacontenttype`` instead). Nothing here reads the clock: an event's time is only ever its own.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz
from typing import Annotated, Any, Literal

import msgspec
import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from segment_bridge.exceptions import InvalidEventError

__all__ = [
    "CallEventDecoder",
    "CallProgressEvent",
    "CallbackRequest",
    "CallbackResponse",
    "CloudEvent",
    "TimeZoneError",
    "VoiceCallEvent",
    "call_event_decoder",
    "decode_string_data",
    "event_timestamp",
    "format_timestamp",
    "is_output_form",
    "loads_exact",
    "parse_event",
    "parse_timestamp",
    "validation_error_path",
]


class _DataModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
        coerce_numbers_to_str=True,
    )


class CallbackRequest(_DataModel):
    """Twilio's request to the status-callback URL; ``parameters`` are the callback's form fields."""

    method: str | None = None
    url: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class CallbackResponse(_DataModel):
    """The status-callback endpoint's answer, as Twilio recorded it."""

    response_code: int | None = None
    request_duration: int | None = None
    content_type: str | None = None
    response_body: str | None = None
    date_created: str | None = None


class VoiceCallEvent(_DataModel):
    """``data`` of a ``Voice.WebhookEvent`` (schema v1 and v2 are field-identical)."""

    sid: str
    request_date_created: str | None = None
    timestamp: str | None = None
    event_sid: str | None = None
    request: CallbackRequest | None = None
    response: CallbackResponse | None = None


class _Envelope(BaseModel):
    """The CloudEvents 1.0 context attributes shared by both event models."""

    # Constraints are declared, not written as Python validators: a Python validator makes pydantic build Python
    # objects for what it checks, which would undo the one-pass JSON validation of the hot path.
    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: str | None = None
    dataschema: str | None = None


# Twenty digits in a row: an integer literal that long may not fit in 64 bits, and orjson silently reads such an
# integer as a float. (Most such runs sit inside strings; those only cost the slower, exact decode below.)
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{20}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{20}")


def loads_exact(raw: bytes | str) -> Any:
    """Decode JSON as orjson does, except that integers beyond 64 bits stay exact integers.

    orjson turns such an integer into a float, which the fast path (pydantic) does not: the same event would be
    refused alone and translated with a wrong value inside an array or a dead-letter record. Keeping the integer
    makes both paths refuse it (Segment's JSON takes no integer beyond 64 bits).

    A number beyond double range (``1e400``, a 400-digit integer), which orjson refuses, is read as Python reads
    it (infinity, an exact integer) when the text is JSON otherwise: the typed decoder skips the fields it does not
    read without looking at their numbers, so the same event must not be refused here.

    Raises:
        orjson.JSONDecodeError: the text is not JSON.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if not error.msg.startswith(_BEYOND_DOUBLE):
            raise
        return _loads_beyond_double(raw, error)
    long_digits = _LONG_DIGITS_BYTES if isinstance(raw, bytes) else _LONG_DIGITS_TEXT
    if long_digits.search(raw):  # type: ignore[arg-type]
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # deeper than the standard decoder goes: keep orjson's reading
            return value
    return value


_BEYOND_DOUBLE = "number is infinity"  # how orjson's message starts for a number beyond double range
# Every number literal, where a number can start (not inside a word, a \\u escape, or another number).
_NUMBER_LITERAL = re.compile(rb"(?<![0-9A-Za-z.\\+-])-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _zero(found: re.Match[bytes]) -> bytes:
    return b"0".ljust(len(found.group()), b" ")


def _parse_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts: beyond double range, as orjson reads it
        return float(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads_beyond_double(raw: bytes | str, error: orjson.JSONDecodeError) -> Any:
    """Read JSON that orjson refused for a number beyond double range, if everything else about it is JSON."""
    try:
        data = raw.encode() if isinstance(raw, str) else raw
    except UnicodeEncodeError:
        raise error from None
    # orjson stopped at the first such number: let it judge the rest (strings, UTF-8, depth) with every number
    # literal made a 0 of the same length; the standard library then reads the numbers, and their syntax.
    orjson.loads(_NUMBER_LITERAL.sub(_zero, data))
    try:
        return json.loads(data, parse_int=_parse_int, parse_constant=_no_constant)
    except json.JSONDecodeError as problem:  # a number literal orjson would refuse too (01, 1.)
        raise orjson.JSONDecodeError(problem.msg, problem.doc, problem.pos) from None
    except (ValueError, RecursionError):
        raise error from None


def decode_string_data(value: Any) -> Any:
    """Decode ``data`` sent as a JSON-encoded string (Twilio does so for the sink test event, among others).

    A string that is not JSON is returned unchanged.
    """
    if isinstance(value, str):
        try:
            return loads_exact(value)
        except orjson.JSONDecodeError:
            return value
    return value


class CloudEvent(_Envelope):
    """A CloudEvents 1.0 envelope. Extension attributes survive in ``model_extra``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    # Twilio's documentation samples carry a timestamp here: never trust it as a MIME type.
    datacontenttype: str | None = None
    subject: str | None = None
    data: Any = None

    @field_validator("data", mode="before")
    @classmethod
    def _decode_string_data(cls, value: Any) -> Any:
        return decode_string_data(value)

    @property
    def schema_version(self) -> int | None:
        """The trailing version number of ``dataschema`` (``…/Voice.WebhookEvent/2`` → 2), if any."""
        tail = (self.dataschema or "").rstrip("/").rpartition("/")[2]
        return int(tail) if tail.isascii() and tail.isdigit() else None


class _CallbackParameters(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    parameters: dict[str, Any] = Field(default_factory=dict)


class _CallProgressData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    sid: str = Field(min_length=1)
    timestamp: str | None = None
    event_sid: str | None = Field(default=None, validation_alias=AliasChoices("eventSid", "event_sid"))
    request: _CallbackParameters | None = None


class CallProgressEvent(_Envelope):
    """The part of a call-progress CloudEvent that translation reads, validated in one pass.

    This is the hot path's model: it validates the envelope and the ``Voice.WebhookEvent`` fields the bridge uses
    and skips everything else without building Python objects for it, so JSON goes from bytes to a validated
    event at about the cost of plain decoding. The full event, unknown fields included, stays available from the
    original bytes; :class:`CloudEvent` and :class:`VoiceCallEvent` model all of it. ``data`` must be an object:
    decode a JSON-string ``data`` first (:func:`decode_string_data`).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    data: _CallProgressData

    @property
    def parameters(self) -> dict[str, Any]:
        """The status-callback parameters (``{}`` when Twilio sent none, as in its documentation samples)."""
        request = self.data.request
        return request.parameters if request is not None else {}


# ---------------------------------------------------------------------------------------------------------------
# The hot path's typed decoder: CallProgressEvent's checks, done by msgspec while it parses.
#
# pydantic-core validates JSON in one pass too, but at twice msgspec's cost, and it must build a dict of every
# callback parameter. msgspec decodes into slotted structs and skips what no field names without building it, so
# the decoder is made per mapping, with a field for exactly the parameters that mapping reads. Whatever it does
# not accept goes down the general path (orjson, then CallProgressEvent), which decides how to refuse it; so the
# structs may be stricter than the models, never looser.

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _DecodedData(msgspec.Struct, frozen=True, gc=False):
    sid: _NonEmpty
    timestamp: str | None = None
    # UNSET, not None, when absent: like the models' alias choice, a present eventSid wins even when it is null.
    eventSid: str | msgspec.UnsetType | None = msgspec.UNSET  # the JSON key
    event_sid: str | msgspec.UnsetType | None = msgspec.UNSET
    request: Any = None


class _DecodedEvent(msgspec.Struct, frozen=True, gc=False):
    specversion: Literal["1.0"]
    id: _NonEmpty
    source: _NonEmpty
    type: _NonEmpty
    data: _DecodedData
    time: str | None = None
    dataschema: str | None = None


@dataclass(frozen=True)
class CallEventDecoder:
    """Decode and validate one call-progress CloudEvent from JSON, reading only the named callback parameters.

    ``decode(raw)`` returns a struct with the :class:`CallProgressEvent` attributes (``specversion``, ``id``,
    ``source``, ``type``, ``time``, ``dataschema``, and ``data.sid``, ``data.timestamp``, ``data.eventSid`` /
    ``data.event_sid``) whose ``parameters`` holds one attribute per parameter key, named in ``attributes``
    (``None`` when absent). It raises :class:`msgspec.ValidationError` or :class:`msgspec.DecodeError` for anything
    it does not accept, which includes events the general path translates (``data`` as a string, for one).
    """

    decode: Any = field(repr=False)
    #: parameter key as sent (``CallSid``, ``call_sid``) -> attribute of ``parameters``
    attributes: dict[str, str]
    #: ``parameters`` when Twilio sent none (``request`` absent or null)
    empty_parameters: Any = field(repr=False)
    #: ``time_parameter(parameters)``: the callback's ``Timestamp`` (or ``timestamp``) parameter, or ``None``
    time_parameter: Callable[[Any], Any] = field(repr=False)


def call_event_decoder(parameter_keys: Iterable[str]) -> CallEventDecoder:
    """Build the typed decoder of call-progress events that reads the given callback parameter keys.

    The ``Timestamp`` parameter is always read: an event's time falls back to it.
    """
    keys = sorted({*parameter_keys, "Timestamp", "timestamp"})
    attributes = {key: f"p{index}" for index, key in enumerate(keys)}
    parameters = msgspec.defstruct(
        "_DecodedParameters",
        [(attribute, Any, None) for attribute in attributes.values()],
        rename={attribute: key for key, attribute in attributes.items()},
        frozen=True,
        gc=False,
    )
    request = msgspec.defstruct(
        "_DecodedRequest",
        [("parameters", parameters, msgspec.field(default_factory=parameters))],
        frozen=True,
        gc=False,
    )
    data = msgspec.defstruct(
        "_DecodedCallData", [("request", request | None, None)], bases=(_DecodedData,), frozen=True, gc=False
    )
    event = msgspec.defstruct("_DecodedCallEvent", [("data", data)], bases=(_DecodedEvent,), frozen=True, gc=False)
    pascal, snake = operator.attrgetter(attributes["Timestamp"]), operator.attrgetter(attributes["timestamp"])

    def time_parameter(parameters: Any) -> Any:
        return pascal(parameters) or snake(parameters)

    return CallEventDecoder(msgspec.json.Decoder(event).decode, attributes, parameters(), time_parameter)


def validation_error_path(error: ValidationError, prefix: str = "") -> tuple[str, str]:
    """Return ``(dotted field path, message)`` for the first problem of a pydantic error."""
    first = error.errors(include_url=False, include_input=False)[0]
    path = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    return path, first["msg"]


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


def parse_event(obj: Any) -> CloudEvent:
    """Validate one decoded JSON element as a CloudEvent.

    Raises:
        InvalidEventError: the element is not a CloudEvent; ``path`` names the offending field.
    """
    if not isinstance(obj, dict):
        raise InvalidEventError(f"expected a CloudEvent object, got {json_kind(obj)}")
    try:
        return CloudEvent.model_validate(obj)
    except ValidationError as error:
        path, message = validation_error_path(error)
        raise InvalidEventError(message, path) from None


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
