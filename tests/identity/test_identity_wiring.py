"""The lookup as the delivery engine's batch stage in translate, replay, serve and the Lambda handler.

A real SQLite file; a path that cannot be opened stands for a database that is down.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from identityhelp import QUERY, call_event, phone, sqlite_customers

from segment_bridge import Settings, TrackCall, load_mapping
from segment_bridge._resources import packaged_mapping
from segment_bridge.cli import main
from segment_bridge.identity import identity_stage, lookup_from_env
from segment_bridge.replay import RecordTranslations, replay
from segment_bridge.sources import iter_records

ROWS = [(phone(1), "user-1"), (phone(2), "user-2")]


class Recording:
    """A transport that accepts every batch and keeps its messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def send(self, batch: Sequence[TrackCall]) -> None:
        with self.lock:
            self.messages.extend(call.message for call in batch)

    def close(self) -> None:
        pass


def _mapping(tmp_path: Path, on_error: str = "send") -> Path:
    path = tmp_path / "lookup.toml"
    lookup = f'\n[identity.lookup]\nquery = "{QUERY}"\non_error = "{on_error}"\n'

    path.write_text(packaged_mapping().read_text().replace("user_id = []", "user_id = []" + lookup))
    return path


def _events(tmp_path: Path, numbers: Sequence[int]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(call_event(phone(n), i)) + b"\n" for i, n in enumerate(numbers)))
    return path


def _down(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'no-such-dir' / 'customers.db'}"


# -- translate ------------------------------------------------------------------------------------------------------


def test_translate_shows_the_looked_up_user_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setenv("SEGMENT_BRIDGE_IDENTITY_URL", sqlite_customers(tmp_path / "c.db", ROWS))
    status = main(["translate", "--mapping", str(_mapping(tmp_path)), str(_events(tmp_path, [1, 9, 2]))])
    out, err = capsysbinary.readouterr()
    assert status == 0
    assert [orjson.loads(line).get("userId") for line in out.splitlines()] == ["user-1", None, "user-2"]
    assert b"identity lookup: 2 found, 1 not found, 0 with two user ids, 0 failed (1 query)" in err


@pytest.mark.parametrize(
    ("mapping", "url", "problem"),
    [
        ("default", "good", b"has no [identity.lookup] query"),
        ("lookup", "down", b"identity lookup (sqlite:///"),
        ("lookup", "not a url :pw@", b"is not a database URL"),
    ],
)
def test_a_lookup_that_cannot_work_stops_translate_and_replay_at_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    mapping: str,
    url: str,
    problem: bytes,
) -> None:
    database = {"good": sqlite_customers(tmp_path / "c.db", ROWS), "down": _down(tmp_path)}.get(url, url)
    monkeypatch.setenv("SEGMENT_BRIDGE_IDENTITY_URL", database)
    options = [] if mapping == "default" else ["--mapping", str(_mapping(tmp_path))]
    events = str(_events(tmp_path, [1]))
    for command in (["translate", *options, events], ["replay", "--dry-run", *options, events]):
        assert main(command) == 2
        out, err = capsysbinary.readouterr()
        assert out == b""
        (line,) = err.splitlines()
        assert line.startswith(b"segment-bridge: error: ")
        assert problem in line


# -- replay ---------------------------------------------------------------------------------------------------------


def _replay(tmp_path: Path, url: str, on_error: str, transport: Recording, **options: Any) -> Any:
    mapping = load_mapping(_mapping(tmp_path, on_error))
    lookup = lookup_from_env({"SEGMENT_BRIDGE_IDENTITY_URL": url}, mapping, check=False)
    assert lookup is not None
    items = RecordTranslations(iter_records([str(_events(tmp_path, [1, 9, 2, 1]))]), mapping)
    try:
        return replay(items, transport, stage=identity_stage(lookup), **options), lookup.counters
    finally:
        lookup.close()


def test_replay_sends_user_ids_through_the_batch_stage(tmp_path: Path) -> None:
    transport = Recording()
    summary, counters = _replay(tmp_path, sqlite_customers(tmp_path / "c.db", ROWS), "send", transport)
    assert summary.delivered == 4
    assert [m.get("userId") for m in transport.messages] == ["user-1", None, "user-2", "user-1"]
    assert counters.queries == 1


def test_replay_with_the_database_down_sends_without_user_ids_by_default(tmp_path: Path) -> None:
    transport = Recording()
    summary, counters = _replay(tmp_path, _down(tmp_path), "send", transport)
    assert summary.delivered == 4
    assert [m.get("userId") for m in transport.messages] == [None] * 4
    assert counters.failed == 4


def test_replay_with_retry_dead_letters_what_the_lookup_kept_back_and_the_record_replays(tmp_path: Path) -> None:
    from segment_bridge.deadletter import DeadLetterWriter

    transport = Recording()
    dead = tmp_path / "failed.jsonl"
    writer = DeadLetterWriter(dead)
    try:
        summary, _ = _replay(tmp_path, _down(tmp_path), "retry", transport, dead_letter=writer)
    finally:
        writer.close()
    assert transport.messages == []
    assert (summary.delivered, summary.failed, summary.dead_lettered) == (0, 4, 4)
    records = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert {r["reason"] for r in records} == {"delivery_failed"}
    assert records[0]["message"].startswith("not delivered: identity lookup failed: the query failed: unable to open")
    assert "customer database" in records[0]["hint"]
    # Once the database answers, the dead-letter file replays, user ids and all.
    url = sqlite_customers(tmp_path / "c.db", ROWS)
    mapping = load_mapping(_mapping(tmp_path, "retry"))
    lookup = lookup_from_env({"SEGMENT_BRIDGE_IDENTITY_URL": url}, mapping)
    assert lookup is not None
    try:
        again = replay(RecordTranslations(iter_records([str(dead)]), mapping), transport, stage=identity_stage(lookup))
    finally:
        lookup.close()
    assert again.delivered == 4
    assert [m.get("userId") for m in transport.messages] == ["user-1", None, "user-2", "user-1"]


# -- serve ----------------------------------------------------------------------------------------------------------


def _serve(tmp_path: Path, url: str, on_error: str) -> tuple[Any, Recording]:
    from apphelp import AppHarness

    from segment_bridge.server import ServerConfig, create_app

    transport = Recording()
    config = ServerConfig.from_env({}, insecure_no_signature=True, delivery_budget=1.0, dead_letter=None)
    app = create_app(
        Settings(),
        config,
        transport=transport,
        mapping=load_mapping(_mapping(tmp_path, on_error)),
        environ={"SEGMENT_BRIDGE_IDENTITY_URL": url},
    )
    return AppHarness(app), transport


def _post(harness: Any, numbers: Sequence[int]) -> Any:
    body = orjson.dumps([call_event(phone(n), i) for i, n in enumerate(numbers)])
    return harness.call(harness.client.post, "/events", content=body, headers={"Content-Type": "application/json"})


def test_serve_delivers_user_ids_and_exports_the_counts(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    harness, transport = _serve(tmp_path, sqlite_customers(tmp_path / "c.db", ROWS), "send")
    with harness:
        answer = _post(harness, [1, 9])
        assert answer.status_code == 200
        metrics = harness.call(harness.client.get, "/metrics").text
    assert [m.get("userId") for m in transport.messages] == ["user-1", None]
    assert 'segment_bridge_identity_lookups_total{result="found"} 1.0' in metrics
    assert 'segment_bridge_identity_lookups_total{result="not_found"} 1.0' in metrics
    assert "segment_bridge_identity_queries_total 1.0" in metrics


def test_serve_answers_503_when_the_lookup_fails_under_retry_and_200_without_user_id_by_default(
    tmp_path: Path,
) -> None:
    pytest.importorskip("starlette")
    harness, transport = _serve(tmp_path, sqlite_customers(tmp_path / "c.db", ROWS), "retry")
    harness.bridge.lookup._database.engine.dispose()
    (tmp_path / "c.db").unlink()  # the database goes away after the check at start
    (tmp_path / "c.db").mkdir()  # and what is there cannot be opened
    with harness:
        answer = _post(harness, [1])
        assert answer.status_code == 503
        assert answer.headers["Retry-After"]
        (event,) = answer.json()["events"]
        assert (event["outcome"], event["reason"]) == ("failed", "identity_lookup_failed")
        metrics = harness.call(harness.client.get, "/metrics").text
    assert transport.messages == []
    assert 'segment_bridge_identity_lookups_total{result="identity_lookup_failed"} 1.0' in metrics

    harness, transport = _serve(tmp_path, sqlite_customers(tmp_path / "d.db", ROWS), "send")
    harness.bridge.lookup._database.engine.dispose()
    (tmp_path / "d.db").unlink()
    (tmp_path / "d.db").mkdir()
    with harness:
        assert _post(harness, [1]).status_code == 200
    assert [m.get("userId") for m in transport.messages] == [None]


def test_serve_does_not_start_when_the_lookup_check_fails(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from segment_bridge import ConfigurationError

    with pytest.raises(ConfigurationError, match="identity lookup"):
        _serve(tmp_path, _down(tmp_path), "send")


# -- the Lambda handler ---------------------------------------------------------------------------------------------


def _kinesis(numbers: Sequence[int], start: int = 0) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "data": base64.b64encode(orjson.dumps(call_event(phone(n), i))).decode(),
                    "sequenceNumber": str(100 + i),
                    "partitionKey": "k",
                },
                "eventID": f"shardId-000000000000:{100 + i}",
            }
            for i, n in enumerate(numbers, start)
        ]
    }


@pytest.mark.usefixtures("fresh_lambda_runtime")
def test_lambda_sends_user_ids_and_reports_what_the_lookup_kept_back(
    tmp_path: Path, lambda_env: pytest.MonkeyPatch, standin: Any
) -> None:
    from segment_bridge import aws_lambda

    url = sqlite_customers(tmp_path / "c.db", ROWS)
    lambda_env.setenv("SEGMENT_BRIDGE_MAPPING", str(_mapping(tmp_path, "retry")))
    lambda_env.setenv("SEGMENT_BRIDGE_IDENTITY_URL", url)
    assert aws_lambda.handler(_kinesis([1, 9]), None) == {"batchItemFailures": []}
    assert standin.accepted_ids and len(standin.accepted_ids) == 2
    stage = aws_lambda._RUNTIME[0].stage
    assert stage is not None
    assert (stage.lookup.counters.hits, stage.lookup.counters.misses) == (1, 1)  # type: ignore[attr-defined]
    # The database goes away after the cold start: the record whose lookup failed is retried by Lambda; the one
    # whose phone the cache remembers (found in no row) is sent.
    stage.lookup._database.engine.dispose()  # type: ignore[attr-defined]
    (tmp_path / "c.db").unlink()
    (tmp_path / "c.db").mkdir()
    answer = aws_lambda.handler(_kinesis([2, 9], start=10), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "110"}]}
    assert len(standin.accepted_ids) == 3

    aws_lambda.reset_runtime()
    with pytest.raises(Exception, match="identity lookup"):  # the check at the next cold start
        aws_lambda.handler(_kinesis([2]), None)


def test_serve_with_workers_stops_in_one_line_before_starting_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("uvicorn")
    monkeypatch.setenv("SEGMENT_BRIDGE_IDENTITY_URL", _down(tmp_path))
    monkeypatch.setenv("SEGMENT_BRIDGE_MAPPING", str(_mapping(tmp_path)))
    status = main(["serve", "--workers", "2", "--insecure-no-signature", "--dry-run", "--port", "0"])
    (line,) = capsys.readouterr().err.splitlines()
    assert status == 2
    logged = orjson.loads(line)  # serve writes JSON lines
    assert logged["event"] == "configuration_error"
    assert logged["message"].startswith("identity lookup (sqlite:///")


def test_check_mapping_runs_the_query_when_the_url_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = str(_mapping(tmp_path))
    assert main(["check-mapping", mapping]) == 0  # no URL: the query is not run
    monkeypatch.setenv("SEGMENT_BRIDGE_IDENTITY_URL", sqlite_customers(tmp_path / "c.db", ROWS))
    assert main(["check-mapping", mapping]) == 0
    monkeypatch.setenv("SEGMENT_BRIDGE_IDENTITY_URL", sqlite_customers(tmp_path / "empty.db", []).replace("empty", "e"))
    capsys.readouterr()
    assert main(["check-mapping", mapping]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("segment-bridge: error: identity lookup (sqlite:///") and "no such table: customers" in line
