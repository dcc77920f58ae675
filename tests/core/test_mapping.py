"""mapping: strict loading, lint, hashing, identity and property rules."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson
import pytest
from eventfiles import event_bytes, load_event

from segment_bridge import ConfigurationError, MappingError, RefusalReason, load_mapping, translate
from segment_bridge._resources import packaged_mapping

DEFAULT_TEXT = packaged_mapping().read_text()


def write(tmp_path: Path, text: str, name: str = "mapping.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_packaged_default_loads_clean() -> None:
    mapping = load_mapping()
    assert mapping.warnings == ()
    assert mapping.spec.events["com.twilio.voice.status-callback.call.answered"] == "Call Answered"
    required = {
        "call_sid", "account_sid", "call_status", "direction", "from", "to", "sequence_number", "call_duration",
        "answered_by", "parent_call_sid", "sip_response_code", "cloudevent_id", "cloudevent_type", "schema_version",
    }  # fmt: skip
    assert required <= set(mapping.spec.properties)


def test_typo_names_file_and_key_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT.replace("call_sid = { from = [", "call_sid = { form = ["))
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert str(path) in message
    assert "properties.call_sid.form: unknown key (did you mean 'from'?)" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT + "\n[identiy]\nuser_id = []\n")
    with pytest.raises(MappingError, match=r"identiy: unknown key \(did you mean 'identity'\?\)"):
        load_mapping(path)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('"param:CallSid", "data:sid"', '"params:CallSid"', "is not a value source"),
        ('"param:CallSid", "data:sid"', '"derived:caller_mood"', "unknown derived value"),
        ('"com.twilio.voice.status-callback.call.ringing"', '"com.twilio.voice.webhook.status-callback.call.ringing"',
         "not a supported event type"),
        ("format_version = 1", "format_version = 2", "format_version"),
    ],
)  # fmt: skip
def test_invalid_values_name_the_key(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    assert old in DEFAULT_TEXT
    with pytest.raises(MappingError, match=fragment):
        load_mapping(write(tmp_path, DEFAULT_TEXT.replace(old, new, 1)))


def test_not_toml_is_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="not valid TOML"):
        load_mapping(write(tmp_path, "events = [unclosed"))


def test_unreadable_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read mapping file"):
        load_mapping(tmp_path / "missing.toml")


def test_lint_flags_naming_spec_violations(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace('"Call Ringing"', '"call_ringing"').replace("call_status =", "CallStatus =")
    text += "revenue = { value = 1 }\n"
    mapping = load_mapping(write(tmp_path, text))
    findings = "\n".join(mapping.warnings)
    assert "'call_ringing' is not Title Case 'Object Action'" in findings
    assert "properties.CallStatus: property names should be snake_case" in findings
    assert "properties.revenue: 'revenue' is reserved" in findings


def test_missing_event_name_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace('"com.twilio.voice.status-callback.call.ringing" = "Call Ringing"\n', "")
    mapping = load_mapping(write(tmp_path, text))
    (translation,) = translate(event_bytes("real_inbound_ringing.json"), mapping)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.MISSING_EVENT_NAME


def test_missing_identity_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        'anonymous_id = ["derived:customer_phone", "param:CallSid", "data:sid"]', 'anonymous_id = ["param:Nope"]'
    )
    mapping = load_mapping(write(tmp_path, text))
    (translation,) = translate(event_bytes("real_inbound_ringing.json"), mapping)
    assert translation.refusal is not None
    assert translation.refusal.reason is RefusalReason.MISSING_IDENTITY


def test_overlong_message_id_prefix_is_a_mapping_error(tmp_path: Path) -> None:
    ok = DEFAULT_TEXT.replace('message_id_prefix = "twilio-voice"', f'message_id_prefix = "{"p" * 59}"')
    (translation,) = translate(event_bytes("real_inbound_ringing.json"), load_mapping(write(tmp_path, ok)))
    assert translation.track is not None
    assert len(translation.track.message_id) == 100
    text = DEFAULT_TEXT.replace('message_id_prefix = "twilio-voice"', f'message_id_prefix = "{"p" * 60}"')
    with pytest.raises(MappingError, match="message_id_prefix: String should have at most 59 characters"):
        load_mapping(write(tmp_path, text))


def test_message_id_over_100_characters_is_refused_before_sending() -> None:
    from segment_bridge import TrackCall, check_track_message

    message = {"type": "track", "event": "Call Answered", "anonymousId": "a", "messageId": "m" * 101}
    refusal = check_track_message(TrackCall.from_message(message, "VW1", "t"))
    assert refusal is not None
    assert refusal.reason is RefusalReason.MESSAGE_ID_TOO_LONG


@pytest.mark.parametrize("value", [{"a": 1}, ["+1415"], True])
def test_identity_skips_values_that_are_not_strings_or_numbers(value: object) -> None:
    event = load_event("real_inbound_ringing.json")
    event["data"]["request"]["parameters"]["From"] = value
    (translation,) = translate(orjson.dumps(event), load_mapping())
    assert translation.track is not None
    assert translation.track.message["anonymousId"] == "CA5a1b2c3d4e5f60718293a4b5c6d7e8f9"


def test_user_id_only_when_mapped(tmp_path: Path) -> None:
    (plain,) = translate(event_bytes("real_inbound_ringing.json"), load_mapping())
    assert plain.track is not None
    assert "userId" not in plain.track.message
    text = DEFAULT_TEXT.replace("user_id = []", 'user_id = ["param:AccountSid"]')
    (mapped,) = translate(event_bytes("real_inbound_ringing.json"), load_mapping(write(tmp_path, text)))
    assert mapped.track is not None
    assert mapped.track.message["userId"] == "AC3f1e2d4c5b6a79880716253443526170"


def test_phone_hashing_uses_hmac_sha256_with_the_users_key(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("phone_numbers = false", "phone_numbers = true")
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match="no hash key"):
        load_mapping(path)
    key = b"team-secret"
    mapping = load_mapping(path, hash_key=key)
    (translation,) = translate(event_bytes("real_inbound_ringing.json"), mapping)
    assert translation.track is not None
    message = translation.track.message
    expected = hmac.new(key, b"+14155550123", hashlib.sha256).hexdigest()
    assert message["anonymousId"] == expected
    assert message["properties"]["from"] == expected
    assert "+14155550123" not in translation.track.body.decode()
    assert "+1415555" not in translation.track.body.decode()
    # Non-phone properties are untouched.
    assert message["properties"]["call_sid"] == "CA5a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert "team-secret" not in repr(mapping)


def test_constants_data_paths_and_event_extensions(tmp_path: Path) -> None:
    text = DEFAULT_TEXT + (
        'source_system = { value = "twilio" }\n'
        'response_code = { from = ["data:response.responseCode"] }\n'
        'partner = { from = ["event:partnerext"] }\n'
        'status_text = { from = ["param:SequenceNumber"], type = "string" }\n'
    )
    event = load_event("real_inbound_answered.json")
    event["partnerext"] = "acme"
    (translation,) = translate(orjson.dumps(event), load_mapping(write(tmp_path, text)))
    assert translation.track is not None
    properties = translation.track.message["properties"]
    assert properties["source_system"] == "twilio"
    assert properties["response_code"] == 200
    assert properties["partner"] == "acme"
    assert properties["status_text"] == "2"


def test_absent_and_empty_values_are_left_out() -> None:
    event = load_event("real_inbound_answered.json")
    event["data"]["request"]["parameters"]["AnsweredBy"] = ""
    (translation,) = translate(orjson.dumps(event), load_mapping())
    assert translation.track is not None
    properties = translation.track.message["properties"]
    assert "answered_by" not in properties
    assert "parent_call_sid" not in properties
    assert "" not in properties.values()


@pytest.mark.parametrize("value", ["n/a", "1" * 25, "-" + "9" * 20])
def test_non_int64_values_are_kept_not_dropped(value: str) -> None:
    event = load_event("real_inbound_answered.json")
    event["data"]["request"]["parameters"]["SequenceNumber"] = value
    (translation,) = translate(orjson.dumps(event), load_mapping())
    assert translation.track is not None
    assert translation.track.message["properties"]["sequence_number"] == value


def test_every_packaged_mapping_loads() -> None:
    folder = Path(__file__).resolve().parents[2] / "mappings"
    files = sorted(folder.glob("*.toml"))
    assert files
    for path in files:
        load_mapping(path, hash_key=b"k")


@pytest.mark.parametrize(("value", "expected"), [("42", 42), (" -7 ", -7), ("²", "²"), ("--5", "--5"), ("4_2", "4_2")])
def test_int_conversion_takes_only_plain_decimal_integers(value: str, expected: object) -> None:
    event = load_event("real_inbound_answered.json")
    event["data"]["request"]["parameters"]["SequenceNumber"] = value
    event["dataschema"] = "https://events-schemas.twilio.com/Voice.WebhookEvent/²"
    (translation,) = translate(orjson.dumps(event), load_mapping())
    assert translation.track is not None
    assert translation.track.message["properties"]["sequence_number"] == expected
    assert "schema_version" not in translation.track.message["properties"]
