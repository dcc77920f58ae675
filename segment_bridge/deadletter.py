"""The dead-letter file: one JSON Lines record per refused or failed event, replayable with ``replay``.

Records are ``{"reason", "id", "type", "message", "hint", "event"}``; ``event`` is the original CloudEvent (the
element, for a batched array) or the raw text when it was not JSON. Records carry no secrets: only what the event
itself held and the bridge's own reasons.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.outcomes import Refusal

__all__ = ["DeadLetterWriter"]


class DeadLetterWriter:
    """Append dead-letter records to a JSON Lines file, flushing each so a crash loses none.

    Thread-safe; the file is created on the first record, so a clean run leaves no empty file behind.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

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
                    self._file = self.path.open("ab")
                self._file.write(line)
                self._file.flush()
            except OSError as error:
                raise ConfigurationError(
                    f"cannot write dead-letter file {self.path}: {error.strerror or type(error).__name__}"
                ) from None
            self.count += 1

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
