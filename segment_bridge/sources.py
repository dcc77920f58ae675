"""Read archived CloudEvents: JSON Lines or whole JSON documents, plain or gzip, from files or stdin.

Records are streamed, so memory stays flat whatever the file size. A file whose first non-blank line is JSON is read
as JSON Lines (one event, or one array of events, per line); otherwise it is read as one JSON document, such as a
pretty-printed event or array. If it is neither, it is read line by line so each bad line becomes its own refusal.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from segment_bridge.exceptions import ConfigurationError

__all__ = ["Record", "iter_records", "open_input"]

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Record:
    """One unit of input: a JSON Lines line, or a whole JSON document.

    ``file_index`` and ``line`` (1-based) locate it, for messages and replay checkpoints.
    """

    name: str
    file_index: int
    line: int
    raw: bytes


def open_input(name: str, stack: ExitStack) -> BinaryIO:
    """Open a path (``-`` is stdin) for binary reading, decompressing gzip transparently.

    Whatever is opened is closed by ``stack``; stdin is left open.

    Raises:
        ConfigurationError: the path cannot be opened.
    """
    if name == "-":
        stream: BinaryIO = sys.stdin.buffer
    else:
        try:
            stream = stack.enter_context(Path(name).open("rb"))  # noqa: SIM115 - the stack is the context manager
        except OSError as error:
            raise ConfigurationError(f"cannot read {name}: {error.strerror or type(error).__name__}") from None
    if name.endswith(".gz") or _peek(stream).startswith(_GZIP_MAGIC):
        # GzipFile never closes a file object it was handed; the stack closes both.
        return stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb"))  # type: ignore[return-value]
    return stream


def _peek(stream: BinaryIO) -> bytes:
    peek = getattr(stream, "peek", None)
    return peek(2)[:2] if peek is not None else b""


def _records_of(name: str, file_index: int, stream: BinaryIO) -> Iterator[Record]:
    lines = iter(stream)
    number = 0
    for first in lines:
        number += 1
        if first.strip():
            break
    else:
        return
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        pass
    else:
        yield Record(name, file_index, number, first)
        for line in lines:
            number += 1
            if line.strip():
                yield Record(name, file_index, number, line)
        return
    # Not JSON Lines: perhaps a pretty-printed document. Such files are small enough to hold in memory.
    start = number
    rest = [first, *lines]
    document = b"".join(rest)
    try:
        orjson.loads(document)
    except orjson.JSONDecodeError:
        for offset, line in enumerate(rest):
            if line.strip():
                yield Record(name, file_index, start + offset, line)
    else:
        yield Record(name, file_index, start, document)


def iter_records(names: Iterable[str]) -> Iterator[Record]:
    """Yield the records of each input in order (``-`` is stdin); gzip files are read transparently.

    Raises:
        ConfigurationError: an input cannot be opened or read.
    """
    for file_index, name in enumerate(names):
        with ExitStack() as stack:
            stream = open_input(name, stack)
            try:
                yield from _records_of(name, file_index, stream)
            except (OSError, EOFError) as error:
                # A truncated gzip member or an I/O error mid-file: say where, and stop rather than guess.
                raise ConfigurationError(f"cannot read {name}: {error}") from None
