"""Read archived CloudEvents: JSON Lines or pretty-printed JSON documents, plain or gzip, from files or stdin.

Records are streamed, so memory stays bounded whatever the file size. A UTF-8 byte-order mark opening an input is
dropped. How an input is read is decided by its first non-blank line:

* it is JSON: the input is **JSON Lines**, one event (or one array of events) per line, each non-blank line one
  record, whatever follows; a line that is not JSON is still one record (refused downstream as ``invalid_json``).
  This is the common path and it does no more than split lines.
* it is not JSON but opens with ``{`` or ``[``: the input is read as **concatenated JSON values** separated by
  whitespace, as ``jq .`` or a pretty-printed array writes them. Each value is one record (an array is one record
  of several events, as on a JSON Lines line) positioned at the line where it starts. A value that does not decode
  is one record from its first line up to the next line opening with ``{`` or ``[``, where reading resumes. A
  single value may not exceed :data:`MAX_DOCUMENT_BYTES`: a larger one stops the read with a
  :class:`~segment_bridge.exceptions.ConfigurationError` naming the file (convert such a file to JSON Lines).
  If the *first* value does not decode, or ends on the first line (a value with something after it), the input
  is JSON Lines with a bad first line after all and is read line by line.
* anything else: the input is read line by line, each non-blank line one record.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import sys
import zlib
from collections.abc import Generator, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from segment_bridge.exceptions import ConfigurationError

__all__ = ["MAX_DOCUMENT_BYTES", "Record", "iter_records", "open_input"]

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_MIB = 1024 * 1024
#: Largest pretty-printed (multi-line) JSON value read as one record; JSON Lines lines have no limit.
MAX_DOCUMENT_BYTES = 64 * _MIB
# A document file is read this much at a time at least, so a large value costs few decoding attempts.
_CHUNK = 64 * 1024
# The standard library's decoder, not orjson: only it reports where a value ends (``raw_decode``).
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_NEXT_OPENING = re.compile(r"\n(?=[\[{])")
_UTF8 = "utf-8"
_ESCAPE = "surrogateescape"


@dataclass(frozen=True, slots=True)
class Record:
    """One unit of input: a JSON Lines line, or one value (a pretty-printed document) of a document file.

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
        if number == 1 and first.startswith(_BOM):
            first = first[len(_BOM) :]
        if first.strip():
            break
    else:
        return
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        pass
    else:
        yield from _lines(name, file_index, number, itertools.chain((first,), lines))
        return
    if first.lstrip()[:1] in (b"{", b"["):
        yield from _Documents(name, file_index, number, first, lines)
    else:
        yield from _lines(name, file_index, number, itertools.chain((first,), lines))


def _lines(name: str, file_index: int, number: int, lines: Iterable[bytes]) -> Iterator[Record]:
    for offset, line in enumerate(lines):
        if line.strip():
            yield Record(name, file_index, number + offset, line)


class _Documents:
    """The records of a file read as concatenated JSON values (``jq .`` output), over bounded chunks of lines.

    Text is decoded with ``surrogateescape`` so each record's bytes are exactly the file's, invalid UTF-8 included
    (the translation refuses those as it would a JSON Lines line).
    """

    def __init__(self, name: str, file_index: int, number: int, first: bytes, lines: Iterator[bytes]) -> None:
        self.name = name
        self.file_index = file_index
        self.lines = lines
        self.text = first.decode(_UTF8, _ESCAPE)
        self.more = True  # lines may hold more input
        # Until a first value decodes, the text is kept from the first line on, to read it again as lines if none does.
        self.first = True
        self.first_line = number
        # Line numbers are counted lazily: ``mark_line`` is the line of ``text[mark]``.
        self.mark = 0
        self.mark_line = number

    def line_of(self, index: int) -> int:
        self.mark_line += self.text.count("\n", self.mark, index)
        self.mark = index
        return self.mark_line

    def refill(self, start: int, *, to_closer: bool) -> int:
        """Drop the text before ``start`` and append at least as much again, or a chunk; return where ``start`` is.

        Growing the pending text geometrically keeps the decoding attempts of a large value linear in its size.
        With ``to_closer``, stop early after a line opening with ``}`` or ``]``: that is where ``jq`` and
        ``json.dumps(indent=...)`` end a top-level value, so a value is usually decoded at the first attempt and a
        pipe that trickles documents is not held back for a whole chunk.
        """
        keep = 0 if self.first else start
        self.line_of(keep)
        pending = self.text[keep:]
        self.mark = 0
        want = max(_CHUNK, len(pending))
        got = 0
        added: list[str] = []
        for raw in self.lines:
            added.append(raw.decode(_UTF8, _ESCAPE))
            got += len(raw)
            if got >= want or (to_closer and raw[:1] in (b"}", b"]")):
                break
        else:
            self.more = False
        self.text = pending + "".join(added)
        return start - keep

    def too_large(self, start: int) -> ConfigurationError:
        return ConfigurationError(
            f"cannot read {self.name}: the JSON document at line {self.line_of(start)} is over "
            f"{_size(MAX_DOCUMENT_BYTES)}, the most read as one document; convert the file to JSON Lines first, "
            f"e.g. jq -c '.[]' (an array) or jq -c . (objects)"
        )

    def __iter__(self) -> Iterator[Record]:
        pos = 0
        misses = 0  # attempts that found the current value incomplete
        while True:
            space = _SPACE.match(self.text, pos)
            pos = space.end() if space is not None else pos
            if pos == len(self.text):
                if not self.more:
                    return
                pos = self.refill(pos, to_closer=True)
                continue
            try:
                end = self.decode(pos)
            except (ValueError, RecursionError) as error:
                # Lines are read whole and no JSON token spans a newline, so a value cut short by the end of the
                # text fails at its (whitespace-trimmed) end; an error before that is in the value itself.
                incomplete = isinstance(error, json.JSONDecodeError) and error.pos >= len(self.text.rstrip())
                if incomplete and self.more:
                    if len(self.text) - pos > MAX_DOCUMENT_BYTES:
                        raise self.too_large(pos) from None
                    misses += 1
                    pos = self.refill(pos, to_closer=misses == 1)
                    continue
                if self.first:
                    yield from self.as_lines()
                    return
                pos = yield from self.skip_bad(pos)
                misses = 0
                continue
            if self.first:
                if "\n" not in self.text[pos:end]:
                    # The first line holds a value and more (it did not parse alone): JSON Lines with a bad line.
                    yield from self.as_lines()
                    return
                self.first = False
            yield Record(self.name, self.file_index, self.line_of(pos), self.text[pos:end].encode(_UTF8, _ESCAPE))
            pos = end
            misses = 0

    def decode(self, pos: int) -> int:
        """Where the value starting at ``pos`` ends; raises as ``json.JSONDecoder.raw_decode`` does."""
        # Refilled up to a closing line, the text usually holds exactly this value: orjson checks that much faster.
        # Otherwise (several values, an error) the standard library finds where the value ends.
        pending = self.text[pos:]
        try:
            orjson.loads(pending)
        except orjson.JSONDecodeError:
            return _DECODER.raw_decode(self.text, pos)[1]
        return pos + len(pending.rstrip())

    def as_lines(self) -> Iterator[Record]:
        """Read the file as lines from its first, as JSON Lines with a bad first line is."""
        self.first = False
        # The text holds whole lines from the first on; split where the file's own iteration would (only at "\n").
        held = self.text.encode(_UTF8, _ESCAPE).split(b"\n")
        self.text = ""
        lines = [line + b"\n" for line in held[:-1]]
        if held[-1]:
            lines.append(held[-1])
        return _lines(self.name, self.file_index, self.first_line, itertools.chain(lines, self.lines))

    def skip_bad(self, start: int) -> Generator[Record, None, int]:
        """Yield a value that does not decode as one record, up to the next line opening with ``{`` or ``[``.

        The record is refused downstream (``invalid_json``), once, rather than each of its lines; reading
        resumes at that next line. Returns where.
        """
        while True:
            found = _NEXT_OPENING.search(self.text, start + 1)
            if found is not None:
                end = found.end()
            elif not self.more or len(self.text) - start > MAX_DOCUMENT_BYTES:
                end = len(self.text)  # a line boundary: lines are read whole
            else:
                start = self.refill(start, to_closer=False)
                continue
            line = self.line_of(start)
            yield Record(self.name, self.file_index, line, self.text[start:end].encode(_UTF8, _ESCAPE))
            return end


def _size(count: int) -> str:
    return f"{count // _MIB} MiB" if count % _MIB == 0 else f"{count:,} bytes"


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
            except (OSError, EOFError, zlib.error, UnicodeError) as error:
                # A corrupt or truncated gzip member or an I/O error mid-file: say which input, and stop rather
                # than guess at what the rest holds.
                raise ConfigurationError(f"cannot read {name}: {_read_failure(error)}") from None


def _read_failure(error: Exception) -> str:
    """One line on why an input could not be read, without the names of the modules that noticed."""
    if isinstance(error, gzip.BadGzipFile):
        if str(error).startswith("Not a gzipped file"):  # its message quotes the first bytes: keep them out
            return "not a gzip file (its name ends in .gz, but it does not start as gzip data does)"
        return f"corrupt gzip data ({str(error).lower()})"
    if isinstance(error, EOFError):
        return "the gzip data ends early (a truncated file?)"
    if isinstance(error, zlib.error):
        return "corrupt gzip data (the compressed stream does not decode)"
    if isinstance(error, UnicodeError):
        return "the text cannot be decoded"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
