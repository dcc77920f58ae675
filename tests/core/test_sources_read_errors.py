"""sources: every failure to read an input is one ConfigurationError line naming the input, never a traceback."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from segment_bridge import ConfigurationError
from segment_bridge.cli import main
from segment_bridge.sources import iter_records

LINES = b'{"a":1}\n' * 2000


def _corrupt_deflate() -> bytes:
    # A valid gzip header, then bytes that are not a deflate stream: zlib, not gzip, notices.
    return b"\x1f\x8b\x08\x00garbagegarbage"


def _bad_crc() -> bytes:
    data = bytearray(gzip.compress(LINES))
    data[-8] ^= 0xFF  # the CRC-32 in the trailer
    return bytes(data)


def _flipped_in_the_middle() -> bytes:
    data = bytearray(gzip.compress(bytes(range(256)) * 4000))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(_corrupt_deflate(), "corrupt gzip data", id="garbage-after-header"),
        pytest.param(gzip.compress(LINES)[:-20], "ends early", id="truncated"),
        pytest.param(gzip.compress(LINES)[:12], "ends early", id="header-only"),
        pytest.param(_bad_crc(), "corrupt gzip data", id="crc"),
        pytest.param(_flipped_in_the_middle(), "corrupt gzip data", id="flipped-byte"),
        pytest.param(b'{"a":1}\n', "not a gzip file", id="named-gz-not-gzip"),
        pytest.param(b"\x1f\x8b\x09\x00" + b"\x00" * 20, "corrupt gzip data", id="unknown-method"),
    ],
)
def test_a_gzip_input_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError) as caught:
        list(iter_records([str(path)]))
    message = str(caught.value)
    assert message.startswith(f"cannot read {path}: ")
    assert reason in message
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_message_does_not_quote_the_input(tmp_path: Path) -> None:
    path = tmp_path / "secret.gz"
    path.write_bytes(b'{"token":"abc"}\n')
    with pytest.raises(ConfigurationError) as caught:
        list(iter_records([str(path)]))
    assert "token" not in str(caught.value) and "{" not in str(caught.value)


def test_records_read_before_the_failure_are_yielded_first(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(LINES)[:-20])
    records = iter_records([str(path)])
    got = [next(records) for _ in range(100)]
    assert [r.line for r in got] == list(range(1, 101))
    with pytest.raises(ConfigurationError, match="ends early"):
        list(records)


def test_translate_of_a_corrupt_gzip_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(_corrupt_deflate())
    code = main(["translate", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    # One line for the error, then the summary of what was read before it (nothing, here).
    assert err.splitlines() == [
        f"segment-bridge: error: cannot read {path}: corrupt gzip data (the compressed stream does not decode)",
        "segment-bridge: translated 0, acknowledged 0, refused 0",
    ]
    assert "Traceback" not in err and "zlib" not in err
