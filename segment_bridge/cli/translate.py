"""``segment-bridge translate``: CloudEvents in, Segment track messages out, one JSON object per line."""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

from segment_bridge.cli._common import (
    _PROG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_REFUSED,
    EXIT_USAGE,
    _add_log_level,
    _add_mapping_options,
    _add_summary_json,
    _check_outputs_are_not_inputs,
    _check_paths,
    _flush_quietly,
    _run_status,
    _stdout_closed,
    load_mapping_from_args,
    summary_line,
)
from segment_bridge.cli.summary_json import build_summary, input_states, write_summary
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.exceptions import ConfigurationError
from segment_bridge.identity import lookup_from_env
from segment_bridge.mapping import CompiledMapping
from segment_bridge.outcomes import Outcome
from segment_bridge.sources import iter_records
from segment_bridge.track import TrackCall
from segment_bridge.translate import translate_record

if TYPE_CHECKING:
    from segment_bridge.identity import UserIdLookup

#: Calls looked up together by ``translate`` when the identity lookup is on: one query each, as a replay batch.
LOOKUP_GROUP = 500

_TRANSLATE_EPILOG = """\
examples:
  segment-bridge translate examples/events.jsonl
  zcat archive/*.jsonl.gz | segment-bridge translate - > track-calls.jsonl
  segment-bridge translate --dead-letter refused.jsonl --mapping my-mapping.toml events.json

Each translated event becomes one line on stdout: exactly the JSON object that goes into a Segment /v1/batch
request's batch[]. Each refused event is one line on stderr (reason, id, type, what to do), and with
--dead-letter also a JSON Lines record that `segment-bridge replay` accepts once the cause is fixed.
A one-line summary ends the run on stderr. With SEGMENT_BRIDGE_IDENTITY_URL set (a database URL, [identity]
extra), each call's userId is looked up in your customer table with the mapping's [identity.lookup] query (README:
"Linking calls to your customers"), 500 calls per query, and a second line counts the lookups.

exit status: 0 all translated or acknowledged, 1 some refused, 2 usage or configuration error or an
unreadable input or --dead-letter path (checked before anything is read; a read error part-way through stops
after the summary), 130 interrupted, 141 standard output closed (| head). A run that ends early still prints its
summary.
"""


class _Output:
    """Where track messages go: straight to ``out``, or, with the identity lookup on, looked up in groups.

    Up to :data:`LOOKUP_GROUP` calls are looked up together (one query per group, as for a delivery batch).
    """

    def __init__(self, out: IO[bytes], lookup: UserIdLookup | None) -> None:
        self._out = out
        self._lookup = lookup
        self._pending: list[TrackCall] = []

    def write(self, call: TrackCall) -> None:
        """Write one call's message, or keep it for the next lookup."""
        if self._lookup is None:
            self._out.write(call.body + b"\n")
            return
        self._pending.append(call)
        if len(self._pending) >= LOOKUP_GROUP:
            self.flush()

    def flush(self) -> None:
        """Write what is waiting (looked up first), then flush the stream."""
        if self._lookup is not None and self._pending:
            calls, self._pending = self._pending, []
            for item in self._lookup.enrich(calls):
                # A lookup that failed under on_error = "retry" has nothing to retry here: the call as it was.
                self._out.write((item if isinstance(item, TrackCall) else item.call).body + b"\n")
        self._out.flush()


def _run_translate(args: argparse.Namespace, out: IO[bytes], err: IO[str]) -> int:
    _check_outputs_are_not_inputs(args)
    _check_paths(args)
    mapping = load_mapping_from_args(args, err)
    lookup = lookup_from_env(os.environ, mapping)
    try:
        return _translate(args, mapping, _Output(out, lookup), err)
    finally:
        if lookup is not None:
            print(f"{_PROG}: {lookup.counters.describe()}", file=err)
            lookup.close()


def _translate(args: argparse.Namespace, mapping: CompiledMapping, output: _Output, err: IO[str]) -> int:
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    dead_letter = DeadLetterWriter(args.dead_letter) if args.dead_letter else None
    status: int | None = None
    names = args.files or ["-"]
    error_line: str | None = None
    started_at, started = datetime.now(UTC), time.monotonic()
    settled: tuple[int, ...] | None = None  # the last record whose every event was written or refused
    ends: dict[int, tuple[int, ...]] = {}  # the last record of each input
    try:
        for record in iter_records(names):
            for translation in translate_record(record.raw, mapping):
                counts[translation.outcome] += 1
                if translation.track is not None:
                    output.write(translation.track)
                elif translation.refusal is not None:
                    reasons[translation.refusal.reason] += 1
                    if not args.quiet:
                        print(f"{record.name}:{record.location}: {translation.refusal.describe()}", file=err)
                    if dead_letter is not None:
                        dead_letter.write(translation.refusal, translation.event)
            settled = ends[record.file_index] = record.position
        output.flush()
    except ConfigurationError as error:  # an input unreadable part-way through, a dead-letter file not writable
        _flush_quietly(output)
        print(f"{_PROG}: error: {error}", file=err)
        error_line = str(error)
        status = EXIT_USAGE
    except KeyboardInterrupt:
        _flush_quietly(output)
        print(f"{_PROG}: interrupted", file=err)
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        _stdout_closed()
        status = EXIT_PIPE_CLOSED
    finally:
        if dead_letter is not None:
            dead_letter.close()
    print(f"{_PROG}: {summary_line(counts, reasons)}", file=err)
    code = status if status is not None else EXIT_REFUSED if counts[Outcome.REFUSED] else EXIT_OK
    if args.summary_json:
        document = build_summary(
            command="translate",
            status=_run_status(
                interrupted=status == EXIT_INTERRUPTED,
                error=status == EXIT_USAGE,
                output_closed=status == EXIT_PIPE_CLOSED,
            ),
            exit_code=code,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            duration_seconds=time.monotonic() - started,
            counts={
                "events": sum(counts.values()),
                "translated": counts[Outcome.TRANSLATED],
                "acknowledged": counts[Outcome.ACKNOWLEDGED],
                "refused": counts[Outcome.REFUSED],
            },
            refused_by_reason={str(reason): n for reason, n in reasons.items()},
            inputs=input_states(names, settled, finished=status is None, ends=ends),
            error=error_line,
        )
        try:
            write_summary(args.summary_json, document)
        except ConfigurationError as error:
            print(f"{_PROG}: error: {error}", file=err)
            return EXIT_USAGE
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``translate`` arguments to ``parser``."""
    parser.add_argument("files", nargs="*", metavar="FILE", help="JSON or JSON Lines input; none or - = stdin")
    parser.add_argument(
        "--dead-letter", metavar="PATH", help="append each refused event as a JSON Lines record to PATH"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-refusal lines (the summary stays)")
    _add_summary_json(parser)
    _add_mapping_options(parser)
    _add_log_level(parser)
