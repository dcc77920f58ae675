"""A replay's resume point: which input positions are resolved, kept in a small JSON file replaced atomically.

A position (``file index, line``, plus a byte column for values sharing a line) is *resolved* once every event read
from it is delivered, refused, acknowledged, or failed and written to the dead-letter file. :class:`PositionWindow`
follows the positions read but not yet known to be resolved, as the delivery engine hands back each message's
outcome; :class:`Checkpoint` stores the last position up to which everything is resolved, plus the last position
read and the unresolved positions before it (:class:`ResumePoint`), so a resumed run skips only resolved positions.
:class:`InputHead` fingerprints each input's first bytes, so a checkpoint never resumes into a different file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from segment_bridge.delivery import Clock
from segment_bridge.exceptions import ConfigurationError

__all__ = [
    "CHECKPOINT_HEAD_BYTES",
    "Checkpoint",
    "InputHead",
    "Position",
    "PositionSlot",
    "PositionWindow",
    "ResumePoint",
    "is_regular_file",
]

_CHECKPOINT_VERSION = 1

#: A place in the input: (file index, 1-based line), plus the byte column for a value that does not open its line
#: (values sharing a line, as in a Firehose archive); see ``sources.Record.position``. Positions only grow along
#: the input.
Position = tuple[int, ...]


#: Bytes at the start of each input that a checkpoint fingerprints: enough to tell a rewritten file from the one
#: the checkpoint was written for, and cheap to read again at every start.
CHECKPOINT_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class InputHead:
    """The fingerprint of one input's first bytes, so a checkpoint never resumes into a different file.

    Only the head is hashed: an archive that grows by appending keeps its checkpoint (the first ``size`` bytes
    are unchanged), while a file rewritten under the same name is caught.
    """

    name: str
    size: int
    sha256: str

    @classmethod
    def of(cls, name: str, limit: int = CHECKPOINT_HEAD_BYTES) -> InputHead | None:
        """Fingerprint ``name``'s first ``limit`` bytes; ``None`` when it cannot be read (reading reports it)."""
        if not is_regular_file(name):
            return None  # reading a pipe here would take its first bytes away from the replay
        try:
            with open(name, "rb") as file:
                head = file.read(limit)
        except OSError:
            return None
        return cls(name, len(head), hashlib.sha256(head).hexdigest())

    def matches(self) -> bool:
        """Whether the file now starts with the bytes it started with when fingerprinted."""
        now = InputHead.of(self.name, self.size)
        return now is not None and now.size == self.size and now.sha256 == self.sha256


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """What a checkpoint says is done: up to ``position`` everything, up to ``through`` all but ``pending``.

    ``pending`` are the positions still in flight, or waiting in a batch, when it was saved. With ``position``
    alone, a batch held in retries would hold back everything read after it, and a resumed run would send all of
    that again; with the positions after it that finished, a resume re-sends about what was in flight.
    """

    position: Position
    through: Position
    pending: frozenset[Position] = frozenset()

    def done(self, position: Position) -> bool:
        """Whether ``position`` was resolved in the run that saved this point."""
        return position <= self.position or (position <= self.through and position not in self.pending)


def _position(parts: Any) -> Position:
    """A position read from a checkpoint file: ``(file, line)`` or ``(file, line, column)``, all whole numbers."""
    if not isinstance(parts, list) or len(parts) not in (2, 3):
        raise ValueError("a position is 2 or 3 numbers")
    return tuple(int(part) for part in parts)


class Checkpoint:
    """A replay's resume point in a small JSON file, replaced atomically.

    Args:
        path: the checkpoint file.
        key: identifies the inputs (e.g. their names); a checkpoint written for other inputs is refused.
        heads: fingerprints of the inputs' first bytes; a checkpoint whose inputs now start differently is
            refused, since its position would point into other data and skip events never sent.
        interval: least seconds between two saves during a run (the final save always happens).
        clock: monotonic seconds, for the interval.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: str = "",
        heads: Sequence[InputHead] = (),
        interval: float = 0.5,
        clock: Clock = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.heads = tuple(heads)
        self.interval = interval
        self._clock = clock
        self._saved: Position | ResumePoint | None = None
        self._last_save = float("-inf")
        #: What the loaded checkpoint says is done, beyond :meth:`load`'s position (``None`` before a load).
        self.resume: ResumePoint | None = None

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"

    def load(self) -> Position | None:
        """The saved position, or ``None`` when there is no checkpoint yet.

        Raises:
            ConfigurationError: the file is unreadable, malformed, was written for other inputs, or an input
                no longer starts with the bytes it had when the checkpoint was written.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigurationError(f"cannot read checkpoint {str(self.path)!r}: {exc.strerror}") from None
        try:
            data = orjson.loads(raw)
            loaded = _position(data["position"])
            key = str(data.get("key", ""))
            # Checkpoints written before fingerprints existed have none: they resume as they always did.
            heads = [InputHead(str(h["name"]), int(h["size"]), str(h["sha256"])) for h in data.get("heads", [])]
            # ... nor do those written before the positions done past the first unfinished one were kept.
            through = _position(data["through"]) if "through" in data else loaded
            resume = ResumePoint(loaded, max(loaded, through), frozenset(_position(p) for p in data.get("pending", [])))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            raise ConfigurationError(f"checkpoint {str(self.path)!r} is not a segment-bridge checkpoint") from None
        if key != self.key:
            raise ConfigurationError(
                f"checkpoint {str(self.path)!r} was written for other inputs; remove it to start over"
            )
        for head in heads:
            if not head.matches():
                raise ConfigurationError(
                    f"{head.name!r} changed since checkpoint {str(self.path)!r} was written (its first {head.size} "
                    "bytes differ): resuming would skip events never sent; remove the checkpoint to start over"
                )
        self._saved = loaded
        self.resume = resume
        return loaded

    def due(self) -> bool:
        """Whether :meth:`save` without ``force`` would write now (the interval since the last save has passed)."""
        return self._clock() - self._last_save >= self.interval

    def save(self, position: Position, *, force: bool = False, ahead: ResumePoint | None = None) -> bool:
        """Store ``position`` unless it is already stored or the last save is too recent; say if it wrote.

        ``ahead``, when given, also records the positions after ``position`` already done (its ``through`` minus
        its ``pending``); its own ``position`` is ignored.

        The temporary file is flushed to disk before it replaces the old one, so the checkpoint on disk is
        always a complete file, old or new, even after a power cut.
        """
        state: Position | ResumePoint = position
        if ahead is not None and ahead.through > position:
            state = ResumePoint(position, ahead.through, ahead.pending)
        if state == self._saved:
            return False
        now = self._clock()
        if not force and now - self._last_save < self.interval:
            return False
        heads = [{"name": h.name, "size": h.size, "sha256": h.sha256} for h in self.heads]
        content: dict[str, Any] = {
            "version": _CHECKPOINT_VERSION,
            "key": self.key,
            "heads": heads,
            "position": list(position),
        }
        if isinstance(state, ResumePoint):
            content["through"] = list(state.through)
            content["pending"] = sorted(map(list, state.pending))
        data = orjson.dumps(content)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ConfigurationError(f"cannot write checkpoint {str(self.path)!r}: {exc.strerror}") from None
        self._saved = state
        self._last_save = now
        return True


class PositionSlot:
    """One input position in the checkpoint window: how many of its messages are still unresolved."""

    __slots__ = ("complete", "pending", "position")

    def __init__(self, position: Position) -> None:
        self.position = position
        self.pending = 0
        self.complete = False  # every event of this position has been read


class PositionWindow:
    """Positions not yet known to be resolved, in input order; the front ones resolve the checkpoint.

    Between two positions with pending messages at most one resolved position is kept (the last of a run),
    so the window is bounded by the messages in flight, not by the input.
    """

    def __init__(self) -> None:
        self._slots: deque[PositionSlot] = deque()
        self.resolved: Position | None = None

    def open(self, position: Position) -> PositionSlot:
        """Start following ``position`` (read now, after every position opened before); the previous one is whole."""
        self._close_tail()
        slot = PositionSlot(position)
        self._slots.append(slot)
        return slot

    def finish(self) -> None:
        """The input ended: the last position opened is whole."""
        self._close_tail()
        self.advance()

    def _close_tail(self) -> None:
        if not self._slots:
            return
        tail = self._slots[-1]
        tail.complete = True
        if tail.pending == 0 and len(self._slots) >= 2:
            before = self._slots[-2]
            if before.complete and before.pending == 0:
                # A run of resolved positions: only its last matters for the checkpoint.
                before.position = tail.position
                self._slots.pop()

    def advance(self) -> Position | None:
        """Drop the resolved positions at the front; the last position up to which everything is resolved."""
        while self._slots and self._slots[0].complete and self._slots[0].pending == 0:
            self.resolved = self._slots.popleft().position
        return self.resolved

    def ahead(self, limit: int) -> tuple[Position, list[Position]] | None:
        """The last position read and the unresolved positions up to it (at most ``limit`` of them).

        Every position in the window that is not unresolved is resolved, and so is every position between two
        of them that the window no longer holds (it was collapsed into a run of resolved ones). Past ``limit``
        unresolved positions (failures kept for the next run, with no dead-letter file), the answer stops at the
        last one listed: what follows it is not claimed, so it is sent again.
        """
        if not self._slots:
            return None
        pending: list[Position] = []
        for slot in self._slots:
            if slot.pending or not slot.complete:
                if len(pending) == limit:
                    return pending[-1], pending
                pending.append(slot.position)
        return self._slots[-1].position, pending


def is_regular_file(name: str) -> bool:
    """Whether ``name`` is a regular file (``True`` when it cannot be examined: reading it reports that).

    Standard input (``-``), a FIFO or a process substitution (``<(...)``) is read once and may trickle; a regular
    file can be read again and never waits for a writer.
    """
    if name == "-":
        return False
    try:
        return stat.S_ISREG(os.stat(name).st_mode)
    except OSError:
        return True  # reading it reports the problem
