"""The Lambda handler for Twilio's Kinesis sink, against the stand-in Segment on 127.0.0.1.

Lambda events are built as AWS documents them (tests/kinesis_events.py) and checked with aws-lambda-powertools'
Kinesis models; powertools' own ``BatchProcessor`` is the oracle for the partial batch response.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kinesis_events import FakeContext, KinesisRecord, encoded, lambda_event, sequence_numbers
from standin import Fault, StandIn

from segment_bridge import aws_lambda
from segment_bridge.catalog import DEPRECATED_PREFIX
from segment_bridge.exceptions import ConfigurationError, InvalidEventError, MappingError
from segment_bridge.mapping import load_mapping
from segment_bridge.samples import call_events, iter_call_events, sink_test_event
from segment_bridge.translate import translate_record

powertools_data = pytest.importorskip("aws_lambda_powertools.utilities.data_classes")
powertools_models = pytest.importorskip("aws_lambda_powertools.utilities.parser.models")
powertools_batch = pytest.importorskip("aws_lambda_powertools.utilities.batch")

HASH_KEY = "hk_Hash-Key-Never-Logged-42"


# -- fixtures and helpers ---------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("fresh_lambda_runtime")


@pytest.fixture
def env(lambda_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    lambda_env.setenv("SEGMENT_BRIDGE_HASH_KEY", HASH_KEY)
    return lambda_env


def lines(out: str) -> list[dict[str, Any]]:
    """The handler's structured log lines (one JSON object per line)."""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def of(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in records if line["event"] == event]


def message_ids(events: list[dict[str, Any]]) -> set[str]:
    mapping = load_mapping()
    ids = set()
    for event in events:
        (translation,) = translate_record(encoded(event), mapping)
        assert translation.track is not None
        ids.add(translation.track.message_id)
    return ids


def retyped(event: dict[str, Any], event_type: str, suffix: str) -> dict[str, Any]:
    return {**event, "type": event_type, "id": event["id"] + suffix}


SUPPORTED = list(iter_call_events(8))
DEPRECATED = retyped(call_events(5)[0], DEPRECATED_PREFIX + "initiated", "-dep")
API_REQUEST = retyped(call_events(5)[1], "com.twilio.voice.api-request.call.created", "-api")
UNKNOWN = retyped(call_events(5)[2], "com.example.unknown", "-unk")
INVALID = {"specversion": "1.0", "type": "com.twilio.voice.status-callback.call.completed", "id": "EV1", "source": "/x"}


def mixed_records() -> tuple[list[KinesisRecord], dict[str, str]]:
    """Supported events interleaved with every kind of refused record and the sink test event.

    Returns the records and, for each refused record's sequence number, the reason it must be refused with.
    """
    payloads: list[tuple[bytes | str, str | None]] = [
        (encoded(SUPPORTED[0]), None),
        (encoded(DEPRECATED), "deprecated_event_type"),
        (encoded(SUPPORTED[1]), None),
        ("bm90IGJhc2U2NA!!", "invalid_event"),  # not base64
        (encoded(SUPPORTED[2]), None),
        (b"{not json", "invalid_json"),
        (encoded(SUPPORTED[3]), None),
        (encoded(API_REQUEST), "not_segment_compatible"),
        (encoded(sink_test_event()), None),
        (encoded(SUPPORTED[4]), None),
        (encoded(UNKNOWN), "unknown_event_type"),
        (encoded(SUPPORTED[5]), None),
        (encoded(INVALID), "invalid_event"),
        (encoded(SUPPORTED[6]), None),
        (encoded(SUPPORTED[7]), None),
    ]
    seqs = sequence_numbers(len(payloads))
    records = [
        KinesisRecord(data, seq, partition_key=f"pk{i % 3}")
        for i, ((data, _), seq) in enumerate(zip(payloads, seqs, strict=True))
    ]
    refused = {seq: reason for (_, reason), seq in zip(payloads, seqs, strict=True) if reason}
    return records, refused


def supported_seqs(records: list[KinesisRecord], refused: dict[str, str]) -> list[str]:
    test_event = encoded(sink_test_event())
    return [r.sequence_number for r in records if r.sequence_number not in refused and r.data != test_event]


def powertools_response(event: dict[str, Any], failing: set[str]) -> dict[str, Any]:
    """What powertools' BatchProcessor answers when exactly the ``failing`` sequence numbers fail."""
    processor = powertools_batch.BatchProcessor(event_type=powertools_batch.EventType.KinesisDataStreams)

    def record_handler(record: Any) -> None:
        if record.kinesis.sequence_number in failing:
            raise RuntimeError("not delivered")

    return dict(
        powertools_batch.process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=FakeContext()
        )
    )


# -- the event shape --------------------------------------------------------------------------------------------


def test_built_events_match_powertools_kinesis_models() -> None:
    records, _ = mixed_records()
    event = lambda_event(records)
    parsed = powertools_data.KinesisStreamEvent(event)
    for built, record in zip(records, parsed.records, strict=True):
        assert record.event_source == "aws:kinesis"
        assert record.kinesis.sequence_number == built.sequence_number
        assert record.event_id == f"{built.shard_id}:{built.sequence_number}"
        if isinstance(built.data, bytes):
            assert record.kinesis.data_as_bytes() == built.data
    # The parser model decodes base64 eagerly: every record but the one with bad base64 validates.
    good = [entry for entry, built in zip(event["Records"], records, strict=True) if isinstance(built.data, bytes)]
    model = powertools_models.KinesisDataStreamModel.model_validate({"Records": good})
    assert [r.kinesis.sequenceNumber for r in model.Records] == [
        b.sequence_number for b in records if isinstance(b.data, bytes)
    ]


# -- delivery outcomes ------------------------------------------------------------------------------------------


def test_mixed_records_all_accepted(env: pytest.MonkeyPatch, standin: StandIn, tmp_path, capsys) -> None:
    dead_letter = tmp_path / "dead-letter.jsonl"
    env.setenv("SEGMENT_BRIDGE_DEAD_LETTER", str(dead_letter))
    records, refused = mixed_records()
    event = lambda_event(records)

    answer = aws_lambda.handler(event, FakeContext())

    assert answer == {"batchItemFailures": []}
    assert answer == powertools_response(event, set())
    assert standin.accepted_ids == message_ids(SUPPORTED)
    assert standin.violations == []
    assert len(standin.requests) == 1  # every record's events in one request
    log = lines(capsys.readouterr().out)
    refusals = of(log, "refused")
    assert {line["sequence_number"]: line["reason"] for line in refusals} == refused
    assert all(line["hint"] and line["shard_id"] == "shardId-000000000000" for line in refusals)
    (acknowledged,) = of(log, "acknowledged")
    assert acknowledged["test_id"] == "f6a5d5a0-0000-4000-8000-000000000001"
    (summary,) = of(log, "invocation")
    assert summary["translated"] == summary["delivered"] == len(SUPPORTED)
    assert summary["acknowledged"] == 1
    assert summary["refused"] == len(refused)
    assert summary["failed_records"] == 0
    assert sum(summary["refused_by_reason"].values()) == len(refused)
    kept = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert sorted(r["reason"] for r in kept) == sorted(refused.values())
    assert DEPRECATED in [r["event"] for r in kept]  # the original event, replayable


def test_transient_failure_returns_exactly_the_affected_records(env: pytest.MonkeyPatch, standin: StandIn) -> None:
    env.setenv("SEGMENT_BRIDGE_BATCH_SIZE", "4")
    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "2")
    # Request 1 (events 0-3) goes through; both attempts at request 2 (events 4-7) get a 500.
    standin.script(None, Fault.ERROR_500, Fault.ERROR_500)
    records, refused = mixed_records()
    event = lambda_event(records)

    answer = aws_lambda.handler(event, FakeContext())

    affected = supported_seqs(records, refused)[4:8]
    assert answer == {"batchItemFailures": [{"itemIdentifier": seq} for seq in affected]}
    assert answer == powertools_response(event, set(affected))
    assert standin.accepted_ids == message_ids(SUPPORTED[:4])


def test_transient_failure_recovered_within_the_invocation(env: pytest.MonkeyPatch, standin: StandIn) -> None:
    standin.script(Fault.ERROR_500, Fault.DROP_BEFORE, 503)
    records, _ = mixed_records()

    answer = aws_lambda.handler(lambda_event(records), FakeContext())

    assert answer == {"batchItemFailures": []}
    assert standin.accepted_ids == message_ids(SUPPORTED)
    assert [r.status for r in standin.requests] == [500, None, 503, 200]


def test_permanent_refusal_fails_the_records_for_lambda_to_retry(
    env: pytest.MonkeyPatch, standin: StandIn, capsys
) -> None:
    env.setenv("SEGMENT_WRITE_KEY", "a-different-key")
    records, refused = mixed_records()

    answer = aws_lambda.handler(lambda_event(records), FakeContext())

    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == supported_seqs(records, refused)
    assert standin.accepted_ids == set()
    (failed,) = of(lines(capsys.readouterr().out), "delivery_failed")
    assert failed["status"] == 401
    assert failed["attempts"] == 1  # a 401 is not retried within the invocation


def test_message_too_large_alone_is_refused_not_retried(
    env: pytest.MonkeyPatch, standin: StandIn, tmp_path, capsys
) -> None:
    env.setenv("SEGMENT_BRIDGE_BATCH_SIZE", "1")
    env.setenv("SEGMENT_BRIDGE_DEAD_LETTER", str(tmp_path / "dl.jsonl"))
    standin.script(None, 413)
    records = [KinesisRecord(encoded(e), s) for e, s in zip(SUPPORTED[:3], sequence_numbers(3), strict=True)]

    answer = aws_lambda.handler(lambda_event(records), FakeContext())

    assert answer == {"batchItemFailures": []}
    assert standin.accepted_ids == message_ids([SUPPORTED[0], SUPPORTED[2]])
    (refusal,) = of(lines(capsys.readouterr().out), "refused")
    assert refusal["reason"] == "message_too_large"
    assert refusal["sequence_number"] == records[1].sequence_number
    (kept,) = [json.loads(line) for line in (tmp_path / "dl.jsonl").read_text().splitlines()]
    assert kept["event"] == SUPPORTED[1]  # the CloudEvent, so replay can read it back


def test_duplicate_records_are_sent_once_and_reported_together(env: pytest.MonkeyPatch, standin: StandIn) -> None:
    seqs = sequence_numbers(3)
    records = [
        KinesisRecord(encoded(SUPPORTED[0]), seqs[0]),
        KinesisRecord(encoded(SUPPORTED[1]), seqs[1]),
        KinesisRecord(encoded(SUPPORTED[0]), seqs[2]),
    ]  # Twilio delivers at least once

    assert aws_lambda.handler(lambda_event(records), FakeContext()) == {"batchItemFailures": []}
    assert [r.messages for r in standin.requests] == [2]

    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "1")
    aws_lambda.reset_runtime()
    standin.script(Fault.ERROR_500)
    answer = aws_lambda.handler(lambda_event(records), FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": s} for s in seqs]}


def test_empty_batch(env: pytest.MonkeyPatch, standin: StandIn) -> None:
    assert aws_lambda.handler({"Records": []}, FakeContext()) == {"batchItemFailures": []}
    assert standin.requests == []


# -- time -------------------------------------------------------------------------------------------------------


def test_no_time_left_sends_nothing_and_fails_the_records(env: pytest.MonkeyPatch, standin: StandIn, capsys) -> None:
    records, refused = mixed_records()

    # 1.2 s left, less the default 1.5 s safety margin: nothing may start.
    answer = aws_lambda.handler(lambda_event(records), FakeContext(remaining_ms=1200))

    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == supported_seqs(records, refused)
    assert standin.requests == []
    (failed,) = of(lines(capsys.readouterr().out), "delivery_failed")
    assert failed["kind"] == "deadline"


def test_a_retry_after_beyond_the_deadline_gives_up_at_once(env: pytest.MonkeyPatch, write_key: str) -> None:
    with StandIn(write_key=write_key, retry_after=30) as slow:
        env.setenv("SEGMENT_HOST", slow.url)
        slow.script(Fault.RATE_LIMIT)
        records = [KinesisRecord(encoded(SUPPORTED[0]), sequence_numbers(1)[0])]
        started = time.monotonic()

        answer = aws_lambda.handler(lambda_event(records), FakeContext(remaining_ms=5000))

        # Waiting out the 30 s Retry-After would take 30 s; giving up at once takes well under that.
        assert time.monotonic() - started < 15
        assert answer == {"batchItemFailures": [{"itemIdentifier": records[0].sequence_number}]}
        assert len(slow.requests) == 1


# -- identifiers ------------------------------------------------------------------------------------------------


def test_missing_sequence_number_falls_back_on_the_event_id(env: pytest.MonkeyPatch, standin: StandIn) -> None:
    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "1")
    standin.script(Fault.ERROR_500)
    seq = sequence_numbers(1)[0]
    event = lambda_event([KinesisRecord(encoded(SUPPORTED[0]), seq)])
    event["Records"][0]["kinesis"]["sequenceNumber"] = ""

    assert aws_lambda.handler(event, FakeContext()) == {"batchItemFailures": [{"itemIdentifier": seq}]}


def test_an_undelivered_record_without_any_identifier_fails_the_whole_batch(
    env: pytest.MonkeyPatch, standin: StandIn, capsys
) -> None:
    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "1")
    event = lambda_event([KinesisRecord(encoded(SUPPORTED[0]), "")])
    del event["Records"][0]["eventID"]

    # Delivered: nothing to name, nothing to fail.
    assert aws_lambda.handler(event, FakeContext()) == {"batchItemFailures": []}

    # Not delivered: an empty itemIdentifier would fail the batch anyway; raising says why.
    standin.script(Fault.ERROR_500)
    with pytest.raises(InvalidEventError, match="no sequenceNumber"):
        aws_lambda.handler(event, FakeContext())
    assert of(lines(capsys.readouterr().out), "unidentifiable_record")


def test_identifiers_are_never_empty(env: pytest.MonkeyPatch, standin: StandIn) -> None:
    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "1")
    standin.script(Fault.ERROR_500)
    records, _ = mixed_records()
    event = lambda_event(records)
    for index, entry in enumerate(event["Records"]):
        if index % 2:
            entry["kinesis"].pop("sequenceNumber")

    answer = aws_lambda.handler(event, FakeContext())

    identifiers = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert identifiers
    assert all(isinstance(i, str) and i for i in identifiers)
    assert set(identifiers) <= {r.sequence_number for r in records}


# -- configuration ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "error", "words"),
    [
        ("SEGMENT_WRITE_KEY", "", ConfigurationError, "SEGMENT_WRITE_KEY"),
        ("SEGMENT_HOST", "ftp://segment", ConfigurationError, "http(s) URL"),
        ("SEGMENT_BRIDGE_MAPPING", "/nonexistent/mapping.toml", ConfigurationError, "cannot read mapping"),
        ("SEGMENT_BRIDGE_MAX_ATTEMPTS", "many", ConfigurationError, "SEGMENT_BRIDGE_MAX_ATTEMPTS"),
        ("SEGMENT_BRIDGE_SAFETY_MARGIN_MS", "-5", ConfigurationError, "between"),
        ("SEGMENT_BRIDGE_BATCH_SIZE", "5000", ConfigurationError, "SEGMENT_BRIDGE_BATCH_SIZE"),
        ("SEGMENT_BRIDGE_DEAD_LETTER", "/nonexistent/dir/dl.jsonl", ConfigurationError, "missing or read-only"),
        ("SEGMENT_BRIDGE_LOG_LEVEL", "chatty", ConfigurationError, "SEGMENT_BRIDGE_LOG_LEVEL"),
    ],
)
def test_misconfiguration_is_one_log_line_and_a_failed_invocation(
    env: pytest.MonkeyPatch, standin: StandIn, write_key: str, capsys, name: str, value: str, error: type, words: str
) -> None:
    env.setenv(name, value)
    records, _ = mixed_records()

    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        aws_lambda.handler(lambda_event(records), FakeContext())

    captured = capsys.readouterr()
    (line,) = lines(captured.out)
    assert line["event"] == "configuration_error"
    assert line["level"] == "error"
    assert words in line["message"]
    assert write_key not in captured.out + captured.err
    assert standin.requests == []


def test_invalid_mapping_file(env: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text("format_version = 1\nmessage_id_prefx = 'typo'\n")
    env.setenv("SEGMENT_BRIDGE_MAPPING", str(mapping))
    with pytest.raises(MappingError):
        aws_lambda.handler({"Records": []}, FakeContext())
    (line,) = lines(capsys.readouterr().out)
    assert line["event"] == "configuration_error"
    assert line["error"] == "MappingError"


def test_configuration_is_validated_once_per_cold_start(
    env: pytest.MonkeyPatch, standin: StandIn, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    loads = []

    def counting_load(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return load_mapping(*args, **kwargs)

    monkeypatch.setattr(aws_lambda, "load_mapping", counting_load)
    records = [KinesisRecord(encoded(e), s) for e, s in zip(SUPPORTED[:2], sequence_numbers(2), strict=True)]
    for _ in range(3):
        assert aws_lambda.handler(lambda_event(records), FakeContext()) == {"batchItemFailures": []}
    assert len(loads) == 1
    assert len(of(lines(capsys.readouterr().out), "cold_start")) == 1


def test_a_failed_cold_start_is_not_cached(env: pytest.MonkeyPatch, standin: StandIn) -> None:
    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigurationError):
        aws_lambda.handler({"Records": []}, FakeContext())
    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "2")
    assert aws_lambda.handler({"Records": []}, FakeContext()) == {"batchItemFailures": []}


def test_not_a_kinesis_event(env: pytest.MonkeyPatch, capsys) -> None:
    with pytest.raises(ConfigurationError, match="Records"):
        aws_lambda.handler({"detail-type": "Scheduled Event"}, FakeContext())
    assert of(lines(capsys.readouterr().out), "configuration_error")


def test_a_record_without_kinesis_data_is_refused(env: pytest.MonkeyPatch, standin: StandIn, capsys) -> None:
    event = lambda_event([KinesisRecord(encoded(SUPPORTED[0]), sequence_numbers(1)[0])])
    del event["Records"][0]["kinesis"]["data"]
    assert aws_lambda.handler(event, FakeContext()) == {"batchItemFailures": []}
    (line,) = of(lines(capsys.readouterr().out), "refused")
    assert line["message"].startswith("kinesis.data")


# -- secrets ----------------------------------------------------------------------------------------------------


def test_secrets_never_logged(env: pytest.MonkeyPatch, standin: StandIn, write_key: str, tmp_path, capsys) -> None:
    env.setenv("SEGMENT_BRIDGE_DEAD_LETTER", str(tmp_path / "dl.jsonl"))
    env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "1")
    env.setenv("SEGMENT_BRIDGE_LOG_LEVEL", "DEBUG")
    standin.script(Fault.ERROR_500, Fault.RATE_LIMIT)
    records, _ = mixed_records()
    aws_lambda.handler(lambda_event(records), FakeContext())
    aws_lambda.handler(lambda_event(records), FakeContext())
    captured = capsys.readouterr()
    logged = captured.out + captured.err + (tmp_path / "dl.jsonl").read_text()
    assert write_key not in logged
    assert HASH_KEY not in logged
