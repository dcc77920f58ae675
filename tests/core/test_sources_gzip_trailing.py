"""sources: bytes after the end of gzip data are named as such, not as a file that is not gzip at all."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from segment_bridge import ConfigurationError
from segment_bridge.sources import iter_records


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_garbage_after_a_gzip_member_is_corrupt_gzip_data(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    # Detected as gzip by its first bytes (or its name); the text after the member is not gzip.
    path.write_bytes(gzip.compress(b'{"a":1}\n' * 3) + b"garbage +14155550123")
    with pytest.raises(ConfigurationError) as caught:
        list(iter_records([str(path)]))
    message = str(caught.value)
    assert message.startswith(f"cannot read {path}: corrupt gzip data")
    assert "does not start as gzip" not in message
    reason = message.removeprefix(f"cannot read {path}: ")
    assert "garbage" not in reason and "1415" not in reason


def test_a_gz_name_on_a_file_that_is_not_gzip_still_says_so(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(b'{"a":1}\n')
    with pytest.raises(ConfigurationError, match="not a gzip file"):
        list(iter_records([str(path)]))
