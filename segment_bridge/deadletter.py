"""The dead-letter file: one JSON Lines record per refused or failed event, replayable with ``replay``.

Records are ``{"reason", "id", "type", "message", "hint", "event"}``; ``event`` is the original CloudEvent (the
element, for a batched array) or the raw text when it was not JSON. Records carry no secrets: only what the event
itself held and the bridge's own reasons.

A record can always be written, whatever the event holds. An event that cannot be embedded as JSON (nested deeper
than a JSON writer goes, or holding a number beyond double range) is kept as its JSON text, a string, and input
that is not UTF-8 as base64; a record so kept says how in a seventh key, ``"event_encoding"`` (``"json-text"`` or
``"base64"``), and replays to the same outcome as the original.
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.outcomes import Refusal

__all__ = ["BASE64", "JSON_TEXT", "DeadLetterWriter", "record_line"]


#: ``event_encoding`` of a record whose ``event`` is the original's JSON text (too deep to embed as JSON).
JSON_TEXT = "json-text"
#: ``event_encoding`` of a record whose ``event`` is the original bytes in base64 (they are not UTF-8 text).
BASE64 = "base64"


def record_line(refusal: Refusal, event: Any) -> bytes:
    """The dead-letter record of ``event`` as one JSON line (with its newline). Never raises for the event's content.

    ``event`` is the decoded original, its raw text (a string), or raw bytes that are not UTF-8.
    """
    if isinstance(event, bytes | bytearray):
        return _line_with(refusal, base64.b64encode(event).decode("ascii"), BASE64)
    record = refusal.dead_letter_record(event)
    try:
        line = orjson.dumps(record, default=str) + b"\n"
    except TypeError:
        pass  # an integer beyond 64 bits, or nesting deeper than orjson writes
    else:
        # orjson writes a number beyond double range (read as infinity) as null, which would replay differently.
        if b"null" not in line or not _has_infinity(event):
            return line
    try:
        # Keeps an integer beyond 64 bits exact (the reason such an event is refused), so the record replays to
        # the same refusal instead of a rounded float.
        text = json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        # Text with a lone surrogate (a str input that was not UTF-8): its bytes, as Python would write them.
        if isinstance(event, str):
            return record_line(refusal, event.encode("utf-8", "surrogatepass"))
    except (RecursionError, ValueError):
        pass  # nested deeper than the standard library writes (its limit is Python's recursion limit)
    return _line_with(refusal, _json_text(event), JSON_TEXT)


def _line_with(refusal: Refusal, event: str, encoding: str) -> bytes:
    record = {**refusal.dead_letter_record(event), "event_encoding": encoding}
    return json.dumps(record, default=str, separators=(",", ":")).encode() + b"\n"


def _json_text(value: Any) -> str:
    """``value`` as compact JSON text, at any depth: written with a stack of its own, not by recursion."""
    parts: list[str] = []
    # Each entry is a value to write, or a literal piece of text (a separator or a closing bracket).
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        literal, item = stack.pop()
        if literal:
            parts.append(item)
        elif isinstance(item, dict):
            parts.append("{")
            stack.append((True, "}"))
            for index, (key, element) in enumerate(reversed(list(item.items()))):
                stack.append((False, element))
                stack.append((True, _scalar(str(key)) + ":"))
                if index < len(item) - 1:
                    stack.append((True, ","))
        elif isinstance(item, list | tuple):
            parts.append("[")
            stack.append((True, "]"))
            for index, element in enumerate(reversed(item)):
                stack.append((False, element))
                if index < len(item) - 1:
                    stack.append((True, ","))
        else:
            parts.append(_scalar(item))
    return "".join(parts)


def _has_infinity(value: Any) -> bool:
    values = [value]
    while values:
        item = values.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            values.extend(item.values())
        elif isinstance(item, list | tuple):
            values.extend(item)
    return False


def _scalar(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "-1e999" if value < 0 else "1e999"  # read back as the same infinity (the decoders' float_hook)
    try:
        return json.dumps(value, default=str)
    except ValueError:  # an integer too long for Python to write in decimal: readable, if no longer exact
        return json.dumps(f"<integer of {value.bit_length()} bits>")


class DeadLetterWriter:
    """Append dead-letter records to a JSON Lines file, flushing each so a crash of the process loses none.

    A record is in the operating system's hands once :meth:`write` returns; :meth:`sync` makes every record written
    so far durable on disk (``fsync``), for whoever must not acknowledge an event before (``serve``).
    Thread-safe; the file is created on the first record, so a clean run leaves no empty file behind.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        # Records written (count at the last write) and made durable; the file's directory entry, once created.
        self._sync_lock = threading.Lock()
        self._synced = 0
        self._created = False

    def write(self, refusal: Refusal, event: Any) -> None:
        """Record one refused or failed event.

        Raises:
            ConfigurationError: the file cannot be opened or written.
        """
        line = record_line(refusal, event)
        with self._lock:
            try:
                if self._file is None:
                    self._created = not self.path.exists()
                    self._file = self.path.open("ab")
                self._file.write(line)
                self._file.flush()
            except OSError as error:
                raise ConfigurationError(
                    f"cannot write dead-letter file {self.path}: {error.strerror or type(error).__name__}"
                ) from None
            self.count += 1

    def sync(self) -> None:
        """Make every record written so far durable (``fsync``); concurrent callers share one ``fsync``.

        A caller whose records an ``fsync`` already covers returns at once; records written while one runs are
        covered by the next, so under load one ``fsync`` serves many records.

        Raises:
            ConfigurationError: the file cannot be synced.
        """
        with self._lock:
            wanted = self.count
        with self._sync_lock:
            if self._synced >= wanted:
                return
            with self._lock:
                file, covered, created = self._file, self.count, self._created
            if file is None:
                return
            try:
                os.fsync(file.fileno())
                if created:
                    # A new file is durable only once its directory entry is.
                    directory = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(directory)
                    finally:
                        os.close(directory)
                    with self._lock:
                        self._created = False
            except OSError as error:
                raise ConfigurationError(
                    f"cannot sync dead-letter file {self.path}: {error.strerror or type(error).__name__}"
                ) from None
            self._synced = covered

    def close(self) -> None:
        """Close the file if it was opened."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> DeadLetterWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
