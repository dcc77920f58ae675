"""mapping: the generated code applies a mapping exactly as the rules read, whatever the values.

The compiled function is tuned for speed; this checks it against a plain interpretation of the documented rules
(first present source wins, PascalCase then snake_case, None and "" are absent, int conversion, identity types,
hashing) on arbitrary parameters.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_bridge.external_ids import EXTERNAL_IDS, is_e164
from segment_bridge.mapping import CompiledMapping, MappingSpec, parse_mapping
from segment_bridge.mapping import load_mapping as load

KEY = b"k"
PHONE_SOURCES = {
    "derived:customer_phone",
    *(f"param:{name}" for name in ("From", "To", "Caller", "Called", "ForwardedFrom")),
}
DEFAULT = load().spec
# Every kind of source, several per property and identity, all three types, constants and hashing.
MIXED = parse_mapping(
    {
        "events": {"com.twilio.voice.status-callback.call.answered": "Call Answered"},
        "identity": {
            "anonymous_id": ["param:Nope", "derived:customer_phone", "data:sid"],
            "user_id": ["param:CustomerId", "event:partnerext", "param:From"],
        },
        "hashing": {"phone_numbers": True},
        "properties": {
            "chain": {"from": ["param:ParentCallSid", "param:CallSid", "data:sid"]},
            "sequence_number": {"from": ["param:SequenceNumber"], "type": "int"},
            "as_text": {"from": ["param:SequenceNumber", "param:CallDuration"], "type": "string"},
            "phone": {"from": ["param:ForwardedFrom", "param:From"], "pii": "phone"},
            "phone_int": {"from": ["param:To"], "type": "int", "pii": "phone"},
            "constant": {"value": 0},
            "code": {"from": ["data:response.responseCode", "data:sid"]},
            "schema_version": {"from": ["derived:schema_version"]},
            "lower": {"from": ["param:lowercase"]},
            "cloudevent_id": {"from": ["event:id"]},
        },
        "external_ids": [
            {"type": "phone", "from": ["param:Nope", "derived:customer_phone"], "e164_only": True},
            {"type": "callee", "from": ["param:To"], "collection": "people"},
            {"type": "account", "from": ["param:AccountSid", "data:sid"]},
        ],
    }
)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _missing(value: Any) -> bool:
    return value is None or value == ""


def _source(ref: str, event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]) -> Any:
    kind, _, name = ref.partition(":")
    if kind == "param":
        value = params.get(name)
        return params.get(_snake(name)) if _missing(value) else value
    if kind == "data":
        node: Any = data
        for key in name.split("."):
            spelling = next((s for s in (key, _snake(key), _camel(key)) if isinstance(node, dict) and s in node), None)
            if spelling is None:
                return None
            node = node[spelling]
        return node
    if kind == "event":
        return event.get(name)
    if name == "customer_phone":
        direction = str(params.get("Direction") or params.get("direction") or "")
        if direction.startswith("outbound") or direction == "trunking-originating":
            return params.get("To") or params.get("to")
        if direction.startswith("inbound") or direction == "trunking-terminating":
            return params.get("From") or params.get("from")
        return None
    tail = str(event.get("dataschema") or "").rstrip("/").rpartition("/")[2]
    return int(tail) if tail.isascii() and tail.isdigit() else None


def _first(refs: tuple[str, ...], event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]) -> Any:
    for ref in refs:
        value = _source(ref, event, data, params)
        if not _missing(value):
            return value
    return None


def _to_int(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    return value


def _hash(value: Any) -> str:
    return hmac.new(KEY, str(value).encode(), hashlib.sha256).hexdigest()


def reference(
    spec: MappingSpec, event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]
) -> tuple[str | None, str | None, dict[str, Any]]:
    hashing = spec.hashing.phone_numbers
    properties: dict[str, Any] = {}
    for name, prop in spec.properties.items():
        if prop.value is not None:
            properties[name] = prop.value
            continue
        value = _first(prop.from_, event, data, params)
        if value is None:
            continue
        value = _to_int(value) if prop.type == "int" else str(value) if prop.type == "string" else value
        properties[name] = _hash(value) if hashing and prop.pii == "phone" else value
    external = []
    for item in spec.external_ids:
        value = _first(item.from_, event, data, params)
        if (is_e164(value) if item.e164_only else type(value) in (str, int)) and value is not None:
            hashed = hashing and (item.e164_only or any(ref in PHONE_SOURCES for ref in item.from_))
            identifier = _hash(value) if hashed else str(value)
            external.append({"id": identifier, "type": item.type, "collection": item.collection, "encoding": "none"})
    if external:
        properties[EXTERNAL_IDS] = external
    ids: list[str | None] = []
    for refs in (spec.identity.anonymous_id, spec.identity.user_id):
        found = None
        for ref in refs:
            value = _source(ref, event, data, params)
            if type(value) in (str, int, float) and value != "":
                phone = ref in PHONE_SOURCES
                found = _hash(value) if hashing and phone else str(value)
                break
        ids.append(found)
    return ids[0], ids[1], properties


values = st.one_of(
    st.none(),
    st.sampled_from(["", "0", "42", " -7 ", "²", "٣٤", "--5", "4_2", "9" * 18, "9" * 19, "-" + "9" * 19, "x"]),
    st.sampled_from(["inbound", "outbound-api", "trunking-originating", "trunking-terminating", "+14155550100"]),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "responseCode"]), st.integers(), max_size=2),
)
names = st.sampled_from(
    [
        "CallSid", "call_sid", "AccountSid", "account_sid", "CallStatus", "Direction", "direction", "From", "from",
        "To", "to", "SequenceNumber", "sequence_number", "CallDuration", "ParentCallSid", "parent_call_sid",
        "ForwardedFrom", "forwarded_from", "CustomerId", "customer_id", "lowercase", "AnsweredBy",
    ]
)  # fmt: skip
events = st.fixed_dictionaries(
    {},
    optional={
        "id": values,
        "type": values,
        "dataschema": st.sampled_from(["https://x/Voice.WebhookEvent/2", "https://x/2/", "https://x/²", "", "7"]),
        "partnerext": values,
    },
)
datas = st.fixed_dictionaries(
    {}, optional={"sid": values, "response": values, "Response": st.fixed_dictionaries({"response_code": values})}
)


@pytest.mark.parametrize("spec", [DEFAULT, MIXED], ids=["default", "mixed"])
@settings(max_examples=400, deadline=None)
@given(event=events, data=datas, params=st.dictionaries(names, values, max_size=12))
def test_compiled_mapping_follows_the_rules(
    spec: MappingSpec, event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]
) -> None:
    compiled = CompiledMapping.compile(spec, hash_key=KEY)
    expected = reference(spec, event, data, params)
    # repr: the same keys in the same order, and the same types (True == 1, but they are different properties).
    assert repr(compiled.apply(*as_decoded(compiled, event, data, params))) == repr(expected)


def as_decoded(compiled: CompiledMapping, event: dict[str, Any], data: dict[str, Any], params: dict[str, Any]) -> Any:
    """The decoder's structs holding these values, whatever their types: what ``apply`` reads, without validation.

    msgspec structs check no types when built directly, so arbitrary values reach the compiled code.
    """
    decoder = compiled.decoder
    assert decoder is not None
    sample = decoder.decode(SAMPLE)
    request = sample.data.request
    parameters = type(request.parameters)(**{a: params.get(key) for key, a in decoder.parameters.items()})
    data_fields = {a: data.get(key, msgspec.UNSET) for key, a in decoder.data_fields.items()}
    for name in ("eventSid", "event_sid"):
        data_fields[name] = data.get(name, msgspec.UNSET)
    decoded_data = type(sample.data)(
        sid=data.get("sid"),
        timestamp=data.get("timestamp"),
        request=type(request)(parameters=parameters),
        **data_fields,
    )
    attributes = {a: event.get(key) for key, a in decoder.attributes.items()}
    envelope = {name: event.get(name) for name in ("specversion", "id", "source", "type", "time", "dataschema")}
    decoded = type(sample)(**envelope, **attributes, data=decoded_data)
    return decoded, decoded_data, parameters


SAMPLE = b'{"specversion":"1.0","id":"VW1","source":"s","type":"t","data":{"sid":"CA1","request":{"parameters":{}}}}'


@pytest.mark.parametrize("spec", [DEFAULT, MIXED], ids=["default", "mixed"])
def test_properties_and_identity_of_one_decoded_event(spec: MappingSpec) -> None:
    from eventfiles import load_event

    compiled = CompiledMapping.compile(spec, hash_key=KEY)
    event = load_event("real_inbound_answered.json")
    event["partnerext"] = "acme"
    expected = reference(spec, event, event["data"], event["data"]["request"]["parameters"])
    # properties() is what Segment gets: the external ids apply() carries are moved to context.externalIds.
    properties = {name: value for name, value in expected[2].items() if name != EXTERNAL_IDS}
    assert repr(compiled.properties(event)) == repr(properties)
    assert compiled.identity(event) == expected[:2]


@pytest.mark.parametrize("spec", [DEFAULT, MIXED], ids=["default", "mixed"])
@pytest.mark.parametrize("direction_key", ["Direction", "direction"])
@pytest.mark.parametrize(
    "direction", ["inbound", "outbound-api", "outbound-dial", "trunking-originating", "trunking-terminating", "", "x"]
)
@pytest.mark.parametrize(
    "phones", [{"From": "+1", "To": "+2"}, {"from": "+1", "to": "+2"}, {"To": "+2"}, {"From": "", "from": "+1"}]
)
def test_every_branch_of_the_customer_phone_rule(
    spec: MappingSpec, direction_key: str, direction: str, phones: dict[str, str]
) -> None:
    # The compiled code holds the rule inline; random parameters rarely reach each direction with each number.
    compiled = CompiledMapping.compile(spec, hash_key=KEY)
    params = {direction_key: direction, **phones}
    applied = compiled.apply(*as_decoded(compiled, {}, {"sid": "CA1"}, params))
    assert repr(applied) == repr(reference(spec, {}, {"sid": "CA1"}, params))


@pytest.mark.parametrize(
    "value",
    ["0", "007", "9" * 18, "9" * 19, str(2**63 - 1), str(2**63), str(-(2**63)), str(-(2**63) - 1), " 5", "5 ", "-0",
     "+5", "²", "٣٤", "4_2", "", "-", "1e3", 5, 5.0, True, None, ["1"]],
)  # fmt: skip
def test_int_conversion_matches_the_rule_at_its_edges(value: Any) -> None:
    from segment_bridge.mapping import _to_int as compiled_to_int

    assert repr(compiled_to_int(value)) == repr(_to_int(value))


def test_hot_path_sources_read_the_same_from_bytes_as_from_the_decoded_event() -> None:
    import json

    from eventfiles import event_bytes

    from segment_bridge import translate, translate_event

    hot = ("specversion", "id", "source", "type", "time", "dataschema")
    properties = {f"event_{name}": {"from": [f"event:{name}"]} for name in hot}
    properties |= {f"data_{name}": {"from": [f"data:{name}"]} for name in ("sid", "timestamp", "eventSid")}
    document = {"events": dict(DEFAULT.events), "properties": properties}
    mapping = CompiledMapping.compile(parse_mapping(document))
    seen: set[str] = set()
    for name in ("real_inbound_answered.json", "snake_case_params_answered.json", "seed_ringing.json"):
        raw = event_bytes(name)
        fast = translate(raw, mapping)[0].track
        general = translate_event(json.loads(raw), mapping).track
        assert fast is not None and general is not None
        assert fast.body == general.body
        seen.update(fast.message["properties"])
    assert seen == {*properties}
