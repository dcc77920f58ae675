"""sources: concatenated JSON values with or without separators, as Kinesis Data Firehose archives them.

Firehose writes the records of a stream to S3 one after another with no separator (``{...}{...}{...}``): a 50 MB
archive is one line. Such a file is read as a sequence of values, streamed a chunk at a time, each value one record
positioned at its line and byte column.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_bridge import sources
from segment_bridge.cli import main
from segment_bridge.samples import iter_call_events
from segment_bridge.sources import Record, _records_of, iter_records

EVENTS = list(iter_call_events(3000))
COMPACT = [orjson.dumps(event) for event in EVENTS]


def _records(path: Path) -> list[Record]:
    return list(iter_records([str(path)]))


def test_a_firehose_archive_of_thousands_of_events_is_one_record_per_event(tmp_path: Path) -> None:
    path = tmp_path / "firehose"
    body = b"".join(COMPACT)
    assert b"\n" not in body and len(body) > 20 * 64 * 1024
    path.write_bytes(body)
    records = _records(path)
    assert [r.raw for r in records] == COMPACT
    starts = [sum(len(raw) for raw in COMPACT[:n]) for n in range(len(COMPACT))]
    assert [(r.line, r.column) for r in records] == [(1, start + 1) for start in starts]
    assert all(body[r.column - 1 :].startswith(r.raw) for r in records[::97])


def test_translate_delivers_every_event_of_a_gzip_firehose_archive(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "firehose.gz"
    path.write_bytes(gzip.compress(b"".join(COMPACT[:2000])))
    assert main(["translate", "--quiet", str(path)]) == 0
    captured = capsysbinary.readouterr()
    messages = [orjson.loads(line) for line in captured.out.splitlines()]
    assert len(messages) == 2000
    assert [m["properties"]["cloudevent_id"] for m in messages] == [e["id"] for e in EVENTS[:2000]]
    assert "translated 2000, acknowledged 0, refused 0" in captured.err.decode()


@pytest.mark.parametrize(
    "separator", [b"", b"\n", b" ", b"\r\n", b"\n\n", b"\t \n "], ids=["none", "lf", "sp", "crlf", "blank", "mixed"]
)
def test_any_separator_or_none_gives_the_same_values(tmp_path: Path, separator: bytes) -> None:
    path = tmp_path / "values"
    path.write_bytes(separator.join(COMPACT[:300]) + separator)
    assert [orjson.loads(r.raw) for r in _records(path)] == EVENTS[:300]


def test_pretty_printed_values_written_without_separator(tmp_path: Path) -> None:
    path = tmp_path / "values"
    path.write_bytes(b"".join(json.dumps(event, indent=2).encode() for event in EVENTS[:200]))
    records = _records(path)
    assert [orjson.loads(r.raw) for r in records] == EVENTS[:200]
    # Each next value opens on the line where the previous one closed, right after its brace.
    assert [(r.line, r.column) for r in records[:2]] == [(1, 1), (records[0].raw.count(b"\n") + 1, 2)]


def test_columns_count_bytes_whatever_the_characters(tmp_path: Path) -> None:
    values = [{"n": n, "name": "Zoë 📞" * (n % 7), "city": "Zürich"} for n in range(2000)]
    raws = [json.dumps(value, ensure_ascii=False).encode() for value in values]
    body = b"".join(raws)
    path = tmp_path / "utf8"
    path.write_bytes(body)
    records = _records(path)
    assert [r.raw for r in records] == raws
    assert all(body[r.column - 1 : r.column - 1 + len(r.raw)] == r.raw for r in records)


def test_positions_grow_with_every_record(tmp_path: Path) -> None:
    path = tmp_path / "values"
    path.write_bytes(b"".join(COMPACT[:50]) + b"\n" + b"\n".join(COMPACT[50:100]) + b"\n" + b" ".join(COMPACT[100:150]))
    positions = [r.position for r in _records(path)]
    assert len(positions) == 150
    assert positions == sorted(positions) and len(set(positions)) == 150
    assert positions[0] == (0, 1) and positions[1] == (0, 1, len(COMPACT[0]) + 1)


def test_what_orjson_will_not_take_is_still_split_exactly(tmp_path: Path) -> None:
    odd = [
        b'{"big":1e400}',
        b'{"bad_utf8":"\xff\xfe"}',
        b"[" * 2000 + b"]" * 2000,
        b'{"huge_int":123456789012345678901234567890}',
        b'{"lone":"\\ud800"}',
    ]
    raws = [COMPACT[0], *odd, COMPACT[1]]
    path = tmp_path / "odd"
    path.write_bytes(b"".join(raws))
    assert [r.raw for r in _records(path)] == raws


def test_a_bad_value_is_one_record_and_reading_resumes_at_the_next(tmp_path: Path) -> None:
    bad = b'{"specversion":"1.0","id":"EVbad","data":{"x": nope}}'
    path = tmp_path / "values"
    path.write_bytes(COMPACT[0] + bad + COMPACT[1] + COMPACT[2])
    records = _records(path)
    assert [r.raw for r in records] == [COMPACT[0], bad, COMPACT[1], COMPACT[2]]
    assert records[1].column == len(COMPACT[0]) + 1


def test_a_value_cut_short_at_the_end_is_one_last_record(tmp_path: Path) -> None:
    path = tmp_path / "values"
    path.write_bytes(COMPACT[0] + COMPACT[1][:100])
    assert [r.raw for r in _records(path)] == [COMPACT[0], COMPACT[1][:100]]


def test_a_long_first_line_that_is_json_alone_is_still_json_lines(tmp_path: Path) -> None:
    big = orjson.dumps(EVENTS[:100])  # one array of 100 events: well over the first read of 64 KiB
    assert len(big) > 2 * 64 * 1024
    path = tmp_path / "e.jsonl"
    path.write_bytes(big + b"\n" + b'{"a": oops} {"b":1}\n' + COMPACT[0] + b"\n")
    records = _records(path)
    assert [(r.line, r.raw) for r in records] == [
        (1, big + b"\n"),
        (2, b'{"a": oops} {"b":1}\n'),  # JSON Lines: a bad line is one record, whatever it holds
        (3, COMPACT[0] + b"\n"),
    ]


class _Counting(io.RawIOBase):
    """A stream of ``size`` bytes of concatenated events that counts what was read from it."""

    def __init__(self, size: int) -> None:
        self.body = b"".join(COMPACT[: size // 1500])
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.body[self.offset : self.offset + len(buffer)]
        buffer[: len(chunk)] = chunk
        self.offset += len(chunk)
        return len(chunk)


def test_a_file_of_one_long_line_is_read_a_chunk_at_a_time() -> None:
    raw = _Counting(4_000_000)
    records: Iterator[Record] = _records_of("firehose", 0, io.BufferedReader(raw))  # type: ignore[arg-type]
    assert next(records).raw == COMPACT[0]
    assert raw.offset <= 256 * 1024  # not the whole line: the first values come from the first chunks
    for n, record in enumerate(records, start=1):
        assert record.raw == COMPACT[n]
        assert raw.offset - record.column <= 512 * 1024  # what was read runs at most a few chunks ahead
    assert n + 1 == 4_000_000 // 1500  # every event, in order


def _next_within(records: Iterator[Record], deadline: float) -> Record | None:
    """``next(records)`` on a thread, or ``None`` when it has not come within ``deadline`` seconds."""
    got: list[Record] = []
    done = threading.Event()

    def read() -> None:
        got.append(next(records))
        done.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    done.wait(deadline)
    return got[0] if got else None


def test_a_real_pipe_yields_each_document_once_its_closing_line_has_arrived() -> None:
    documents = [json.dumps({"a": 1}, indent=2).encode() + b"\n", json.dumps({"b": [2]}, indent=2).encode() + b"\n"]
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reading, os.fdopen(write_end, "wb", buffering=0) as writing:
        records = _records_of("-", 0, reading)  # type: ignore[arg-type]
        writing.write(documents[0])  # the writer stays open: nothing says the input ended
        first = _next_within(records, 10)
        assert first is not None, "the first document was held back waiting for more input"
        assert orjson.loads(first.raw) == {"a": 1}
        writing.write(documents[1])
        second = _next_within(records, 10)
        assert second is not None, "the second document was held back waiting for more input"
        assert orjson.loads(second.raw) == {"b": [2]}
        writing.close()
        assert list(records) == []


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_OBJECTS = st.dictionaries(st.text(max_size=8), _JSON, max_size=5)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(_OBJECTS, min_size=2, max_size=30),
    separators=st.lists(st.sampled_from(["", " ", "\n", "\r\n", "\t", "\n\n  "]), min_size=30, max_size=30),
    indent=st.sampled_from([None, 2]),
    ascii_only=st.booleans(),
    sizes=st.sampled_from([(7, 3), (61, 16), (64 * 1024, 4096)]),
)
def test_any_objects_with_any_separators_come_back_exactly(
    values: list[dict[str, Any]],
    separators: list[str],
    indent: int | None,
    ascii_only: bool,
    sizes: tuple[int, int],
) -> None:
    # Small chunks and windows put chunk ends and window ends everywhere: inside strings, numbers, characters.
    with mock.patch.multiple(sources, _CHUNK=sizes[0], _WINDOW=sizes[1]):
        _check_values(values, separators, indent, ascii_only)


def _check_values(values: list[dict[str, Any]], separators: list[str], indent: int | None, ascii_only: bool) -> None:
    raws = [json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode() for value in values]
    separators[0] = ""  # two values on the first line: the file is values, not JSON Lines
    body = b"".join(raw + separators[n].encode() for n, raw in enumerate(raws))
    records = list(_records_of("f", 0, io.BufferedReader(io.BytesIO(body))))  # type: ignore[arg-type]
    assert [r.raw for r in records] == raws
    for record in records:
        line_start = sum(len(line) + 1 for line in body.split(b"\n")[: record.line - 1])
        assert body[line_start + record.column - 1 :].startswith(record.raw)


def test_a_firehose_archive_with_a_bad_first_value_is_still_read_value_by_value(tmp_path: Path) -> None:
    head = b'{"specversion":"1.0","data":{"x": nope}}'
    path = tmp_path / "firehose"
    path.write_bytes(head + b"".join(COMPACT[1:200]))
    assert [r.raw for r in _records(path)] == [head, *COMPACT[1:200]]  # not one record of the whole line


def test_garbage_glued_to_a_value_costs_that_value_only(tmp_path: Path) -> None:
    path = tmp_path / "firehose"
    path.write_bytes(COMPACT[0] + b"garbage" + b"".join(COMPACT[1:200]))
    raws = [r.raw for r in _records(path)]
    # Nothing marks where a value starts after garbage: the next one goes with it into one refused record.
    assert raws == [COMPACT[0], b"garbage" + COMPACT[1], *COMPACT[2:200]]
