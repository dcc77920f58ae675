"""The dead-letter file: one JSON Lines record per refused or failed event, replayable with ``replay``.

Records are ``{"reason", "id", "type", "message", "hint", "event"}``; ``event`` is the original CloudEvent (the
element, for a batched array) or the raw text when it was not JSON. Records carry no secrets: only what the event
itself held and the bridge's own reasons.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.outcomes import Refusal

__all__ = ["DeadLetterWriter"]


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
        record = refusal.dead_letter_record(event)
        try:
            line = orjson.dumps(record, default=str) + b"\n"
        except TypeError:
            # An integer beyond 64 bits (the reason such an event is refused): keep it exact, so the record replays
            # to the same refusal instead of a rounded float.
            line = json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
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
