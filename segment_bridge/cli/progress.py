"""Progress a person can plan by, for ``replay`` on a terminal: share of input read, events/s, outcomes, ETA.

Paced at 500 events/s, a backfill of a million events takes over half an hour; the user needs to know when it ends.
The line is drawn by tqdm (a small, dependency-free, well-kept library that redraws in place, sizes itself to the
terminal, and smooths the rate its ETA is computed from) and fed by counters: :class:`InputMeter` says how far
reading got in the bytes of each input on disk (compressed bytes for ``.gz``: the decompressed size is not known
before the end), and the run's counts (:class:`Counts`, e.g. ``replay``'s ``ReplaySummary``) give the rest::

    segment-bridge:  38%|███████▋        | 91.2M/240M [12:03<19:41], 497 events/s · delivered 359,512 · refused 3 ·
    failed 0                                                                  (one line, as wide as the terminal)

The ETA is the bytes still to read at the recent rate of reading, which pacing holds steady. Standard input or a
pipe has no size: the line then shows the bytes read, the rate and the counts, without a share or an ETA.

Nothing is drawn when disabled (standard error is not a terminal, or ``--quiet``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import IO, BinaryIO, Protocol

from tqdm import tqdm

from segment_bridge.cli._common import disk_size

__all__ = ["Counts", "InputMeter", "ReplayProgress"]

_REDRAW = 0.2  # seconds between two drawings: often enough to look live, rarely enough to cost nothing
_BAR_FORMAT = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}"
_NO_TOTAL_FORMAT = "{desc}{n_fmt} read [{elapsed}]{postfix}"


class _Bar(tqdm):  # type: ignore[type-arg]
    """tqdm without its monitor thread: this class decides when to draw, so nothing needs watching."""

    monitor_interval = 0


class Counts(Protocol):
    """The counters the progress line shows (``replay``'s ``ReplaySummary`` has them)."""

    @property
    def events(self) -> int:
        """Events read."""
        ...

    @property
    def delivered(self) -> int:
        """Messages Segment accepted (or written, or shown)."""
        ...

    @property
    def refused_total(self) -> int:
        """Events refused, all reasons together."""
        ...

    @property
    def failed(self) -> int:
        """Messages not delivered after retries."""
        ...


class InputMeter:
    """How far reading got in the inputs' bytes on disk; pass :meth:`opened` as ``iter_records``' ``on_open``.

    Args:
        names: the inputs, in order (``-`` is standard input).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.sizes = [disk_size(name) for name in names]
        self._files: dict[int, BinaryIO] = {}
        self._current = -1

    @property
    def total(self) -> int | None:
        """Bytes of all inputs, or ``None`` when one has no size (standard input, a pipe)."""
        if any(size is None for size in self.sizes):
            return None
        return sum(size for size in self.sizes if size is not None)

    @property
    def current(self) -> int:
        """The index of the input being read (-1 before the first is opened)."""
        return self._current

    def opened(self, index: int, file: BinaryIO) -> None:
        """Note that input ``index`` is being read from ``file`` (as opened, before decompression)."""
        self._files[index] = file
        self._current = max(self._current, index)

    def read(self) -> int:
        """Bytes read so far: every input before the one being read, and how far into that one reading got."""
        done = 0
        for index, size in enumerate(self.sizes):
            if index < self._current:
                done += size or 0
            elif index == self._current:
                done += self._position(index, size)
        return done

    def _position(self, index: int, size: int | None) -> int:
        file = self._files.get(index)
        if file is None:
            return 0
        try:
            position = file.tell()
        except (OSError, ValueError):  # closed once read to its end; a pipe cannot say
            return size or 0
        return position if size is None else min(position, size)


class ReplayProgress:
    """The progress line: call it with the run's counts as often as convenient; it redraws at most every 0.2 s.

    Args:
        stream: where to draw (standard error).
        enabled: draw at all (a terminal, and not ``--quiet``).
        meter: the inputs' bytes; ``None`` shows counts and rate only.
        verb: what happened to the sent messages (``delivered``, ``written``, ``shown``).
        clock: monotonic seconds, for the events/s figure.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        enabled: bool,
        meter: InputMeter | None = None,
        verb: str = "delivered",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.meter = meter
        self.verb = verb
        self._clock = clock
        self._started = clock()
        self._drawn = float("-inf")
        total = meter.total if meter is not None else None
        self._bar = _Bar(
            total=total,
            file=stream,
            disable=not enabled,
            leave=False,
            desc="segment-bridge: ",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            dynamic_ncols=True,
            # Drawn when this class says (every _REDRAW seconds), not after a count of updates.
            mininterval=0,
            miniters=1,
            bar_format=_BAR_FORMAT if total is not None else _NO_TOTAL_FORMAT,
        )

    def postfix(self, counts: Counts) -> str:
        """The figures after the bar: events settled per second, and the outcomes so far."""
        elapsed = max(self._clock() - self._started, 1e-9)
        # Settled, not read: reading runs ahead of delivery by the batches in flight, and pacing sets the pace.
        settled = counts.delivered + counts.refused_total + counts.failed
        return (
            f"{settled / elapsed:,.0f} events/s · {self.verb} {counts.delivered:,} · "
            f"refused {counts.refused_total:,} · failed {counts.failed:,}"
        )

    def __call__(self, counts: Counts) -> None:
        """Update the line from ``counts`` and the meter (drawn when tqdm's interval has passed)."""
        now = self._clock()
        if not self.enabled or now - self._drawn < _REDRAW:
            return
        self._drawn = now
        if self.meter is not None and len(self.meter.sizes) > 1 and self.meter.current >= 0:
            # Several inputs: which one is being read, so the user can tell how far the run is by the files too.
            self._bar.set_description_str(
                f"segment-bridge: file {self.meter.current + 1}/{len(self.meter.sizes)} ", False
            )
        self._bar.set_postfix_str(self.postfix(counts), refresh=False)
        read = self.meter.read() if self.meter is not None else 0
        if read > self._bar.n:
            self._bar.update(read - self._bar.n)
        else:
            self._bar.refresh()

    def clear(self) -> None:
        """Take the line off the screen (before printing a line of text); the next update draws it again."""
        if self.enabled:
            self._bar.clear()

    def done(self) -> None:
        """Remove the line for good; the summary line follows."""
        if self.enabled:
            self._bar.close()
