"""End to end through a local Kinesis: records put as Twilio's sink would, read back, handed to the Lambda handler.

moto runs in server mode on 127.0.0.1 (a free port), boto3 talks to it over HTTP with dummy credentials, and the
stand-in Segment on 127.0.0.1 receives what the handler sends. The Lambda event is built from GetRecords the way
Lambda's event source mapping builds it, and checked with aws-lambda-powertools' parser model.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
from kinesis_events import FakeContext
from standin import Fault, StandIn

from segment_bridge import aws_lambda
from segment_bridge.catalog import DEPRECATED_PREFIX
from segment_bridge.mapping import load_mapping
from segment_bridge.samples import iter_call_events, sink_test_event
from segment_bridge.translate import translate_record

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server")
powertools_models = pytest.importorskip("aws_lambda_powertools.utilities.parser.models")

pytestmark = pytest.mark.slow

STREAM = "twilio-events"


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A boto3 Kinesis client for a moto server on 127.0.0.1, stopped after the test."""
    # Dummy credentials, no profile, no instance metadata: nothing may reach AWS or read the developer's config.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        monkeypatch.delenv(name, raising=False)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        yield boto3.client("kinesis", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        # moto keeps its backends per process, not per server: wipe them so the next test starts empty.
        requests.post(f"http://127.0.0.1:{port}/moto-api/reset", timeout=5).raise_for_status()
    finally:
        server.stop()
        # ThreadedMotoServer.stop() ends serve_forever but leaves the listening socket open.
        if server._server is not None:
            server._server.server_close()


pytestmark = pytest.mark.usefixtures("fresh_lambda_runtime")


def create_stream(kinesis: Any, shards: int) -> str:
    kinesis.create_stream(StreamName=STREAM, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return str(kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"])


def partition_key(event: dict[str, Any]) -> str:
    data = event.get("data")
    return str(data["sid"]) if isinstance(data, dict) and data.get("sid") else str(event["id"])


def put_as_twilio(kinesis: Any, events: list[dict[str, Any]]) -> None:
    """One CloudEvent per record, JSON bytes. Twilio's partition key is undocumented; the call SID spreads calls."""
    entries = [{"Data": orjson.dumps(event), "PartitionKey": partition_key(event)} for event in events]
    answer = kinesis.put_records(StreamName=STREAM, Records=entries)
    assert answer["FailedRecordCount"] == 0


def read_shard(kinesis: Any, shard_id: str, *, after: str | None = None, at: str | None = None) -> list[Any]:
    if at is not None:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=at
        )
    else:
        iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    return list(kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=100)["Records"])


def lambda_event_from(records: list[Any], shard_id: str, stream_arn: str) -> dict[str, Any]:
    """The event Lambda's Kinesis event source mapping builds from GetRecords output."""
    event = {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode(),
                    "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/segment-bridge-function",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
            }
            for record in records
        ]
    }
    # The independent reading of AWS's documented shape: decodes each record's base64 back to our bytes.
    parsed = powertools_models.KinesisDataStreamModel.model_validate(event)
    assert [r.kinesis.data for r in parsed.Records] == [r["Data"] for r in records]
    return event


def expected_ids(events: list[dict[str, Any]]) -> set[str]:
    mapping = load_mapping()
    return {
        t.track.message_id
        for event in events
        for t in translate_record(orjson.dumps(event), mapping)
        if t.track is not None
    }


def test_twilio_records_reach_segment_through_kinesis_and_lambda(
    kinesis: Any, lambda_env: pytest.MonkeyPatch, standin: StandIn
) -> None:
    stream_arn = create_stream(kinesis, shards=2)
    supported = list(iter_call_events(24))
    deprecated = {**supported[0], "type": DEPRECATED_PREFIX + "initiated", "id": supported[0]["id"] + "-dep"}
    put_as_twilio(kinesis, [sink_test_event(), *supported[:12], deprecated, *supported[12:]])

    shards = [shard["ShardId"] for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]]
    seen = []
    for shard_id in shards:
        records = read_shard(kinesis, shard_id)
        seen.append(len(records))
        if records:
            answer = aws_lambda.handler(lambda_event_from(records, shard_id, stream_arn), FakeContext())
            assert answer == {"batchItemFailures": []}

    assert sum(seen) == len(supported) + 2
    assert all(seen), "every shard got records, so the handler ran once per shard"
    assert standin.accepted_ids == expected_ids(supported)
    assert max(standin.accepted.values()) == 1
    assert standin.violations == []


def test_failed_records_are_read_again_from_the_checkpoint_and_delivered(
    kinesis: Any, lambda_env: pytest.MonkeyPatch, standin: StandIn
) -> None:
    lambda_env.setenv("SEGMENT_BRIDGE_BATCH_SIZE", "4")
    lambda_env.setenv("SEGMENT_BRIDGE_MAX_ATTEMPTS", "1")
    stream_arn = create_stream(kinesis, shards=1)
    events = list(iter_call_events(12))
    put_as_twilio(kinesis, events)
    (shard_id,) = [shard["ShardId"] for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]]
    records = read_shard(kinesis, shard_id)
    standin.script(None, Fault.ERROR_500)  # the second request (records 4-7) fails

    answer = aws_lambda.handler(lambda_event_from(records, shard_id, stream_arn), FakeContext())

    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed == [r["SequenceNumber"] for r in records[4:8]]
    assert standin.accepted_ids == expected_ids(events[:4] + events[8:])

    # Lambda checkpoints before the lowest failed sequence number and sends it and every later record again.
    retry = read_shard(kinesis, shard_id, at=min(failed, key=int))
    assert [r["SequenceNumber"] for r in retry] == [r["SequenceNumber"] for r in records[4:]]
    answer = aws_lambda.handler(lambda_event_from(retry, shard_id, stream_arn), FakeContext())

    assert answer == {"batchItemFailures": []}
    assert standin.accepted_ids == expected_ids(events)
    # Records 8-11 went twice, with the same messageIds: Segment keeps one of each.
    assert sorted(standin.accepted.values()) == [1] * 8 + [2] * 4
