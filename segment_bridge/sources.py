"""Read archived CloudEvents: JSON Lines or whole JSON documents, plain or gzip, from files or stdin.

Records are streamed, so memory stays flat whatever the file size. A file whose first non-blank line is JSON is read
as JSON Lines (one event, or one array of events, per line); otherwise, if it opens with ``{`` or ``[``, it is tried
as one JSON document such as a pretty-printed event or array (up to :data:`MAX_DOCUMENT_BYTES`). If it is neither,
it is read line by line so each bad line becomes its own refusal.
"""

from __future__ import annotations

import gzip
import itertools
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from segment_bridge.exceptions import ConfigurationError

__all__ = ["MAX_DOCUMENT_BYTES", "Record", "iter_records", "open_input"]

_GZIP_MAGIC = b"\x1f\x8b"
#: Largest pretty-printed (multi-line) JSON document read as one record; JSON Lines files have no limit.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


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
    # Not JSON Lines. A line opening with "{" or "[" may start a pretty-printed document: gather lines up to
    # MAX_DOCUMENT_BYTES and try them as one. Anything else, or more than that, is read line by line, so a corrupt
    # first line in a huge archive costs one refusal, not the whole file in memory.
    start = number
    held: list[bytes] = []
    if first.lstrip()[:1] in (b"{", b"["):
        size = 0
        for line in itertools.chain((first,), lines):
            held.append(line)
            size += len(line)
            if size > MAX_DOCUMENT_BYTES:
                break
        else:
            document = b"".join(held)
            try:
                orjson.loads(document)
            except orjson.JSONDecodeError:
                pass
            else:
                yield Record(name, file_index, start, document)
                return
    else:
        held.append(first)
    for offset, line in enumerate(itertools.chain(held, lines)):
        if line.strip():
            yield Record(name, file_index, start + offset, line)


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
