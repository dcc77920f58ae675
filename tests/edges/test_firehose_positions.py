"""Positions inside a Firehose archive (one line of values): refusals name LINE:COLUMN, checkpoints resume mid-line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from segment_bridge.cli import main
from segment_bridge.delivery import FileTransport
from segment_bridge.mapping import load_mapping
from segment_bridge.replay import Checkpoint, InputHead, replay_files
from segment_bridge.samples import iter_call_events
from segment_bridge.sources import iter_records

COMPACT = [orjson.dumps(event) for event in iter_call_events(300)]
BAD = b'{"specversion":"1.0","id":"EVbad","data":{"x": nope}}'


def _delivered_ids(out: Path) -> list[str]:
    return [
        message["properties"]["cloudevent_id"]
        for line in out.read_bytes().splitlines()
        for message in orjson.loads(line)["batch"]
    ]


def test_translate_names_line_and_column_of_a_refused_value(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "firehose"
    path.write_bytes(COMPACT[0] + BAD + COMPACT[1])
    assert main(["translate", str(path)]) == 1
    err = capsysbinary.readouterr().err.decode().splitlines()
    assert err[0].startswith(f"{path}:1:{len(COMPACT[0]) + 1}: refused event: invalid_json")
    assert err[-1].endswith("translated 2, acknowledged 0, refused 1 (invalid_json 1)")


def test_replay_names_line_and_column_of_a_refused_value(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "firehose"
    path.write_bytes(COMPACT[0] + BAD + COMPACT[1])
    assert main(["replay", "--out", str(tmp_path / "out"), str(path)]) == 1
    err = capsysbinary.readouterr().err.decode().splitlines()
    assert err[0].startswith(f"{path}:1:{len(COMPACT[0]) + 1}: refused event: invalid_json")


def test_a_checkpoint_resumes_inside_the_line(tmp_path: Path) -> None:
    source = tmp_path / "firehose"
    source.write_bytes(b"".join(COMPACT))
    records = list(iter_records([str(source)]))
    mapping = load_mapping()
    checkpoint = tmp_path / "ckpt"

    transport = FileTransport(tmp_path / "first")
    try:
        summary = replay_files([str(source)], mapping, transport, checkpoint_path=checkpoint, max_messages=50)
    finally:
        transport.close()
    assert summary.delivered == 300
    assert summary.checkpoint == records[-1].position == (0, 1, sum(map(len, COMPACT[:-1])) + 1)

    # As if a run had been killed once the first 120 events were settled.
    head = InputHead.of(str(source))
    assert head is not None
    Checkpoint(checkpoint, key=str(source), heads=[head], interval=0).save(records[119].position)
    out = tmp_path / "resumed"
    transport = FileTransport(out)
    try:
        summary = replay_files([str(source)], mapping, transport, checkpoint_path=checkpoint, max_messages=50)
    finally:
        transport.close()
    assert summary.skipped == 120
    # Batches in flight together may land in the file in any order: compare what was sent, each once.
    assert sorted(_delivered_ids(out)) == sorted(orjson.loads(raw)["id"] for raw in COMPACT[120:])


def test_a_checkpoint_of_two_numbers_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ckpt"
    Checkpoint(path, key="a", interval=0).save((0, 7))
    assert Checkpoint(path, key="a").load() == (0, 7)
    Checkpoint(path, key="a", interval=0).save((0, 7, 1601))
    assert Checkpoint(path, key="a").load() == (0, 7, 1601)
