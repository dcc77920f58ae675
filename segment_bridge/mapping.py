"""Declarative mappings from Twilio call events to Segment ``track`` messages.

A mapping is data, not code: a TOML file that names the Segment event for each supported type, which sources become
which properties, how identity is chosen, and whether phone numbers are hashed. :func:`load_mapping` validates the
file strictly (an unknown key or a typo is an error naming the file and the key) and lints it against Segment's
naming spec, then compiles it into plain getter functions so applying it costs a few dictionary look-ups.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from segment_bridge._resources import packaged_mapping
from segment_bridge.catalog import SUPPORTED_TYPES
from segment_bridge.exceptions import ConfigurationError, MappingError

__all__ = [
    "CompiledMapping",
    "IdentitySpec",
    "MappingSpec",
    "PropertySpec",
    "load_mapping",
    "parse_mapping",
]

_SOURCE_PATTERN = re.compile(r"^(param|data|event|derived):([A-Za-z0-9_.\-]+)$")
_DERIVED = frozenset({"customer_phone", "schema_version"})
# Identity sources that hold phone numbers, hashed like `pii = "phone"` properties when hashing is on.
_PHONE_SOURCES = frozenset(
    {
        "derived:customer_phone",
        "param:From",
        "param:To",
        "param:Caller",
        "param:Called",
        "param:ForwardedFrom",
    }
)
_EVENT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*( [A-Z][A-Za-z0-9]*)+$")
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_RESERVED_PROPERTIES = frozenset({"revenue", "currency", "value"})


def _check_source(ref: str) -> str:
    match = _SOURCE_PATTERN.match(ref)
    if match is None:
        raise ValueError(
            f"{ref!r} is not a value source; write param:<Name>, data:<path>, event:<attribute> or derived:<name>"
        )
    if match.group(1) == "derived" and match.group(2) not in _DERIVED:
        raise ValueError(f"{ref!r}: unknown derived value; known: {', '.join(sorted(_DERIVED))}")
    return ref


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class PropertySpec(_Strict):
    """One Segment property: where its value comes from, its type, and whether it is a phone number."""

    from_: tuple[str, ...] = Field(default=(), alias="from")
    value: str | int | float | bool | None = None
    type: Literal["raw", "string", "int"] = "raw"
    pii: Literal["phone"] | None = None

    @field_validator("from_")
    @classmethod
    def _sources(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_source(ref) for ref in refs)

    @model_validator(mode="after")
    def _one_origin(self) -> PropertySpec:
        if bool(self.from_) == (self.value is not None):
            raise ValueError("give exactly one of 'from' (a list of sources) or 'value' (a constant)")
        return self


class IdentitySpec(_Strict):
    """Where ``anonymousId`` and ``userId`` come from; the first present source wins."""

    anonymous_id: tuple[str, ...] = ("derived:customer_phone", "param:CallSid", "data:sid")
    user_id: tuple[str, ...] = ()

    @field_validator("anonymous_id", "user_id")
    @classmethod
    def _sources(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_source(ref) for ref in refs)


class HashingSpec(_Strict):
    """Optional HMAC-SHA256 of phone numbers, keyed with a secret the user supplies at run time."""

    phone_numbers: bool = False


class MappingSpec(_Strict):
    """A validated mapping file."""

    format_version: Literal[1] = 1
    message_id_prefix: str = Field(default="twilio-voice", min_length=1)
    events: dict[str, str]
    identity: IdentitySpec = IdentitySpec()
    hashing: HashingSpec = HashingSpec()
    properties: dict[str, PropertySpec] = Field(default_factory=dict)

    @field_validator("events")
    @classmethod
    def _supported_types(cls, events: dict[str, str]) -> dict[str, str]:
        for event_type in events:
            if event_type not in SUPPORTED_TYPES:
                raise ValueError(
                    f"{event_type!r} is not a supported event type; supported: {', '.join(SUPPORTED_TYPES)}"
                )
        return events

    def lint(self) -> list[str]:
        """Findings against Segment's naming spec: Title Case "Object Action" events, snake_case properties."""
        findings = [
            f"events.{event_type!r}: event name {name!r} is not Title Case 'Object Action' (e.g. 'Call Answered')"
            for event_type, name in self.events.items()
            if not _EVENT_NAME.match(name)
        ]
        for name in self.properties:
            if not _PROPERTY_NAME.match(name):
                findings.append(f"properties.{name}: property names should be snake_case")
            elif name in _RESERVED_PROPERTIES:
                findings.append(f"properties.{name}: '{name}' is reserved by Segment's spec; rename it")
        return findings


_KNOWN_KEYS = sorted(
    {
        alias or name
        for model in (MappingSpec, PropertySpec, IdentitySpec, HashingSpec)
        for name, info in model.model_fields.items()
        for alias in (info.alias,)
    }
)


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in item["loc"]]
        # pydantic reports a model-level error at the model; the 'from_' alias reads better as 'from'.
        key = ".".join("from" if part == "from_" else part for part in loc)
        if item["type"] == "extra_forbidden":
            guess = difflib.get_close_matches(loc[-1], _KNOWN_KEYS, n=1)
            message = "unknown key" + (f" (did you mean {guess[0]!r}?)" if guess else "")
        else:
            message = item["msg"].removeprefix("Value error, ")
        problems.append((key, message))
    return problems


def parse_mapping(document: Mapping[str, Any], source: str = "<mapping>") -> MappingSpec:
    """Validate a decoded mapping document.

    Raises:
        MappingError: the document is invalid; every problem names its key.
    """
    try:
        return MappingSpec.model_validate(document)
    except ValidationError as error:
        raise MappingError(source, _problems(error)) from None


# ---------------------------------------------------------------------------------------------------------------
# Compilation: sources become small functions over the raw event, data and parameters dictionaries.

Getter = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _param_getter(name: str) -> Getter:
    snake = _snake(name)

    def get(_event: dict[str, Any], _data: dict[str, Any], params: dict[str, Any]) -> Any:
        value = params.get(name)
        return value if _present(value) else params.get(snake)

    return get


def _data_getter(path: str) -> Getter:
    # Twilio documents camelCase data keys; tolerate snake_case spellings of each segment as well.
    steps = [(key, _snake(key), _camel(key)) for key in path.split(".")]

    def get(_event: dict[str, Any], data: dict[str, Any], _params: dict[str, Any]) -> Any:
        node: Any = data
        for spellings in steps:
            if not isinstance(node, dict):
                return None
            for key in spellings:
                if key in node:
                    node = node[key]
                    break
            else:
                return None
        return node

    return get


def _event_getter(attribute: str) -> Getter:
    def get(event: dict[str, Any], _data: dict[str, Any], _params: dict[str, Any]) -> Any:
        return event.get(attribute)

    return get


def customer_phone(params: Mapping[str, Any]) -> Any:
    """The customer's number: ``From`` on inbound calls, ``To`` on outbound ones, else ``None``."""
    direction = params.get("Direction") or params.get("direction") or ""
    if direction.startswith("outbound") or direction == "trunking-originating":
        return params.get("To") or params.get("to")
    if direction.startswith("inbound") or direction == "trunking-terminating":
        return params.get("From") or params.get("from")
    return None


def _derived_getter(name: str) -> Getter:
    if name == "customer_phone":
        return lambda _event, _data, params: customer_phone(params)

    def schema_version(event: dict[str, Any], _data: dict[str, Any], _params: dict[str, Any]) -> Any:
        tail = str(event.get("dataschema") or "").rstrip("/").rpartition("/")[2]
        return int(tail) if tail.isdigit() else None

    return schema_version


def _getter(ref: str) -> Getter:
    kind, _, name = ref.partition(":")
    if kind == "param":
        return _param_getter(name)
    if kind == "data":
        return _data_getter(name)
    if kind == "event":
        return _event_getter(name)
    return _derived_getter(name)


def _first_of(refs: tuple[str, ...]) -> Getter:
    getters = [_getter(ref) for ref in refs]

    def get(event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]) -> Any:
        for getter in getters:
            value = getter(event, data, params)
            if _present(value):
                return value
        return None

    return get


def _constant(value: Any) -> Getter:
    def get(_event: dict[str, Any], _data: dict[str, Any], _params: dict[str, Any]) -> Any:
        return value

    return get


def _to_int(value: Any) -> Any:
    # Keep a value that is not an integer as it came rather than drop data the user asked for.
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


@dataclass(frozen=True, slots=True)
class _CompiledProperty:
    name: str
    get: Getter
    convert: Callable[[Any], Any] | None
    hashed: bool


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping ready to apply: the validated spec, where it came from, and lint findings."""

    spec: MappingSpec
    source: str
    warnings: tuple[str, ...] = ()
    hash_key: bytes | None = field(default=None, repr=False)
    _properties: tuple[_CompiledProperty, ...] = field(default=(), repr=False)
    _anonymous_id: Getter | None = field(default=None, repr=False)
    _anonymous_id_hashed: tuple[bool, ...] = field(default=(), repr=False)
    _user_id: Getter | None = field(default=None, repr=False)

    @classmethod
    def compile(cls, spec: MappingSpec, source: str = "<mapping>", *, hash_key: bytes | None = None) -> CompiledMapping:
        """Turn a spec into getters.

        Raises:
            ConfigurationError: the spec hashes phone numbers and no ``hash_key`` was given.
        """
        hashing = spec.hashing.phone_numbers
        if hashing and not hash_key:
            raise ConfigurationError(
                f"{source}: hashing.phone_numbers is on but no hash key was given "
                "(set SEGMENT_BRIDGE_HASH_KEY or pass --hash-key-file)"
            )
        properties = []
        for name, prop in spec.properties.items():
            getter = _constant(prop.value) if prop.value is not None else _first_of(prop.from_)
            convert = _to_int if prop.type == "int" else (str if prop.type == "string" else None)
            properties.append(_CompiledProperty(name, getter, convert, hashing and prop.pii == "phone"))
        return cls(
            spec=spec,
            source=source,
            warnings=tuple(spec.lint()),
            hash_key=hash_key if hashing else None,
            _properties=tuple(properties),
            _anonymous_id=cls._identity(spec.identity.anonymous_id, hashing),
            _user_id=cls._identity(spec.identity.user_id, hashing) if spec.identity.user_id else None,
        )

    @staticmethod
    def _identity(refs: tuple[str, ...], hashing: bool) -> Getter:
        getters = [(_getter(ref), hashing and ref in _PHONE_SOURCES) for ref in refs]

        def get(event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]) -> Any:
            for getter, hashed in getters:
                value = getter(event, data, params)
                if _present(value):
                    return ("#", value) if hashed else value
            return None

        return get

    def _hash(self, value: Any) -> str:
        assert self.hash_key is not None  # noqa: S101 - compile() guarantees a key whenever hashing is on
        return hmac.new(self.hash_key, str(value).encode(), hashlib.sha256).hexdigest()

    def event_name(self, event_type: str) -> str | None:
        """The Segment event name for a supported type, or ``None`` when the mapping has none."""
        return self.spec.events.get(event_type) or None

    def properties(self, event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """The Segment properties of one event; absent values and empty strings are left out."""
        result: dict[str, Any] = {}
        for prop in self._properties:
            value = prop.get(event, data, params)
            if value is None or value == "":
                continue
            if prop.convert is not None:
                value = prop.convert(value)
            result[prop.name] = self._hash(value) if prop.hashed else value
        return result

    def identity(
        self, event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        """``(anonymousId, userId)`` as strings, hashed where the mapping says so; ``None`` when absent."""
        ids: list[str | None] = []
        for getter in (self._anonymous_id, self._user_id):
            value = getter(event, data, params) if getter is not None else None
            if isinstance(value, tuple):
                value = self._hash(value[1])
            ids.append(None if value is None else str(value))
        return ids[0], ids[1]


def load_mapping(source: str | Path | Traversable | None = None, *, hash_key: bytes | None = None) -> CompiledMapping:
    """Load, validate, lint and compile a mapping file; ``None`` loads the packaged default.

    Raises:
        ConfigurationError: the file cannot be read, or hashing is on without a key.
        MappingError: the file is not valid TOML or not a valid mapping; the message names file and key.
    """
    resource: Path | Traversable = (
        packaged_mapping() if source is None else (Path(source) if isinstance(source, str) else source)
    )
    name = str(resource)
    try:
        text = resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise ConfigurationError(f"cannot read mapping file {name}: {reason}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingError(name, [("", f"not valid TOML: {error}")]) from None
    return CompiledMapping.compile(parse_mapping(document, name), name, hash_key=hash_key)
