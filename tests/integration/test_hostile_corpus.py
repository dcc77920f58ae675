"""Hostile events through every entry point: each ends translated or refused, counted and recorded, the same way.

The same corpus (numbers beyond double range or 64 bits, deep nesting, invalid UTF-8, lone surrogates, duplicate
keys, huge strings, each in every position an event has) goes through `translate` and `replay` (the CLI, in
process), `serve` (the ASGI app) and the Lambda handler (delivering to the stand-in Segment on 127.0.0.1). For each
line, every entry point must reach the outcome the library gives; the refused ones must be in each dead-letter
file, in order; and reading a dead-letter file back must refuse each event again for the same reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kinesis_events import FakeContext, KinesisRecord, lambda_event, sequence_numbers
from standin import StandIn

from segment_bridge import aws_lambda
from segment_bridge.cli import main
from segment_bridge.mapping import load_mapping
from segment_bridge.samples import call_events
from segment_bridge.track import TrackCall
from segment_bridge.translate import translate_record

httpx = pytest.importorskip("httpx")
anyio_from_thread = pytest.importorskip("anyio.from_thread")

from segment_bridge.server import ServerConfig, create_app  # noqa: E402
from segment_bridge.settings import Settings  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_lambda_runtime")

MAPPING = load_mapping()
_MARK = "@@HOSTILE@@"
UNKNOWN_TYPE = "com.example.unknown"

#: Raw JSON fragments, put in place of a value.
FRAGMENTS: dict[str, bytes] = {
    "exponent_beyond_double": b"1e400",
    "negative_exponent_beyond_double": b"-1.5E+309",
    "integer_beyond_double": b"9" * 400,
    "integer_beyond_64_bits": b"123456789012345678901234567890",
    "nested_1000_deep": b"[" * 1000 + b"]" * 1000,
    "nested_2000_deep": b'{"a":' * 2000 + b"1" + b"}" * 2000,
    "invalid_utf8": b'"a\xffb"',
    "lone_surrogate": b'"\\ud800"',
    "huge_string": b'"' + b"x" * 100_000 + b'"',
}


def _place(event: dict[str, Any], position: str) -> None:
    """Put the marker where ``position`` says: an extension attribute, a data field, a parameter, an array."""
    data = event["data"]
    params = data["request"]["parameters"]
    if position == "attribute":
        event["extension"] = _MARK
    elif position == "data":
        data["extra"] = _MARK
    elif position == "parameter":
        params["Extra"] = _MARK
    elif position == "mapped_parameter":
        params["CallStatus"] = _MARK
    elif position == "array_element":
        data["list"] = [1, "two", _MARK]
    else:  # pragma: no cover - a typo in the table below
        raise AssertionError(position)


def _case(name: str, fragment: bytes, position: str, *, event_type: str | None = None) -> bytes:
    event = call_events(1)[0]
    event["id"] = f"EV-{name}-{position}"
    if event_type is not None:
        event["type"] = event_type
    _place(event, position)
    return orjson.dumps(event).replace(orjson.dumps(_MARK), fragment)


def _corpus() -> list[tuple[str, bytes]]:
    lines: list[tuple[str, bytes]] = []
    positions = ["attribute", "data", "parameter", "mapped_parameter", "array_element"]
    for name, fragment in FRAGMENTS.items():
        for position in positions:
            lines.append((f"{name}@{position}", _case(name, fragment, position)))
        # Refused for its type as well: the dead-letter record must still hold it.
        lines.append((f"{name}@data,unknown_type", _case(name, fragment, "data", event_type=UNKNOWN_TYPE)))
    plain = orjson.dumps({**call_events(1)[0], "id": "EV-duplicates"})
    lines.append(("duplicate_type_supported_last", b'{"type":"' + UNKNOWN_TYPE.encode() + b'",' + plain[1:]))
    lines.append(("duplicate_type_unknown_last", plain[:-1] + b',"type":"' + UNKNOWN_TYPE.encode() + b'"}'))
    lines.append(("duplicate_id", plain[:-1] + b',"id":"EV-duplicate-id-last"}'))
    lines.append(("array_with_a_huge_number", b"[" + _case("array", b"1e400", "data") + b"]"))
    lines.append(("not_json_at_all", b"\xff\xfe not json"))
    return lines


CORPUS = _corpus()

#: What the library decides for the lines the issue names; the test also holds every entry point to the library.
EXPECTED = {
    # A number beyond double range is read as Python reads it (infinity): unmapped, the event translates at every
    # entry point (the decoder skips it unread); mapped, it cannot be sent. As integers beyond 64 bits.
    "exponent_beyond_double@data": "translated",
    "exponent_beyond_double@parameter": "translated",
    "exponent_beyond_double@attribute": "translated",
    "exponent_beyond_double@array_element": "translated",
    "exponent_beyond_double@mapped_parameter": "invalid_event",
    "negative_exponent_beyond_double@parameter": "translated",
    "integer_beyond_double@data": "translated",
    "integer_beyond_double@mapped_parameter": "invalid_event",
    "exponent_beyond_double@data,unknown_type": "unknown_event_type",
    "array_with_a_huge_number": "translated",
    "integer_beyond_64_bits@data": "translated",
    "integer_beyond_64_bits@mapped_parameter": "invalid_event",
    "nested_1000_deep@data": "translated",
    "nested_1000_deep@data,unknown_type": "unknown_event_type",
    "nested_2000_deep@parameter": "invalid_json",
    "invalid_utf8@parameter": "invalid_json",
    "lone_surrogate@parameter": "invalid_json",
    "huge_string@parameter": "translated",
    "huge_string@mapped_parameter": "message_too_large",
    "duplicate_type_supported_last": "translated",
    "duplicate_type_unknown_last": "unknown_event_type",
}


def _outcome(raw: bytes) -> str:
    (translation,) = translate_record(raw, MAPPING)
    return "translated" if translation.track is not None else str(translation.refusal.reason)  # type: ignore[union-attr]


REFERENCE = {name: _outcome(raw) for name, raw in CORPUS}
REFUSED = [REFERENCE[name] for name, _ in CORPUS if REFERENCE[name] != "translated"]


def _translated_ids() -> set[str]:
    ids = set()
    for _, raw in CORPUS:
        (translation,) = translate_record(raw, MAPPING)
        if translation.track is not None:
            ids.add(translation.track.message_id)
    return ids


TRANSLATED_IDS = _translated_ids()


def test_the_library_decides_as_the_issue_says() -> None:
    assert {name: REFERENCE[name] for name in EXPECTED} == EXPECTED
    # The corpus holds both outcomes, and every refusal in user words.
    assert "translated" in REFERENCE.values() and REFUSED
    for _, raw in CORPUS:
        (translation,) = translate_record(raw, MAPPING)
        if translation.refusal is not None:
            message = translation.refusal.message
            for internal in ("_Call", "instance of", "valid tuple", "surrogates not allowed", "infinity"):
                assert internal not in message, message


def _reasons(dead_letter: Path) -> list[str]:
    return [json.loads(line)["reason"] for line in dead_letter.read_bytes().splitlines()]


@contextlib.contextmanager
def _std(stdin: bytes = b"") -> Iterator[tuple[io.BytesIO, io.StringIO]]:
    """Run the CLI in process with its own standard streams."""
    out, err = io.BytesIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    stdin_text, stdout_text = io.TextIOWrapper(io.BytesIO(stdin)), io.TextIOWrapper(out)
    sys.stdin, sys.stdout, sys.stderr = stdin_text, stdout_text, err
    try:
        yield out, err
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        stdout_text.flush()
        stdout_text.detach()  # keeps `out` open for the caller


def _translate_cli(path: Path, dead_letter: Path) -> tuple[int, bytes, str]:
    with _std() as (out, err):
        code = main(["translate", "--quiet", "--dead-letter", str(dead_letter), str(path)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"".join(raw + b"\n" for _, raw in CORPUS))
    return path


def test_translate(corpus_file: Path, tmp_path: Path) -> None:
    dead_letter = tmp_path / "refused.jsonl"
    code, out, err = _translate_cli(corpus_file, dead_letter)
    assert code == 1, err
    assert {json.loads(line)["messageId"] for line in out.splitlines()} == TRANSLATED_IDS
    assert _reasons(dead_letter) == REFUSED
    assert f"translated {len(TRANSLATED_IDS)}, acknowledged 0, refused {len(REFUSED)}" in err
    # The dead-letter file, read back, refuses each event again for the same reason.
    again = tmp_path / "again.jsonl"
    code, out, _ = _translate_cli(dead_letter, again)
    assert code == 1 and out == b""
    assert _reasons(again) == REFUSED


def test_replay(corpus_file: Path, tmp_path: Path) -> None:
    dead_letter = tmp_path / "refused.jsonl"
    with _std() as (out, err):
        code = main(["replay", "--dry-run", "--quiet", "--dead-letter", str(dead_letter), str(corpus_file)])
    assert code == 1, err.getvalue()
    sent = {message["messageId"] for line in out.getvalue().splitlines() for message in json.loads(line)["batch"]}
    assert sent == TRANSLATED_IDS
    assert _reasons(dead_letter) == REFUSED
    assert f"shown {len(TRANSLATED_IDS)}, acknowledged 0, refused {len(REFUSED)}" in err.getvalue()
    with _std() as (out, err):
        code = main(["replay", "--dry-run", "--quiet", str(dead_letter)])
    assert code == 1 and out.getvalue() == b""
    assert f"shown 0, acknowledged 0, refused {len(REFUSED)}" in err.getvalue()


class _Recording:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def send(self, batch: list[TrackCall]) -> None:
        self.ids.extend(call.message_id for call in batch)

    def close(self) -> None:
        pass


def test_serve(tmp_path: Path) -> None:
    dead_letter = tmp_path / "refused.jsonl"
    config = ServerConfig.from_env({}, insecure_no_signature=True, dead_letter=dead_letter, delivery_budget=2.0)
    transport = _Recording()
    app = create_app(Settings(), config, transport=transport, mapping=MAPPING)
    outcomes: list[str] = []
    with contextlib.ExitStack() as stack:
        portal = stack.enter_context(anyio_from_thread.start_blocking_portal())
        stack.enter_context(portal.wrap_async_context_manager(app.router.lifespan_context(app)))
        client = stack.enter_context(
            portal.wrap_async_context_manager(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge")
            )
        )
        for name, raw in CORPUS:
            response = portal.call(lambda raw=raw: client.post("/events", content=raw))
            answer = response.json()
            if response.status_code == 400:  # a body that is no CloudEvent: refused and recorded whole
                outcomes.append(answer["error"])
                continue
            assert response.status_code == 200, (name, answer)
            (event,) = answer["events"]
            outcomes.append("translated" if event["outcome"] == "delivered" else event["reason"])
    assert outcomes == [REFERENCE[name] for name, _ in CORPUS]
    assert set(transport.ids) == TRANSLATED_IDS
    assert _reasons(dead_letter) == REFUSED
    again = tmp_path / "again.jsonl"
    code, out, _ = _translate_cli(dead_letter, again)
    assert code == 1 and out == b""
    assert _reasons(again) == REFUSED


def test_lambda(
    lambda_env: pytest.MonkeyPatch, standin: StandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead_letter = tmp_path / "refused.jsonl"
    lambda_env.setenv("SEGMENT_BRIDGE_DEAD_LETTER", str(dead_letter))
    numbers = sequence_numbers(len(CORPUS))
    event = lambda_event(KinesisRecord(raw, number) for (_, raw), number in zip(CORPUS, numbers, strict=True))
    answer = aws_lambda.handler(event, FakeContext())
    assert answer == {"batchItemFailures": []}
    assert standin.accepted_ids == TRANSLATED_IDS
    assert _reasons(dead_letter) == REFUSED
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert sorted(line["reason"] for line in logged if line["event"] == "refused") == sorted(REFUSED)
