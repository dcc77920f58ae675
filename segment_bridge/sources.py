"""Read archived CloudEvents: JSON Lines or concatenated JSON values, plain or gzip, from files or stdin.

Records are streamed, so memory stays bounded whatever the file size. A UTF-8 byte-order mark opening an input is
dropped. How an input is read is decided by its first non-blank line:

* it is JSON: the input is **JSON Lines**, one event (or one array of events) per line, each non-blank line one
  record, whatever follows; a line that is not JSON is still one record (refused downstream as ``invalid_json``).
  This is the common path and it does no more than split lines.
* it is not JSON but opens with ``{`` or ``[``: the input is read as **concatenated JSON values**, with or without
  whitespace between them: ``jq .`` output and pretty-printed arrays, and Kinesis Data Firehose archives, which
  write one event after another with no separator at all (``{...}{...}{...}``). Each value is one record (an
  array is one record of several events, as on a JSON Lines line) positioned at the line and column (in bytes)
  where it starts. The input is read a chunk at a time, never a line at a time, so a file that is one long line
  costs no more memory than any other. A value that does not decode is one record up to the next place a value
  plausibly starts (a line opening with ``{`` or ``[``, or ``{``/``[`` right after a closing ``}``/``]``),
  where reading resumes. A single value may not exceed :data:`MAX_DOCUMENT_BYTES`: a larger one stops the read
  with a :class:`~segment_bridge.exceptions.ConfigurationError` naming the file (convert such a file to JSON
  Lines). If the *first* value does not decode, or is followed on its line by something that opens no value, and
  that first line ends within the first chunk, the input is JSON Lines with a bad first line after all and is read
  line by line.
* anything else: the input is read line by line, each non-blank line one record.

Any failure to read an input (I/O, corrupt or truncated gzip) is a one-line
:class:`~segment_bridge.exceptions.ConfigurationError` naming it.

A little over 500 lines for a reason: the three ways of reading decide between themselves on the same first chunk,
and positions must agree across them for the checkpoint, so they stay together.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import BinaryIO

import msgspec
import orjson

from segment_bridge.exceptions import ConfigurationError

__all__ = ["MAX_DOCUMENT_BYTES", "Record", "iter_records", "open_input"]

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_MIB = 1024 * 1024
#: Largest JSON value read as one record from concatenated values; JSON Lines lines have no limit.
MAX_DOCUMENT_BYTES = 64 * _MIB
# Concatenated values are read this much at a time at least (and the first line of any input, at most, before its
# form is known), so a large value costs few decoding attempts and a file of one long line is never held whole.
_CHUNK = 64 * 1024
# The bytes a value is first looked for in: a Twilio call event is about 1.6 KB, so one attempt usually does.
_WINDOW = 4096
# The standard library's decoder: the fallback that tells where a value ends when msgspec will not (value_at).
_DECODER = json.JSONDecoder()
_SPACE = re.compile(rb"[ \t\n\r]*")
_LINE_SPACE = re.compile(rb"[ \t\r]*")
_SPACES = (b" ", b"\t", b"\r", b"\n")
# Where reading resumes after a value that does not decode: a line opening a value, or a value opening right after
# one closed (Firehose writes no separator).
_RESYNC = re.compile(rb"\n(?=[\[{])|[}\]](?=[ \t\r]*[\[{])")
_OPENERS = (b"{", b"[")
_CLOSERS = (b"}", b"]")
_UTF8 = "utf-8"
_ESCAPE = "surrogateescape"
# Where a value ends is found by msgspec, decoding it as raw JSON (checked, but built into no objects): it either
# takes the window as one value or says where the next one starts, or that the window cut it short. Its messages
# (msgspec 0.18+) tell those apart; any other error, or another wording, goes to the standard library's decoder,
# which is slower but says the same thing.
_RAW = msgspec.json.Decoder(msgspec.Raw)
_AFTER_VALUE = re.compile(r"^JSON is malformed: trailing characters \(byte ([0-9]+)\)$")
_CUT_SHORT = "Input data was truncated"


class Record(msgspec.Struct, frozen=True, gc=False):
    """One unit of input: a JSON Lines line, or one value of a file of concatenated values.

    ``file_index``, ``line`` (1-based) and ``column`` (1-based, in bytes; 1 for JSON Lines) locate it, for
    messages and replay checkpoints.
    """

    # A msgspec struct, built in C: one is made per line, and a frozen dataclass's __init__ cost as much as the
    # rest of reading a JSON Lines line.

    name: str
    file_index: int
    line: int
    raw: bytes
    column: int = 1

    @property
    def location(self) -> str:
        """``LINE``, or ``LINE:COLUMN`` for a value that does not open its line (``FILE:`` goes before it)."""
        return f"{self.line}" if self.column == 1 else f"{self.line}:{self.column}"

    @property
    def position(self) -> tuple[int, ...]:
        """A key that grows with each record of an input sequence, for replay checkpoints.

        ``(file_index, line)``, plus the column when the record does not open its line (values that share a line,
        as in a Firehose archive).
        """
        if self.column == 1:
            return (self.file_index, self.line)
        return (self.file_index, self.line, self.column)


def open_input(name: str, stack: ExitStack, on_open: Callable[[BinaryIO], None] | None = None) -> BinaryIO:
    """Open a path (``-`` is stdin) for binary reading, decompressing gzip transparently.

    Whatever is opened is closed by ``stack``; stdin is left open. ``on_open``, when given, receives the file as
    opened, before any decompression: its ``tell()`` is how far into the bytes on disk reading got.

    Raises:
        ConfigurationError: the path cannot be opened.
    """
    if name == "-":
        stream: BinaryIO = _stdin(stack)
    else:
        try:
            stream = stack.enter_context(Path(name).open("rb"))  # noqa: SIM115 - the stack is the context manager
        except OSError as error:
            raise ConfigurationError(f"cannot read {name}: {error.strerror or type(error).__name__}") from None
    if on_open is not None:
        on_open(stream)
    if name.endswith(".gz") or _peek(stream).startswith(_GZIP_MAGIC):
        # GzipFile never closes a file object it was handed; the stack closes both.
        return stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb"))  # type: ignore[return-value]
    return stream


def _stdin(stack: ExitStack) -> BinaryIO:
    """Standard input, through a reader of its own over a duplicate of its descriptor (closed by ``stack``).

    ``replay`` reads on a daemon thread. Interrupted while that thread waits on a pipe still open (``tail -f``),
    interpreter shutdown would close ``sys.stdin``'s buffer, whose lock the thread holds, and abort ("Fatal Python
    error: _enter_buffered_busy", status 134) after the summary. Nothing at shutdown touches a reader of our own.
    """
    try:
        descriptor = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # not a real descriptor (an embedding application's stream)
        return sys.stdin.buffer
    return stack.enter_context(open(os.dup(descriptor), "rb"))


def _peek(stream: BinaryIO) -> bytes:
    peek = getattr(stream, "peek", None)
    return peek(2)[:2] if peek is not None else b""


class _Source:
    """An input read in bounded pieces: the first line up to a chunk, then lines, or chunks of bytes.

    A stream with ``readline`` (every file and stdin) is read so that a file of one long line is never held whole:
    its first line in pieces of at most a chunk, concatenated values a chunk at a time (``read1``: what is there,
    without waiting for a whole chunk from a pipe). Anything else that yields lines (a test's stand-in for a pipe)
    is read a line at a time.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        readline = getattr(stream, "readline", None)
        self._lines: Iterator[bytes] | None = None if readline is not None else iter(stream)
        if readline is None:
            self.line_piece: Callable[[], bytes] = lambda: next(self.lines(), b"")
            self.chunk: Callable[[], bytes] = self.line_piece
        else:
            read = getattr(stream, "read1", None) or stream.read
            self.line_piece = lambda: readline(_CHUNK)
            self.chunk = lambda: read(_CHUNK)

    @property
    def by_line(self) -> bool:
        """Whether each piece is a whole line (the input has no ``readline``)."""
        return self._lines is not None

    def lines(self) -> Iterator[bytes]:
        """The rest of the input, a line at a time (the fast way: the stream's own iteration)."""
        return self._lines if self._lines is not None else iter(self.stream)

    def rest_of_line(self) -> bytes:
        """The rest of the current line, however long (JSON Lines lines have no limit)."""
        if self.by_line:
            return b""  # a piece is always a whole line
        return self.stream.readline()


def _records_of(name: str, file_index: int, stream: BinaryIO) -> Iterator[Record]:
    source = _Source(stream)
    number = 1
    first = source.line_piece()
    # A piece is a whole line unless it filled a chunk without reaching a newline (counted with the BOM it held).
    whole = first.endswith(b"\n") or len(first) < _CHUNK or source.by_line
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    skipped = 0  # blanks of the current line read in earlier pieces, which count in a value's column
    while not first.strip():
        if not first:
            return
        if first.endswith(b"\n"):
            number += 1
            skipped = 0
        else:
            skipped += len(first)
        first = source.line_piece()
        whole = first.endswith(b"\n") or len(first) < _CHUNK or source.by_line
    if whole:
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            pass
        else:
            yield from _lines(name, file_index, number, itertools.chain((first,), source.lines()))
            return
    if first.lstrip()[:1] in _OPENERS:
        yield from _Values(name, file_index, number, first, source, 1 + skipped)
        return
    if not whole:
        first += source.rest_of_line()
    yield from _lines(name, file_index, number, itertools.chain((first,), source.lines()))


def _lines(name: str, file_index: int, number: int, lines: Iterable[bytes]) -> Iterator[Record]:
    for offset, line in enumerate(lines):
        if line.strip():
            yield Record(name, file_index, number + offset, line)


_VALUE, _INCOMPLETE, _INVALID = range(3)


class _Values:
    """The records of a file read as concatenated JSON values, over a bounded buffer of its bytes.

    Work is on bytes, so each record's bytes are exactly the file's, invalid UTF-8 included (the translation
    refuses those as it would a JSON Lines line). msgspec finds where each value ends (see ``_RAW``), in a window
    a little larger than an event that grows when the value is larger.
    """

    def __init__(self, name: str, file_index: int, number: int, first: bytes, source: _Source, column: int = 1) -> None:
        self.name = name
        self.file_index = file_index
        self.source = source
        self.buf = first
        self.more = True  # the source may hold more input
        # Until the first value is settled, the buffer is kept from the first line on, to read it again as lines.
        self.first = True
        self.first_line = number
        # Positions are counted lazily: ``buf[mark]`` is at ``mark_line``, ``mark_column``.
        self.mark = 0
        self.mark_line = number
        self.mark_column = column

    def locate(self, index: int) -> tuple[int, int]:
        """The line and byte column of ``buf[index]`` (``index`` never goes back before the last one asked)."""
        buf, mark = self.buf, self.mark
        newlines = buf.count(b"\n", mark, index)
        if newlines:
            self.mark_line += newlines
            self.mark_column = index - buf.rfind(b"\n", mark, index)
        else:
            self.mark_column += index - mark
        self.mark = index
        return self.mark_line, self.mark_column

    def refill(self, start: int, *, to_closer: bool) -> int:
        """Drop the buffer before ``start`` and append at least as much again, or a chunk; return where ``start`` is.

        Growing the pending bytes geometrically keeps the decoding attempts of a large value linear in its size.
        With ``to_closer``, stop early after a piece holding a ``}`` or ``]``, which may close the value: a pipe
        that trickles documents is not held back for a whole chunk.
        """
        keep = 0 if self.first else start
        self.locate(keep)
        pending = self.buf[keep:]
        self.mark = 0
        want = max(_CHUNK, len(pending))
        got = 0
        added: list[bytes] = []
        while got < want:
            piece = self.source.chunk()
            if not piece:
                self.more = False
                break
            added.append(piece)
            got += len(piece)
            if to_closer and (b"}" in piece or b"]" in piece):
                break
        self.buf = pending + b"".join(added)
        return start - keep

    def too_large(self, start: int) -> ConfigurationError:
        return ConfigurationError(
            f"cannot read {self.name}: the JSON document at line {self.locate(start)[0]} is over "
            f"{_size(MAX_DOCUMENT_BYTES)}, the most read as one document; convert the file to JSON Lines first, "
            f"e.g. jq -c '.[]' (an array) or jq -c . (objects)"
        )

    def __iter__(self) -> Iterator[Record]:
        pos = 0
        misses = 0  # attempts that found the current value incomplete
        while True:
            if self.buf[pos : pos + 1] in _SPACES:
                pos = _skip(_SPACE, self.buf, pos)
            if pos == len(self.buf):
                if not self.more:
                    return
                pos = self.refill(pos, to_closer=True)
                continue
            kind, end = self.value_at(pos)
            if kind == _INCOMPLETE and self.more:
                if len(self.buf) - pos > MAX_DOCUMENT_BYTES:
                    if self.first and b"\n" not in self.buf:  # one long first line: JSON Lines has no limit
                        yield from self.as_lines()
                        return
                    raise self.too_large(pos) from None
                misses += 1
                pos = self.refill(pos, to_closer=misses == 1)
                continue
            if kind != _VALUE:
                if self.first and b"\n" in self.buf:
                    yield from self.as_lines()
                    return
                # A first line longer than what was read is no JSON Lines line: a Firehose archive, read on.
                self.first = False
                pos = yield from self.skip_bad(pos)
                misses = 0
                continue
            if end - pos > MAX_DOCUMENT_BYTES:
                if self.first and b"\n" not in self.buf[pos:end]:  # one long first line: JSON Lines has no limit
                    yield from self.as_lines()
                    return
                raise self.too_large(pos) from None
            if self.first:
                settled = self.settle_first(pos, end)
                if settled is None:  # the rest of the first line has not arrived yet
                    self.refill(pos, to_closer=False)
                    continue
                if not settled and b"\n" in self.buf:
                    yield from self.as_lines()
                    return
                self.first = False
            line, column = self.locate(pos)
            yield Record(self.name, self.file_index, line, self.buf[pos:end], column)
            pos = end
            misses = 0

    def value_at(self, pos: int) -> tuple[int, int]:
        """``(kind, end)`` of the value starting at ``buf[pos]``.

        ``kind`` says whether it decoded whole (then it ends at ``end``), was cut short by the buffer's end, or is
        not a value.
        """
        buf = self.buf
        view = memoryview(buf)
        available = len(buf) - pos
        size = min(available, _WINDOW)
        while True:
            try:
                _RAW.decode(view[pos : pos + size])
            except msgspec.DecodeError as error:
                message = str(error)
                if message.startswith(_CUT_SHORT):
                    if size < available:
                        size = available if size * 4 > available else size * 4
                        continue
                    return _INCOMPLETE, 0
                after = _AFTER_VALUE.search(message)
                if after is None:
                    return self.value_at_slowly(pos)
                # msgspec counts from 1 the byte where the next value (or garbage) starts.
                end = pos + int(after.group(1)) - 1
                if not pos < end <= pos + size or buf[end : end + 1] in _SPACES:
                    return self.value_at_slowly(pos)
                return _VALUE, _end_of_value(buf, pos, end)
            except RecursionError:  # nested deeper than msgspec goes
                return self.value_at_slowly(pos)
            if size == available or buf[pos : pos + 1] in _OPENERS:
                return _VALUE, _end_of_value(buf, pos, pos + size)
            # A bare number or literal may go on past the window: look at everything there is.
            size = available

    def value_at_slowly(self, pos: int) -> tuple[int, int]:
        """:meth:`value_at` for what msgspec does not take: the standard library's decoder says where it ends.

        That is deep nesting or what msgspec calls malformed, which may still be JSON to the standard library.
        """
        text = self.buf[pos:].decode(_UTF8, _ESCAPE)
        try:
            end = _DECODER.raw_decode(text)[1]
        except (ValueError, RecursionError) as error:
            if not self.more:
                return _INVALID, 0
            # With more input to come, a value cut by the buffer's end fails at that end (or, for a string, where
            # the string opens): ask for more. An error well before the end is in the value itself.
            stripped = len(text.rstrip())
            at = error.pos if isinstance(error, json.JSONDecodeError) else 0
            cut = isinstance(error, json.JSONDecodeError) and (
                at >= stripped - 64 or error.msg.startswith("Unterminated string")
            )
            return (_INCOMPLETE if cut else _INVALID), 0
        return _VALUE, pos + len(text[:end].encode(_UTF8, _ESCAPE))

    def settle_first(self, pos: int, end: int) -> bool | None:
        """Whether the first value starts a file of values (``None``: the rest of its line is still to come).

        A value spanning lines is a document; a value followed on its line by another is concatenated values; a
        value alone on its line, or followed by anything else, makes the input JSON Lines.
        """
        if b"\n" in self.buf[pos:end]:
            return True
        after = _skip(_LINE_SPACE, self.buf, end)
        if after == len(self.buf):
            return None if self.more else True
        return self.buf[after : after + 1] in _OPENERS

    def as_lines(self) -> Iterator[Record]:
        """Read the file as lines from its first, as JSON Lines with a bad first line is."""
        self.first = False
        # The buffer holds the input from the first line on; split where the file's own iteration would.
        held = self.buf.split(b"\n")
        self.buf = b""
        lines = [line + b"\n" for line in held[:-1]]
        if held[-1]:
            lines.append(held[-1] + (self.source.rest_of_line() if self.more else b""))
        rest = self.source.lines() if self.more else iter(())
        return _lines(self.name, self.file_index, self.first_line, itertools.chain(lines, rest))

    def skip_bad(self, start: int) -> Generator[Record, None, int]:
        """Yield a value that does not decode as one record, up to where a value plausibly starts next.

        The record is refused downstream (``invalid_json``), once, rather than each of its lines; reading
        resumes there. Returns where.
        """
        while True:
            found = _RESYNC.search(self.buf, start + 1)
            if found is not None:
                end = found.end()
            elif not self.more:
                end = len(self.buf)
            elif len(self.buf) - start > MAX_DOCUMENT_BYTES:
                # No place to resume within the limit: end the record at the last line break, if any.
                newline = self.buf.rfind(b"\n", start + 1)
                end = newline + 1 if newline > start else len(self.buf)
            else:
                start = self.refill(start, to_closer=False)
                continue
            line, column = self.locate(start)
            yield Record(self.name, self.file_index, line, self.buf[start:end], column)
            return end


def _skip(space: re.Pattern[bytes], buf: bytes, pos: int) -> int:
    """Where the run of whitespace at ``buf[pos]`` ends."""
    match = space.match(buf, pos)
    return match.end() if match is not None else pos


def _end_of_value(buf: bytes, pos: int, end: int) -> int:
    """``end`` moved back over the whitespace between a value and what follows it."""
    while end > pos and buf[end - 1] in b" \t\r\n":
        end -= 1
    return end


def _size(count: int) -> str:
    return f"{count // _MIB} MiB" if count % _MIB == 0 else f"{count:,} bytes"


def iter_records(names: Iterable[str], on_open: Callable[[int, BinaryIO], None] | None = None) -> Iterator[Record]:
    """Yield the records of each input in order (``-`` is stdin); gzip files are read transparently.

    ``on_open``, when given, is called with each input's index and file as opened (compressed, for gzip), so a
    progress display can tell how far into each input's bytes reading got.

    Raises:
        ConfigurationError: an input cannot be opened or read.
    """
    for file_index, name in enumerate(names):
        with ExitStack() as stack:
            stream = open_input(name, stack, None if on_open is None else partial(on_open, file_index))
            try:
                yield from _records_of(name, file_index, stream)
            except (OSError, EOFError, zlib.error, UnicodeError) as error:
                # A corrupt or truncated gzip member or an I/O error mid-file: say which input, and stop rather
                # than guess at what the rest holds.
                raise ConfigurationError(f"cannot read {name}: {_read_failure(error, _offset(stream))}") from None


def _offset(stream: BinaryIO) -> int:
    """How far into its (decompressed) data ``stream`` got; 0 if it cannot say."""
    try:
        return stream.tell()
    except (OSError, ValueError):
        return 0


def _read_failure(error: Exception, offset: int = 0) -> str:
    """One line on why an input could not be read, without the names of the modules that noticed."""
    if isinstance(error, gzip.BadGzipFile):
        if str(error).startswith("Not a gzipped file"):  # its message quotes the bytes: keep them out
            if offset:  # a member decoded, then what follows it is not gzip
                return "corrupt gzip data (what follows the end of the gzip data is not gzip: a damaged file?)"
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
