"""Declarative mappings from Twilio call events to Segment ``track`` messages.

A mapping is data, not code: a TOML file that names the Segment event for each supported type, which sources become
which properties, how identity is chosen, and whether phone numbers are hashed. :func:`load_mapping` validates the
file strictly (an unknown key or a typo is an error naming the file and the key) and lints it against Segment's
naming spec, then compiles it into one function over the decoded event, so applying it costs a few attribute reads.

About 700 lines for a reason: the file's schema (the ``*Spec`` models, external ids and the identity lookup's
settings included), the source paths it may name and the code generated from them must agree on every path, so they
change together here; the decoder they read is :mod:`segment_bridge.events`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import hmac
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from segment_bridge._resources import packaged_mapping
from segment_bridge.catalog import STATUS_CALLBACK_PARAMETERS, SUPPORTED_TYPES
from segment_bridge.events import CallEventDecoder, call_event_decoder, decode_json, decode_string_data, guarded
from segment_bridge.exceptions import ConfigurationError, MappingError
from segment_bridge.external_ids import EXTERNAL_IDS
from segment_bridge.track import MAX_MESSAGE_ID_LENGTH

__all__ = [
    "CompiledMapping",
    "ExternalIdSpec",
    "IdentitySpec",
    "LookupSpec",
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
# The attributes and data fields the decoder always reads, as typed fields (see events.call_event_decoder).
_ENVELOPE = frozenset({"specversion", "id", "source", "type", "time", "dataschema"})
_DATA_FIELDS = frozenset({"sid", "timestamp", "eventSid", "event_sid"})
_PARAM_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_INTEGER = re.compile(r"-?[0-9]+")
_EVENT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*( [A-Z][A-Za-z0-9]*)+$")
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_RESERVED_PROPERTIES = frozenset({"revenue", "currency", "value"})
_PHONES_PARAMETER = re.compile(r"(?<![:\w]):phones\b")


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


class LookupSpec(_Strict):
    """The ``userId`` lookup in the team's own customer table (used only when SEGMENT_BRIDGE_IDENTITY_URL is set).

    The database URL is never part of the mapping: it may hold a password.
    """

    #: SQL run once per delivery batch with ``:phones`` bound to the batch's distinct phone external ids; it returns
    #: the columns ``phone`` and ``user_id``.
    query: str = Field(min_length=1)
    #: What happens to a call whose lookup failed (database down, timeout): sent without ``userId``, or retried.
    on_error: Literal["send", "retry"] = "send"
    #: Seconds each query may take.
    timeout: float = Field(default=2.0, gt=0, le=300)
    #: Seconds a found ``userId`` (or a phone found in no row) is remembered.
    cache_ttl: float = Field(default=300.0, gt=0)
    #: Phone numbers remembered at most.
    cache_size: int = Field(default=100_000, ge=1)

    @field_validator("query")
    @classmethod
    def _binds_phones(cls, query: str) -> str:
        if not _PHONES_PARAMETER.search(query):
            raise ValueError("the query must use the :phones parameter, e.g. 'WHERE phone_e164 IN :phones'")
        return query


class IdentitySpec(_Strict):
    """Where ``anonymousId`` and ``userId`` come from; the first present source wins."""

    anonymous_id: tuple[str, ...] = ("derived:customer_phone", "param:CallSid", "data:sid")
    user_id: tuple[str, ...] = ()
    lookup: LookupSpec | None = None

    @field_validator("anonymous_id", "user_id")
    @classmethod
    def _sources(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_source(ref) for ref in refs)


class ExternalIdSpec(_Strict):
    """One Segment Unify identifier, sent in the message's ``context.externalIds``."""

    #: The identifier's type as the Unify space names it (``phone``, ``email``, ...); Segment wants lower case.
    type: str = Field(min_length=1)
    from_: tuple[str, ...] = Field(alias="from", min_length=1)
    collection: str = Field(default="users", min_length=1)
    encoding: Literal["none"] = "none"
    #: A phone number: sent only when the value is an E.164 number (Twilio's ``client:`` and ``sip:`` identities
    #: are not), and hashed like phone-number properties when ``[hashing] phone_numbers`` is on.
    e164_only: bool = False

    @field_validator("from_")
    @classmethod
    def _sources(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_source(ref) for ref in refs)

    def is_phone_number(self) -> bool:
        """Whether the value is a phone number, hashed when the mapping hashes phone numbers."""
        return self.e164_only or any(ref in _PHONE_SOURCES for ref in self.from_)


class HashingSpec(_Strict):
    """Optional HMAC-SHA256 of phone numbers, keyed with a secret the user supplies at run time."""

    phone_numbers: bool = False


class LintSpec(_Strict):
    """What the lint should take as known: status-callback parameters Twilio added after this release."""

    known_params: tuple[str, ...] = ()

    @field_validator("known_params")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _PARAM_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a parameter name; write it as in param:<Name>, without 'param:'")
        return names


class MappingSpec(_Strict):
    """A validated mapping file."""

    format_version: Literal[1] = 1
    # messageId = prefix + ":" + 40 hex characters, and Segment keeps at most 100 characters of it.
    message_id_prefix: str = Field(default="twilio-voice", min_length=1, max_length=MAX_MESSAGE_ID_LENGTH - 41)
    events: dict[str, str]
    identity: IdentitySpec = IdentitySpec()
    hashing: HashingSpec = HashingSpec()
    properties: dict[str, PropertySpec] = Field(default_factory=dict)
    external_ids: tuple[ExternalIdSpec, ...] = ()
    lint_: LintSpec = Field(default=LintSpec(), alias="lint")

    @field_validator("events")
    @classmethod
    def _supported_types(cls, events: dict[str, str]) -> dict[str, str]:
        for event_type in events:
            if event_type not in SUPPORTED_TYPES:
                raise ValueError(
                    f"{event_type!r} is not a supported event type; supported: {', '.join(SUPPORTED_TYPES)}"
                )
        return events

    @model_validator(mode="after")
    def _lookup_has_phones(self) -> MappingSpec:
        if self.identity.lookup is not None and not any(item.type == "phone" for item in self.external_ids):
            raise ValueError(
                'identity.lookup looks up the phone external id: add an [[external_ids]] entry with type = "phone"'
            )
        return self

    def source_refs(self) -> set[str]:
        """Every value source the mapping reads."""
        refs = {*self.identity.anonymous_id, *self.identity.user_id}
        for prop in self.properties.values():
            refs.update(prop.from_)
        for item in self.external_ids:
            refs.update(item.from_)
        return refs

    def lint(self) -> list[str]:
        """Lint findings: Segment's naming spec, and ``param:`` sources Twilio does not document.

        Segment wants Title Case "Object Action" events and snake_case properties; a ``param:`` source that names
        no status-callback parameter (nor one in ``[lint] known_params``) is most likely a typo.
        """
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
        for index, item in enumerate(self.external_ids):
            place = f"external_ids.{index}"
            if item.type != item.type.lower():
                findings.append(
                    f"{place}.type: Segment external id types are lower case; write {item.type.lower()!r}, as the "
                    "identifier is named in your Unify space"
                )
            if item.type == "phone" and not item.e164_only:
                findings.append(
                    f"{place}.e164_only: a phone identifier should set e164_only = true, so that client: and sip: "
                    "identities are not sent as phone numbers"
                )
        findings += self._unknown_params()
        return findings

    def _unknown_params(self) -> list[str]:
        known = {*_KNOWN_PARAMS, *self.lint_.known_params, *(_snake(name) for name in self.lint_.known_params)}
        places = [("identity.anonymous_id", self.identity.anonymous_id), ("identity.user_id", self.identity.user_id)]
        places += [(f"properties.{name}.from", prop.from_) for name, prop in self.properties.items()]
        places += [(f"external_ids.{index}.from", item.from_) for index, item in enumerate(self.external_ids)]
        findings = []
        for place, refs in places:
            for ref in refs:
                kind, _, name = ref.partition(":")
                if kind != "param" or name in known:
                    continue
                guess = difflib.get_close_matches(name, _PARAM_SPELLINGS, n=1)
                did_you_mean = f" (did you mean 'param:{guess[0]}'?)" if guess else ""
                findings.append(
                    f"{place}: {ref!r} is not a status-callback parameter Twilio documents{did_you_mean}, so it "
                    f'would be missing from every event; if Twilio does send it, add "{name}" to [lint] known_params'
                )
        return findings


_KNOWN_KEYS = sorted(
    {
        alias or name
        for model in (MappingSpec, PropertySpec, IdentitySpec, LookupSpec, ExternalIdSpec, HashingSpec, LintSpec)
        for name, info in model.model_fields.items()
        for alias in (info.alias,)
    }
)


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in item["loc"]]
        # pydantic reports a model-level error at the model; the 'from_' alias reads better as 'from'.
        key = ".".join(part.rstrip("_") if part in ("from_", "lint_") else part for part in loc)
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
# Compilation: sources become straight-line code over the decoded event, its data and its callback parameters.

#: ``(anonymousId, userId, properties)``; the properties carry the ``context.externalIds`` entries, if any, under
#: :data:`segment_bridge.external_ids.EXTERNAL_IDS`.
Applied = tuple[str | None, str | None, dict[str, Any]]
#: ``apply(event, data, parameters, raw)`` over what :attr:`CompiledMapping.decoder` returns; ``raw``, the event's
#: JSON, is read only for a source that names a whole object the decoder keeps in part (``data:request``).
Applier = Callable[..., Applied]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Twilio's PascalCase and the snake_case spelling the bridge also reads (see _lookup).
_KNOWN_PARAMS = frozenset({*STATUS_CALLBACK_PARAMETERS, *(_snake(name) for name in STATUS_CALLBACK_PARAMETERS)})
_PARAM_SPELLINGS = sorted(_KNOWN_PARAMS)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _child(node: Any, key: str) -> Any:
    """``node[key]`` of a decoded struct or object, ``UNSET`` when absent (a struct's ``None`` is absent too)."""
    if isinstance(node, dict):
        return node.get(key, msgspec.UNSET)
    if isinstance(node, msgspec.Struct):
        names = node.__struct_encode_fields__
        if key not in names:
            return msgspec.UNSET
        value = getattr(node, node.__struct_fields__[names.index(key)])
        return msgspec.UNSET if value is None else value
    return msgspec.UNSET


def _dig(
    node: Any,
    steps: tuple[tuple[str, ...], ...],
    raw: bytes | None = None,
    path: tuple[tuple[str, ...], ...] = (),
    in_data: bool = False,
) -> Any:
    # Twilio documents camelCase data keys; each step lists the spellings tolerated (as written, snake, camel).
    for spellings in steps:
        for key in spellings:
            value = _child(node, key)
            if value is not msgspec.UNSET:
                node = value
                break
        else:
            return None
    if not isinstance(node, msgspec.Struct):
        return node
    # A struct holds only what the mapping reads of it (data.request, its parameters, data): the whole object, as
    # sent, is read from the event's JSON at ``path``, the rare mapping that sends one paying for that decode.
    # ``in_data``: a data: source, which reads data sent as a JSON string decoded; event:data is the attribute.
    if raw is None:
        return msgspec.to_builtins(node)
    whole: Any = decode_json(raw)
    for index, spellings in enumerate(path):
        found = next((key for key in spellings if isinstance(whole, dict) and key in whole), None)
        if found is None:
            return None
        whole = whole[found]
        if in_data and index == 0:
            whole = decode_string_data(whole)
    return whole


@functools.lru_cache(maxsize=64)
def _schema_version(dataschema: str) -> int | None:
    # Cached: a stream carries a handful of distinct dataschema URLs, and parsing one costs more than looking it up.
    tail = dataschema.rstrip("/").rpartition("/")[2]
    return int(tail) if tail.isascii() and tail.isdigit() else None


def _to_int(value: Any) -> Any:
    # Keep a value that is not an integer as it came rather than drop data the user asked for; so too an integer
    # beyond 64 bits, which JSON consumers (and our serializer) cannot take.
    # The usual case first: ASCII digits only (str.isdigit() alone admits characters such as "²" that int()
    # refuses), and at most 18 of them, always within 64 bits.
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    return value


# Compilation. A mapping is applied to every event, so it is compiled into one straight-line Python function per
# mapping (as dataclasses and attrs do for __init__) that returns identity and properties together: a handful of
# attribute reads instead of a chain of closures. Only validated source references and repr()'d keys reach the
# generated text.

# A source's value is missing when it is None or "". A present value is the normal case and usually a non-empty
# string, so the generated code asks `not v` first: one truth test settles it, and the exact test runs only for
# falsy values (0 and False are present).
_MISSING = "not {0} and ({0} is None or {0} == '')"
_PRESENT = "{0} or ({0} is not None and {0} != '')"


def _steps(path: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(dict.fromkeys((key, _snake(key), _camel(key)))) for key in path.split("."))


def _lookup(ref: str, target: str, decoder: CallEventDecoder) -> list[str]:
    """Code that sets ``target`` to the value of ``ref`` in the decoder's structs (``event``, ``data``, ``params``)."""
    kind, _, name = ref.partition(":")
    if kind == "param":
        lines = [f"{target} = {_param(name, decoder)}"]
        snake = _snake(name)
        if snake != name:
            lines.append(f"if {_MISSING.format(target)}: {target} = {_param(snake, decoder)}")
        return lines
    if kind == "data":
        steps = _steps(name)
        if len(steps) > 1 or not set(steps[0]) <= _DATA_FIELDS:
            return [f"{target} = _dig(data, {steps!r}, raw, {(('data',), *steps)!r}, True)"]
        # The typed fields: sid, timestamp, and eventSid or event_sid (the first one present).
        first, *others = steps[0]
        lines = [f"{target} = data.{first}"]
        lines += [f"if {target} is _UNSET: {target} = data.{spelling}" for spelling in others]
        return [*lines, f"if {target} is _UNSET: {target} = None"]
    if kind == "event":
        if name in _ENVELOPE:
            return [f"{target} = event.{name}"]
        if name in decoder.attributes:
            return [f"{target} = event.{decoder.attributes[name]}"]
        return [f"{target} = _dig(event, {((name,),)!r}, raw, {((name,),)!r})"]
    if name == "customer_phone":
        # The customer's number: From on inbound calls, To on outbound ones (either spelling), else None.
        direction, inbound, outbound = (" or ".join(_param(key, decoder) for key in pair) for pair in _PHONE_KEYS)
        # Only a string names a direction; str() of anything else names none, and of a deep array raises.
        return [
            f"d = {direction} or ''",
            "if type(d) is not str: d = ''",
            "if d.startswith('outbound') or d == 'trunking-originating':",
            f"    {target} = {outbound}",
            "elif d.startswith('inbound') or d == 'trunking-terminating':",
            f"    {target} = {inbound}",
            "else:",
            f"    {target} = None",
        ]
    return [f"{target} = _schema_version(str(event.dataschema or ''))"]


def _param(key: str, decoder: CallEventDecoder) -> str:
    return f"params.{decoder.parameters[key]}"


#: The parameter keys derived:customer_phone reads: the direction, the inbound and the outbound number.
_PHONE_KEYS = (("Direction", "direction"), ("From", "from"), ("To", "to"))


def _decoder_for(spec: MappingSpec) -> CallEventDecoder:
    """The decoder with a field for every callback parameter, ``data`` field and attribute the mapping reads."""
    parameters: set[str] = set()
    data: set[str] = set()
    request: set[str] = set()
    attributes: set[str] = set()
    for ref in spec.source_refs():
        kind, _, name = ref.partition(":")
        if kind == "param":
            parameters.update((name, _snake(name)))
        elif ref == "derived:customer_phone":
            parameters.update(key for pair in _PHONE_KEYS for key in pair)
        elif kind == "event":
            attributes.add(name)
        elif kind == "data":
            steps = _steps(name)
            data.update(steps[0])
            if "request" in steps[0] and len(steps) > 1:
                request.update(steps[1])
                if "parameters" in steps[1] and len(steps) > 2:
                    parameters.update(steps[2])
    return call_event_decoder(parameters, data, request, attributes)


def _alternatives(ref: str, target: str, decoder: CallEventDecoder) -> list[list[str]]:
    """``_lookup``'s code split into the lookups to try in turn: a parameter's two spellings are two."""
    kind, _, name = ref.partition(":")
    if kind == "param" and _snake(name) != name:
        return [[f"{target} = {_param(name, decoder)}"], [f"{target} = {_param(_snake(name), decoder)}"]]
    return [_lookup(ref, target, decoder)]


def _store_first_present(alternatives: list[list[str]], target: str, store: str) -> list[str]:
    """Code that runs ``store`` with the first present value of the ``alternatives``, if any.

    A present value is usually a non-empty string, so one truth test settles the usual case; a falsy value is
    absent only when it is None or "" (0 and False are values), and then the next alternative is tried.
    """
    first, *rest = alternatives
    if not rest:
        return [*first, f"if {_PRESENT.format(target)}:", f"    {store}"]
    return [
        *first,
        f"if {target}:",
        f"    {store}",
        f"elif {target} is None or {target} == '':",
        *_indent(_store_first_present(rest, target, store)),
        "else:",
        f"    {store}",
    ]


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def _compile_function(name: str, body: list[str], namespace: dict[str, Any]) -> Applier:
    source = "\n".join([f"def {name}(event, data, params, raw=None):", *_indent(body)])
    exec(compile(source, f"<segment-bridge mapping: {name}>", "exec"), namespace)  # noqa: S102 - see above
    function: Applier = namespace[name]
    return function


def _applier_body(spec: MappingSpec, decoder: CallEventDecoder) -> list[str]:
    """The compiled mapping's code. Constants are ``_constant_<index>``."""
    hashing = spec.hashing.phone_numbers
    body = ["result = {}"]
    for index, (name, prop) in enumerate(spec.properties.items()):
        if prop.value is not None:
            body.append(f"result[{name!r}] = _constant_{index}")
            continue
        value = "v"
        if prop.type == "int":
            value = f"_to_int({value})"
        elif prop.type == "string":
            value = f"str({value})"
        if hashing and prop.pii == "phone":
            value = f"_hash({value})"
        alternatives = [lines for ref in prop.from_ for lines in _alternatives(ref, "v", decoder)]
        body += _store_first_present(alternatives, "v", f"result[{name!r}] = {value}")
    body += _external_ids_body(spec, decoder)
    for target, refs in (("anonymous", spec.identity.anonymous_id), ("user", spec.identity.user_id)):
        body.append(f"{target} = None")
        for index, ref in enumerate(refs):
            # An identity is a string or a number; an object or list in that field is skipped, not repr()'d.
            lookup = [*_lookup(ref, "v", decoder), "if type(v) in _IDENTITY_TYPES and v != '':"]
            hashed = hashing and ref in _PHONE_SOURCES
            lookup.append(f"    {target} = {'_hash(v)' if hashed else 'str(v)'}")
            body += lookup if index == 0 else [f"if {target} is None:", *_indent(lookup)]
    body.append("return anonymous, user, result")
    return body


# external_ids.is_e164 written out, so that the check costs no function call on every event.
_E164_CHECK = "type(v) is str and 2 < len(v) < 17 and v[0] == '+' and v[1] != '0' and v[1:].isdigit() and v.isascii()"


def _external_ids_body(spec: MappingSpec, decoder: CallEventDecoder) -> list[str]:
    """Code that puts the ``context.externalIds`` entries under :data:`EXTERNAL_IDS` in ``result``, if any.

    A value that is not a string or integer, or not an E.164 number for an ``e164_only`` entry, is left out; phone
    numbers are hashed when the mapping hashes them. :func:`segment_bridge.translate` moves the list to the context.
    """
    if not spec.external_ids:
        return []
    body = ["external = []"]
    for item in spec.external_ids:
        check = _E164_CHECK if item.e164_only else "type(v) is str or type(v) is int"
        identifier = "v" if item.e164_only else "str(v)"
        if spec.hashing.phone_numbers and item.is_phone_number():
            identifier = "_hash(v)"
        entry = f"{{'id': {identifier}, 'type': {item.type!r}, 'collection': {item.collection!r}, 'encoding': 'none'}}"
        alternatives = [lines for ref in item.from_ for lines in _alternatives(ref, "v", decoder)]
        body += _store_first_present(alternatives, "v", f"if {check}: external.append({entry})")
    return [*body, "if external:", f"    result[{EXTERNAL_IDS!r}] = external"]


def _not_compiled(event: Any, data: Any, params: Any) -> Applied:
    raise TypeError("a CompiledMapping is made by CompiledMapping.compile() or load_mapping()")


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping ready to apply: the validated spec, where it came from, and lint findings."""

    spec: MappingSpec
    source: str
    warnings: tuple[str, ...] = ()
    #: The compiled mapping: ``apply(event, event.data, parameters, raw)`` is ``(anonymousId, userId, properties)`` of
    #: one event as ``decoder`` decodes it. Absent values are left out; ids are strings or ``None``.
    apply: Applier = field(default=_not_compiled, repr=False)
    #: The Segment event name of each supported type the mapping names.
    event_names: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: The decoder of call-progress events, with a field for each parameter, ``data`` field and attribute the
    #: mapping reads.
    decoder: CallEventDecoder = field(default_factory=lambda: call_event_decoder(()), repr=False)

    @classmethod
    def compile(cls, spec: MappingSpec, source: str = "<mapping>", *, hash_key: bytes | None = None) -> CompiledMapping:
        """Turn a spec into its compiled function.

        Raises:
            ConfigurationError: the spec hashes phone numbers and no ``hash_key`` was given.
        """
        hashing = spec.hashing.phone_numbers
        if hashing and not hash_key:
            raise ConfigurationError(
                f"{source}: hashing.phone_numbers is on but no hash key was given "
                "(set SEGMENT_BRIDGE_HASH_KEY or pass --hash-key-file)"
            )
        key = hash_key or b""

        def hash_value(value: Any) -> str:
            return hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()

        namespace: dict[str, Any] = {
            "_dig": _dig,
            "_schema_version": _schema_version,
            "_to_int": _to_int,
            "_hash": hash_value,
            "_IDENTITY_TYPES": (str, int, float),
            "_UNSET": msgspec.UNSET,
        }
        for index, prop in enumerate(spec.properties.values()):
            namespace[f"_constant_{index}"] = prop.value
        decoder = _decoder_for(spec)
        return cls(
            spec=spec,
            source=source,
            warnings=tuple(spec.lint()),
            apply=_compile_function("apply", _applier_body(spec, decoder), namespace),
            event_names={event_type: name for event_type, name in spec.events.items() if name},
            decoder=decoder,
        )

    def event_name(self, event_type: str) -> str | None:
        """The Segment event name for a supported type, or ``None`` when the mapping has none."""
        return self.event_names.get(event_type)

    def applied(self, event: Mapping[str, Any]) -> Applied:
        """``(anonymousId, userId, properties)`` of one CloudEvent given as a decoded JSON object.

        Raises:
            msgspec.ValidationError: the object is not a valid call-progress event.
        """
        raw = msgspec.json.encode(event)
        decoded = guarded(self.decoder.decode, raw)
        data = decoded.data
        if isinstance(data, str):  # as translate does: the event holds data decoded
            data = self.decoder.decode_data(data)
            decoded = msgspec.structs.replace(decoded, data=data)
        request = data.request
        params = request.parameters if request is not None else self.decoder.empty_parameters
        return self.apply(decoded, data, params, raw)

    def properties(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The Segment properties of one event; absent values and empty strings are left out."""
        properties = self.applied(event)[2]
        properties.pop(EXTERNAL_IDS, None)
        return properties

    def identity(self, event: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """``(anonymousId, userId)`` as strings, hashed where the mapping says so; ``None`` when absent."""
        anonymous, user, _ = self.applied(event)
        return anonymous, user


def _read_error(error: OSError | UnicodeDecodeError) -> str:
    """Why a file could not be read, in the user's words (never an exception's class name)."""
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return error.strerror or "read error"


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
        raise ConfigurationError(f"cannot read mapping file {name}: {_read_error(error)}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingError(name, [("", f"not valid TOML: {error}")]) from None
    return CompiledMapping.compile(parse_mapping(document, name), name, hash_key=hash_key)
