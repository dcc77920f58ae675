"""``--summary-json PATH``: what a ``translate`` or ``replay`` run did, as one JSON document for orchestrators.

Airflow, Dagster or cron read it instead of parsing the summary line. :func:`build_summary` is pure (counts, inputs
and times in, a JSON-ready dict out); :func:`write_summary` writes it atomically (a temporary file in the same
folder, flushed to disk, then ``os.replace``), so a reader finds either no file or a whole one, also when the run
was interrupted or stopped by a read error: the command writes it on every way out. The document (``version`` 1)::

    {"version": 1, "command": "replay", "status": "completed", "exit_code": 0,
     "started_at": "2026-12-03T10:00:00.000Z", "finished_at": "...", "duration_seconds": 41.2,
     "counts": {"events": 20000, "delivered": 19998, "acknowledged": 0, "refused": 2, "failed": 0, ...},
     "refused_by_reason": {"invalid_json": 2},
     "inputs": [{"name": "a.jsonl.gz", "size_bytes": 812345, "complete": true, "settled_through": {"line": 20000}}],
     "rate": {"events_per_second": 485.4, "max_rate": 500, "rate_limited": 0, "paused_seconds": 0.0},
     "error": null}

``status`` is ``completed``, ``interrupted`` (Ctrl-C), ``error`` (an input could not be read to its end, an output
not written: ``error`` says which and why) or ``output_closed`` (standard output went away). An input's
``settled_through`` is the last position (line, and column for a value inside a line) up to which every event of it
was delivered, refused or acknowledged (or, for ``translate``, written); ``complete`` says every event of it was
(``replay`` then gives no position for an input before the one it settled last: it does not keep where each ended).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from segment_bridge.cli._common import disk_size
from segment_bridge.exceptions import ConfigurationError

__all__ = ["SUMMARY_VERSION", "InputState", "build_summary", "input_states", "write_summary"]

SUMMARY_VERSION = 1
Position = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class InputState:
    """One input of a run, as the summary shows it.

    Attributes:
        name: as given on the command line (``-`` for standard input).
        size_bytes: its size on disk (compressed for ``.gz``); ``None`` for standard input or a pipe.
        settled_through: ``(line,)`` or ``(line, column)`` up to which every event is settled; ``None`` for none.
        complete: every event of it is settled.
    """

    name: str
    size_bytes: int | None
    settled_through: tuple[int, ...] | None
    complete: bool


def input_states(
    names: Sequence[str], settled: Position | None, *, finished: bool, ends: Mapping[int, Position] | None = None
) -> list[InputState]:
    """Each input's state from the run's last settled position ``(file index, line[, column])``.

    Args:
        names: the inputs, in order.
        settled: the position up to which everything is settled (replay's checkpoint position), or ``None``.
        finished: the whole input was read and everything in it settled (a run that ended normally with nothing
            unresolved): every input is then complete.
        ends: the last position of inputs read to their end, by index, where the caller knows it: a complete
            input is settled through it.
    """
    ends = ends or {}
    states = []
    for index, name in enumerate(names):
        complete = finished or (settled is not None and index < settled[0])
        if settled is not None and settled[0] == index:
            through: tuple[int, ...] | None = settled[1:]
        else:
            end = ends.get(index) if complete else None
            through = end[1:] if end is not None else None
        states.append(InputState(name, disk_size(name), through, complete))
    return states


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _position(through: tuple[int, ...] | None) -> dict[str, int] | None:
    if through is None:
        return None
    place = {"line": through[0]}
    if len(through) > 1:
        place["column"] = through[1]
    return place


def build_summary(
    *,
    command: str,
    status: str,
    exit_code: int,
    started_at: datetime,
    finished_at: datetime,
    duration_seconds: float,
    counts: Mapping[str, int],
    refused_by_reason: Mapping[str, int],
    inputs: Sequence[InputState],
    error: str | None = None,
    pacing: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The summary document (see the module docstring); pure, JSON-ready.

    Args:
        command: ``translate`` or ``replay``.
        status: ``completed``, ``interrupted``, ``error`` or ``output_closed``.
        exit_code: the command's exit status.
        started_at: wall-clock start (aware).
        finished_at: wall-clock end (aware).
        duration_seconds: elapsed on a monotonic clock (the wall clock may jump).
        counts: events by outcome and the run's other counts; ``events`` is the rate's numerator.
        refused_by_reason: refused events by reason.
        inputs: the inputs' states.
        error: the one-line error that stopped the run early, if one did.
        pacing: the pacer's figures (``max_rate``, ``rate_limited``, ``paused_seconds``), for ``replay``.
    """
    duration = max(duration_seconds, 0.0)
    events = counts.get("events", 0)
    rate: dict[str, float] = {"events_per_second": round(events / duration, 1) if duration > 0 else 0.0}
    if pacing is not None:
        rate.update({key: value for key, value in pacing.items() if math.isfinite(value)})
    return {
        "version": SUMMARY_VERSION,
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "started_at": _utc(started_at),
        "finished_at": _utc(finished_at),
        "duration_seconds": round(duration, 3),
        "counts": dict(counts),
        "refused_by_reason": dict(sorted(refused_by_reason.items())),
        "inputs": [
            {
                "name": state.name,
                "size_bytes": state.size_bytes,
                "complete": state.complete,
                "settled_through": _position(state.settled_through),
            }
            for state in inputs
        ],
        "rate": rate,
        "error": error,
    }


def write_summary(path: str | Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically: a reader sees the old file or the whole new one, never a part.

    Raises:
        ConfigurationError: the file cannot be written (one line, naming the option).
    """
    target = Path(path)
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise ConfigurationError(
            f"cannot write --summary-json {target}: {error.strerror or type(error).__name__}"
        ) from None
