"""sources: the first line, read in pieces of a chunk: a BOM does not make a cut line look whole, blanks count.

The first line is read in pieces of at most a chunk (64 KiB). Whether the piece is the whole line was judged after
the BOM was dropped from it, so a first line longer than a chunk looked complete three bytes short of one.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from segment_bridge.sources import _BOM, _CHUNK, iter_records


def _positions(path: Path) -> list[tuple[int, int, int]]:
    return [(r.line, r.column, len(r.raw)) for r in iter_records([str(path)])]


def test_a_long_first_line_after_a_bom_stays_one_record(tmp_path: Path) -> None:
    # Not JSON and not opening a value: JSON Lines with a bad first line, which must stay one record (line 1) and
    # leave the event on line 2, as without the BOM.
    path = tmp_path / "lines"
    path.write_bytes(_BOM + b"x" * (_CHUNK + 5000) + b"\n" + b'{"a":1}\n')
    assert _positions(path) == [(1, 1, _CHUNK + 5001), (2, 1, 8)]


def test_a_bom_and_a_first_value_filling_the_first_piece_is_still_concatenated(tmp_path: Path) -> None:
    # The first piece (BOM + value) fills a chunk and is valid JSON on its own: it is not a JSON Lines line, since
    # another value follows it on the same line (a Firehose archive).
    first = b'{"a":"' + b"y" * (_CHUNK - len(_BOM) - 8) + b'"}'
    assert len(_BOM + first) == _CHUNK
    orjson.loads(first)
    path = tmp_path / "firehose"
    path.write_bytes(_BOM + first + b'{"b":2}\n')
    assert _positions(path) == [(1, 1, len(first)), (1, len(first) + 1, 7)]


def test_blanks_read_in_earlier_pieces_count_in_the_column(tmp_path: Path) -> None:
    # A first line opening with more than a chunk of blanks: the pieces of only blanks are skipped, but the values
    # after them are still positioned at their byte column (as replay checkpoints and messages name them).
    blanks = _CHUNK + 10
    path = tmp_path / "firehose"
    path.write_bytes(b" " * blanks + b'{"a":1}{"b":2}\n{"c":3}{"d":4}')
    assert _positions(path) == [(1, blanks + 1, 7), (1, blanks + 8, 7), (2, 1, 7), (2, 8, 7)]
