"""sources: JSON Lines, whole documents, gzip and stdin-like streams, streamed."""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterator
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


# -- byte-order marks ---------------------------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("content", "raws"),
    [
        (b'{"a":1}\n{"b":2}\n', [b'{"a":1}', b'{"b":2}']),
        (b'\n{"a":1}\n', [b'{"a":1}']),
        (json.dumps([{"a": 1}], indent=2).encode(), [json.dumps([{"a": 1}], indent=2).encode()]),
    ],
)
@pytest.mark.parametrize("packing", ["plain", "gzip"])
def test_a_byte_order_mark_opening_a_file_is_not_part_of_the_first_record(
    tmp_path: Path, content: bytes, raws: list[bytes], packing: str
) -> None:
    path = tmp_path / ("e.json.gz" if packing == "gzip" else "e.json")
    path.write_bytes(gzip.compress(BOM + content) if packing == "gzip" else BOM + content)
    records = list(iter_records([str(path)]))
    assert [r.raw.strip() for r in records] == raws
    assert all(json.loads(r.raw) for r in records)


def test_a_byte_order_mark_on_stdin_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(BOM + b'{"a":1}\n'))  # type: ignore[arg-type]

    monkeypatch.setattr(sys, "stdin", Stdin)
    assert [r.raw for r in iter_records(["-"])] == [b'{"a":1}\n']


# -- concatenated documents (jq . output) ----------------------------------------------------------------------


def _pretty(*values: object) -> bytes:
    return b"".join(json.dumps(value, indent=2).encode() + b"\n" for value in values)


def test_concatenated_pretty_documents_are_one_record_each_at_their_first_line(tmp_path: Path) -> None:
    values: list[object] = [{"n": 0, "data": {"x": [1, 2]}}, [{"n": 1}, {"n": 2}], {"n": 3}]
    path = tmp_path / "jq.json"
    path.write_bytes(_pretty(*values))
    records = list(iter_records([str(path)]))
    assert [json.loads(r.raw) for r in records] == values
    assert [r.line for r in records] == [1, 10, 18]


def test_pretty_documents_then_lines_and_compact_values_mixed(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_bytes(b'{\n  "a": 1\n}\n\n{"b": 2}\n  {"c": 3} [4]\r\n')
    records = list(iter_records([str(path)]))
    assert [(r.line, json.loads(r.raw)) for r in records] == [(1, {"a": 1}), (5, {"b": 2}), (6, {"c": 3}), (6, [4])]


def test_many_documents_across_chunks_keep_exact_bytes_and_lines(tmp_path: Path) -> None:
    values = [{"n": n, "pad": "é" * (n % 50), "nested": {"deep": [{"k": n}]}} for n in range(3000)]
    body = _pretty(*values)
    assert len(body) > 4 * 64 * 1024
    path = tmp_path / "big.json"
    path.write_bytes(body)
    records = list(iter_records([str(path)]))
    assert [json.loads(r.raw) for r in records] == values
    lines = body.split(b"\n")
    assert all(lines[r.line - 1] == b"{" for r in records)


def test_a_bad_document_among_good_ones_is_one_record_and_reading_resumes(tmp_path: Path) -> None:
    path = tmp_path / "jq.json"
    path.write_bytes(_pretty({"a": 1}) + b'{\n  "b": ,\n  "c": 2\n}\n' + _pretty({"d": 4}) + b'{\n  "cut": [\n')
    records = list(iter_records([str(path)]))
    assert [r.line for r in records] == [1, 4, 8, 11]
    assert json.loads(records[0].raw) == {"a": 1}
    assert records[1].raw == b'{\n  "b": ,\n  "c": 2\n}\n'
    assert json.loads(records[2].raw) == {"d": 4}
    assert records[3].raw == b'{\n  "cut": [\n'


def test_invalid_utf8_in_a_document_is_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "jq.json"
    path.write_bytes(b'{\n  "a": "\xff"\n}\n{\n  "b": 2\n}\n')
    records = list(iter_records([str(path)]))
    assert [r.raw for r in records] == [b'{\n  "a": "\xff"\n}', b'{\n  "b": 2\n}']


def test_a_first_line_holding_a_value_and_more_is_json_lines_with_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a":1} trailing\n{"b":2}\n')
    assert [r.raw for r in iter_records([str(path)])] == [b'{"a":1} trailing\n', b'{"b":2}\n']


def test_a_document_over_the_limit_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segment_bridge import sources

    monkeypatch.setattr(sources, "MAX_DOCUMENT_BYTES", 100_000)
    path = tmp_path / "huge.json"
    path.write_text(json.dumps([{"n": n} for n in range(20_000)], indent=2))
    with pytest.raises(ConfigurationError, match=r"huge\.json.* line 1 is over 100,000 bytes.*JSON Lines.*jq -c"):
        list(iter_records([str(path)]))


def test_a_later_document_over_the_limit_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segment_bridge import sources

    monkeypatch.setattr(sources, "MAX_DOCUMENT_BYTES", 100_000)
    path = tmp_path / "huge.json"
    path.write_bytes(_pretty({"a": 1}, [{"n": n} for n in range(20_000)]))
    records = iter_records([str(path)])
    assert json.loads(next(records).raw) == {"a": 1}
    with pytest.raises(ConfigurationError, match=r"line 4 is over 100,000 bytes"):
        next(records)


def test_the_default_limit_is_named_in_mebibytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segment_bridge import sources

    monkeypatch.setattr(sources, "MAX_DOCUMENT_BYTES", 1024 * 1024)
    path = tmp_path / "huge.json"
    path.write_bytes(b"[\n" + b'  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",\n' * 30_000 + b'  "x"\n]\n')
    with pytest.raises(ConfigurationError, match=r"over 1 MiB"):
        list(iter_records([str(path)]))


def test_documents_after_blank_lines_are_positioned_at_their_opening_line(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_bytes(b"\n  \n" + _pretty({"a": 1}, {"b": 2}))
    assert [r.line for r in iter_records([str(path)])] == [3, 6]


def test_a_pipe_trickling_documents_yields_each_once_its_closing_line_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _pretty({"a": 1}, {"b": 2}).splitlines(keepends=True)
    read: list[bytes] = []

    class Pipe:
        def __iter__(self) -> Iterator[bytes]:
            for line in lines:
                read.append(line)
                yield line

    class Stdin:
        buffer = Pipe()

    monkeypatch.setattr(sys, "stdin", Stdin)
    records = iter_records(["-"])
    assert json.loads(next(records).raw) == {"a": 1}
    assert len(read) == 3  # not a whole chunk: the second document has not been waited for
    assert json.loads(next(records).raw) == {"b": 2}
