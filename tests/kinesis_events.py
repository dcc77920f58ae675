"""Lambda events as AWS documents them for a Kinesis event source mapping, built for the Lambda handler's tests.

Shape (https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html): ``{"Records": [{"kinesis":
{"kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data" (base64), "approximateArrivalTimestamp"},
"eventSource": "aws:kinesis", "eventVersion", "eventID": "<shardId>:<sequenceNumber>", "eventName", "invokeIdentityArn",
"awsRegion", "eventSourceARN"}]}``. The tests check every event they build with aws-lambda-powertools' models, an
independent reading of the same documentation.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/twilio-events"
ROLE_ARN = "arn:aws:iam::123456789012:role/segment-bridge-function"
SHARD = "shardId-000000000000"


@dataclass(frozen=True)
class KinesisRecord:
    """One record as a Kinesis consumer sees it: raw data bytes (or bad base64 text) plus its coordinates."""

    data: bytes | str  # bytes are base64-encoded as Lambda does; a str is put in as is (to test bad base64)
    sequence_number: str
    partition_key: str = "CA0"
    shard_id: str = SHARD
    arrival: float = 1_767_225_600.0


def encoded(event: dict[str, Any]) -> bytes:
    """A CloudEvent as Twilio's sink writes it into a record: compact JSON bytes."""
    return orjson.dumps(event)


def sequence_numbers(count: int, start: int = 0) -> list[str]:
    """Realistic 56-digit Kinesis sequence numbers, increasing."""
    return [
        str(49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898 + 10**6 * (start + i))
        for i in range(count)
    ]


def lambda_record(record: KinesisRecord, *, stream_arn: str = STREAM_ARN) -> dict[str, Any]:
    """The Lambda event's entry for one Kinesis record."""
    data = record.data if isinstance(record.data, str) else base64.b64encode(record.data).decode()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": record.sequence_number,
            "data": data,
            "approximateArrivalTimestamp": record.arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{record.shard_id}:{record.sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": ROLE_ARN,
        "awsRegion": stream_arn.split(":")[3],
        "eventSourceARN": stream_arn,
    }


def lambda_event(records: Iterable[KinesisRecord], *, stream_arn: str = STREAM_ARN) -> dict[str, Any]:
    """The whole event one invocation receives."""
    return {"Records": [lambda_record(record, stream_arn=stream_arn) for record in records]}


class FakeContext:
    """Lambda's context object, reduced to what the handler reads; time runs on the real clock."""

    def __init__(self, remaining_ms: int = 60_000, request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678") -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000
        self.aws_request_id = request_id
        self.function_name = "segment-bridge"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
