"""sources: JSON Lines, whole documents, gzip and stdin-like streams, streamed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from segment_bridge import ConfigurationError
from segment_bridge.sources import iter_records


def test_json_lines_skip_blank_lines_and_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"b":2}\nnot json\n')
    records = list(iter_records([str(path)]))
    assert [(r.line, r.raw.strip()) for r in records] == [(1, b'{"a":1}'), (3, b'{"b":2}'), (4, b"not json")]


def test_pretty_printed_document_is_one_record(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps([{"a": 1}, {"b": 2}], indent=2))
    (record,) = iter_records([str(path)])
    assert json.loads(record.raw) == [{"a": 1}, {"b": 2}]


def test_broken_document_falls_back_to_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{\n  "a": \n{"b": 2}\n')
    assert [r.line for r in iter_records([str(path)])] == [1, 2, 3]


def test_gzip_by_extension_and_by_magic(tmp_path: Path) -> None:
    for name in ("e.jsonl.gz", "e.jsonl"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(b'{"a":1}\n{"b":2}\n'))
        assert [r.raw.strip() for r in iter_records([str(path)])] == [b'{"a":1}', b'{"b":2}']


def test_several_files_are_indexed(tmp_path: Path) -> None:
    for n in range(2):
        (tmp_path / f"{n}.jsonl").write_text(f'{{"n":{n}}}\n')
    records = list(iter_records([str(tmp_path / "0.jsonl"), str(tmp_path / "1.jsonl")]))
    assert [(r.file_index, r.name.endswith(f"{r.file_index}.jsonl")) for r in records] == [(0, True), (1, True)]


def test_unreadable_path_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read .*missing\.jsonl"):
        list(iter_records([str(tmp_path / "missing.jsonl")]))


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n' * 1000)[:-20])
    with pytest.raises(ConfigurationError, match="cannot read"):
        list(iter_records([str(path)]))


def test_corrupt_first_line_streams_the_rest_as_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segment_bridge import sources

    monkeypatch.setattr(sources, "MAX_DOCUMENT_BYTES", 100)
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"truncated": \n' + b'{"a":1}\n' * 50)
    records = list(iter_records([str(path)]))
    assert len(records) == 51
    assert records[0].raw == b'{"truncated": \n'
    assert records[-1].line == 51


def test_first_line_not_opening_a_document_is_read_as_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'garbage\n{"a":1}\n')
    assert [r.raw.strip() for r in iter_records([str(path)])] == [b"garbage", b'{"a":1}']
