"""What a user reads names no internals: no library's own wording (orjson, binascii), no class reprs in log lines.

Found by the pre-release audit: an integer beyond 64 bits was refused with orjson's "Integer exceeds 64-bit
range", bad base64 in a Kinesis record with binascii's "Only base64 data is allowed", and ``serve`` announced
where it sends batches as ``"transport":"DryRunTransport()"`` or a ``SegmentTransport(...)`` repr.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from kinesis_events import FakeContext, KinesisRecord, lambda_event, sequence_numbers

from segment_bridge import aws_lambda
from segment_bridge.delivery import DryRunTransport, FileTransport, SegmentTransport
from segment_bridge.mapping import load_mapping
from segment_bridge.samples import call_events
from segment_bridge.server import ServerConfig, create_app
from segment_bridge.settings import Settings

MAPPING = load_mapping()


def _with_sequence_number(value: int) -> bytes:
    event = call_events(1)[0]
    body = orjson.dumps(event)
    # orjson cannot write the oversized integer itself: put it in the JSON text.
    marker = b'"SequenceNumber":'
    assert marker in body
    head, _, tail = body.partition(marker)
    return head + marker + str(value).encode() + tail[tail.index(b",") :]


def test_an_integer_beyond_64_bits_is_refused_in_the_users_words() -> None:
    from segment_bridge.translate import translate_record

    (translation,) = translate_record(_with_sequence_number(10**23), MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.reason.value == "invalid_event"
    assert translation.refusal.message == "a mapped value cannot be sent: an integer beyond 64 bits"


@pytest.mark.usefixtures("fresh_lambda_runtime")
def test_bad_base64_in_a_kinesis_record_is_refused_in_the_users_words(
    lambda_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    event = lambda_event([KinesisRecord("bm90IGJhc2U2NA!!", sequence_numbers(1)[0])])
    assert aws_lambda.handler(event, FakeContext()) == {"batchItemFailures": []}
    refused = [
        line
        for line in (json.loads(text) for text in capsys.readouterr().out.splitlines() if text.startswith("{"))
        if line["event"] == "refused"
    ]
    assert [line["message"] for line in refused] == ["kinesis.data: not valid base64"]


def _started_line(transport: Any, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    config = ServerConfig.from_env({}, insecure_no_signature=True, dead_letter=None)
    app = create_app(Settings(), config, transport=transport, mapping=MAPPING)

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            pass

    with caplog.at_level(logging.INFO, logger="segment_bridge"):
        anyio.run(start_and_stop)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if '"event":"started"' in r.getMessage()]
    return line


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: DryRunTransport(), "stdout (--dry-run)"),
        (lambda tmp: FileTransport(tmp / "batches.jsonl"), "batches.jsonl"),
        (lambda tmp: SegmentTransport("wk_Never-Logged-42", host="https://user:pw@events.eu1.segmentapis.com"), None),
    ],
)
def test_serve_says_where_batches_go_without_a_class_repr(
    make: Any, expected: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = _started_line(make(tmp_path), caplog)
    assert "transport" not in line
    text = json.dumps(line)
    assert "Transport" not in text and "SecretStr" not in text
    assert "wk_Never-Logged-42" not in caplog.text and "pw@" not in caplog.text
    if expected is None:
        assert line["sends_to"] == "https://events.eu1.segmentapis.com"
    else:
        assert line["sends_to"].endswith(expected)


@pytest.mark.parametrize(
    ("line", "kind"),
    [(b'"text"', "a string"), (b"null", "null"), (b"[1]", "a number"), (b"[false]", "false"), (b"[[]]", "an array")],
)
def test_what_is_not_a_cloudevent_is_named_in_jsons_words(line: bytes, kind: str) -> None:
    from segment_bridge.events import parse_event
    from segment_bridge.exceptions import InvalidEventError
    from segment_bridge.translate import translate_record

    (translation,) = translate_record(line, MAPPING)
    assert translation.refusal is not None
    assert translation.refusal.message == f"expected a CloudEvent object, got {kind}"
    with pytest.raises(InvalidEventError) as raised:
        parse_event(orjson.loads(line) if not line.startswith(b"[") else orjson.loads(line)[0])
    assert str(raised.value).endswith(f"got {kind}")


def test_a_secret_file_that_is_not_utf8_is_named_without_a_class_name_or_its_bytes(tmp_path: Path) -> None:
    from segment_bridge.exceptions import ConfigurationError
    from segment_bridge.settings import read_secret_file

    path = tmp_path / "write-key"
    path.write_bytes(b"\xff\xfewk_Never-Logged-42")
    with pytest.raises(ConfigurationError) as raised:
        read_secret_file(path, "the write key file")
    message = str(raised.value)
    assert message == f"cannot read the write key file {str(path)!r}: not UTF-8 text"
    assert "Never-Logged" not in message


def test_a_mapping_file_that_is_not_utf8_is_named_without_a_class_name(tmp_path: Path) -> None:
    from segment_bridge.exceptions import ConfigurationError

    path = tmp_path / "mapping.toml"
    path.write_bytes(b"format_version = 1\n# caf\xe9\n")
    with pytest.raises(ConfigurationError) as raised:
        load_mapping(path)
    assert str(raised.value) == f"cannot read mapping file {path}: not UTF-8 text"


@pytest.mark.parametrize("variable", ["TWILIO_AUTH_TOKEN", "TWILIO_SECONDARY_AUTH_TOKEN"])
def test_an_auth_token_file_of_two_lines_is_refused_at_start_without_echoing_it(tmp_path: Path, variable: str) -> None:
    # Otherwise every request would be checked against "token\nother", each answered 403, and Twilio drops 403s.
    from segment_bridge.exceptions import ConfigurationError

    path = tmp_path / "token"
    path.write_text("tw_Token-Never-Logged-1\ntw_Token-Never-Logged-2\n")
    environ = {"TWILIO_AUTH_TOKEN": "tw_primary0123456789", f"{variable}_FILE": str(path)}
    if variable == "TWILIO_AUTH_TOKEN":
        del environ["TWILIO_AUTH_TOKEN"]
    with pytest.raises(ConfigurationError) as raised:
        ServerConfig.from_env(environ, public_url="https://bridge.example.com/events")
    assert str(raised.value) == f"{variable} contains whitespace; an Auth Token is a single token"
    assert "Never-Logged" not in str(raised.value)
