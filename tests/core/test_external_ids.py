"""External ids: the mapping's [[external_ids]] become context.externalIds, the phone only when it is E.164."""

from __future__ import annotations

import copy
import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventfiles import load_event

from segment_bridge import MappingError, load_mapping, translate, translate_event
from segment_bridge._resources import packaged_mapping
from segment_bridge.external_ids import EXTERNAL_IDS, is_e164, phone_external_id

DEFAULT_TEXT = packaged_mapping().read_text()
KEY = b"k3y-for-external-ids"


def _event(direction: str = "inbound", **params: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event("real_inbound_answered.json"))
    event["data"]["request"]["parameters"].update({"Direction": direction, **params})
    return event


def _messages(event: dict[str, Any], mapping: Any) -> list[dict[str, Any]]:
    """The message on both decode paths (bytes: the typed fast path; a dict: the general one), which must agree."""
    (fast,) = translate(orjson.dumps(event), mapping)
    general = translate_event(event, mapping)
    assert fast.track is not None
    assert general.track is not None
    assert fast.track.message == general.track.message
    return [fast.track.message, orjson.loads(fast.track.body)]


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("inbound", "+14155550123"), ("outbound-api", "+14155550199"), ("outbound-dial", "+14155550199")],
)
def test_default_mapping_sends_the_customers_number_as_the_phone_identifier(direction: str, expected: str) -> None:
    for message in _messages(_event(direction), load_mapping()):
        assert message["context"]["externalIds"] == [
            {"id": expected, "type": "phone", "collection": "users", "encoding": "none"}
        ]
        assert phone_external_id(message) == expected
        assert EXTERNAL_IDS not in message["properties"]


@pytest.mark.parametrize(
    "caller", ["client:alice", "sip:alice@example.com", "4155550123", "+0123", "", "+1415555012345678"]
)
def test_a_caller_that_is_not_an_e164_number_is_no_phone_identifier(caller: str) -> None:
    for message in _messages(_event("inbound", From=caller), load_mapping()):
        assert "externalIds" not in message["context"]
        assert phone_external_id(message) is None
        assert message["context"] == {"library": message["context"]["library"]}


def test_with_hashing_the_phone_identifier_is_the_same_digest_as_the_anonymous_id(tmp_path: Path) -> None:
    path = tmp_path / "hashed.toml"
    path.write_text(DEFAULT_TEXT.replace("phone_numbers = false", "phone_numbers = true"))
    mapping = load_mapping(path, hash_key=KEY)
    digest = hmac.new(KEY, b"+14155550123", hashlib.sha256).hexdigest()
    for message in _messages(_event(), mapping):
        assert message["anonymousId"] == digest
        assert message["context"]["externalIds"][0]["id"] == digest
        assert "+14155550123" not in orjson.dumps(message).decode()


def test_any_declared_identifier_is_sent_and_a_phone_source_is_hashed(tmp_path: Path) -> None:
    path = tmp_path / "more.toml"
    text = DEFAULT_TEXT.replace("phone_numbers = false", "phone_numbers = true")
    text += '\n[[external_ids]]\ntype = "twilio_account"\nfrom = ["param:AccountSid"]\ncollection = "accounts"\n'
    text += '\n[[external_ids]]\ntype = "callee"\nfrom = ["param:To"]\n'
    path.write_text(text)
    (message, _) = _messages(_event(), load_mapping(path, hash_key=KEY))
    callee = hmac.new(KEY, b"+14155550199", hashlib.sha256).hexdigest()
    assert [(item["type"], item["collection"]) for item in message["context"]["externalIds"]] == [
        ("phone", "users"),
        ("twilio_account", "accounts"),
        ("callee", "users"),
    ]
    assert message["context"]["externalIds"][1]["id"] == "AC3f1e2d4c5b6a79880716253443526170"
    assert message["context"]["externalIds"][2]["id"] == callee


def test_lint_wants_lower_case_types_and_e164_phones(tmp_path: Path) -> None:
    path = tmp_path / "lint.toml"
    path.write_text(DEFAULT_TEXT.replace('type = "phone"', 'type = "Phone"').replace("e164_only = true", ""))
    findings = load_mapping(path).warnings
    assert any(f.startswith("external_ids.0.type:") and "lower case" in f and "'phone'" in f for f in findings)
    path.write_text(DEFAULT_TEXT.replace("e164_only = true", ""))
    (finding,) = load_mapping(path).warnings
    assert finding.startswith("external_ids.0.e164_only:")
    path.write_text(DEFAULT_TEXT.replace('from = ["derived:customer_phone"]', 'from = ["param:Fromm"]'))
    (finding,) = load_mapping(path).warnings
    assert finding.startswith("external_ids.0.from: 'param:Fromm' is not a status-callback parameter")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'from = ["derived:customer_phone"]',
            'from = ["derived:nope"]',
            "external_ids.0.from: 'derived:nope': unknown derived value",
        ),
        ('from = ["derived:customer_phone"]', 'from = ["phone"]', "external_ids.0.from: 'phone' is not a value source"),
        ('from = ["derived:customer_phone"]', "from = []", "external_ids.0.from"),
        ('type = "phone"', 'type = ""', "external_ids.0.type"),
        ('collection = "users"', 'collection = "users"\nencoding = "base64"', "external_ids.0.encoding"),
        ('collection = "users"', 'colection = "users"', "external_ids.0.colection: unknown key (did you mean"),
    ],
)
def test_an_invalid_external_id_names_its_key(tmp_path: Path, old: str, new: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    assert old in DEFAULT_TEXT
    path.write_text(DEFAULT_TEXT.replace(old, new))
    with pytest.raises(MappingError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        load_mapping(path)


def test_a_lookup_needs_the_phone_identifier_and_the_phones_parameter(tmp_path: Path) -> None:
    lookup = '\n[identity.lookup]\nquery = "SELECT p AS phone, u AS user_id FROM t WHERE p IN :phones"\n'
    path = tmp_path / "lookup.toml"
    path.write_text(DEFAULT_TEXT.replace("user_id = []", "user_id = []" + lookup))
    spec = load_mapping(path).spec
    assert spec.identity.lookup is not None
    assert spec.identity.lookup.on_error == "send"
    path.write_text(DEFAULT_TEXT.replace("user_id = []", "user_id = []" + lookup.replace(":phones", ":numbers")))
    with pytest.raises(MappingError, match=r"identity\.lookup\.query: the query must use the :phones parameter"):
        load_mapping(path)
    no_phone = DEFAULT_TEXT.replace('type = "phone"', 'type = "mobile"')
    path.write_text(no_phone.replace("user_id = []", "user_id = []" + lookup))
    with pytest.raises(MappingError, match='add an \\[\\[external_ids\\]\\] entry with type = "phone"'):
        load_mapping(path)


def test_is_e164() -> None:
    assert is_e164("+14155550100")
    assert is_e164("+442071838750")
    for value in ("14155550100", "+0415", "+1", "client:bob", "sip:+14155550100@x", "+1415555010012345", 14155550100):
        assert not is_e164(value)
