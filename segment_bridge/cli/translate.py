"""``segment-bridge translate``: CloudEvents in, Segment track messages out, one JSON object per line."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import IO

from segment_bridge.cli._common import (
    _PROG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_REFUSED,
    EXIT_USAGE,
    _add_log_level,
    _add_mapping_options,
    _check_outputs_are_not_inputs,
    _check_paths,
    _flush_quietly,
    _stdout_closed,
    load_mapping_from_args,
    summary_line,
)
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.exceptions import ConfigurationError
from segment_bridge.outcomes import Outcome
from segment_bridge.sources import iter_records
from segment_bridge.translate import translate_record

_TRANSLATE_EPILOG = """\
examples:
  segment-bridge translate examples/events.jsonl
  zcat archive/*.jsonl.gz | segment-bridge translate - > track-calls.jsonl
  segment-bridge translate --dead-letter refused.jsonl --mapping my-mapping.toml events.json

Each translated event becomes one line on stdout: exactly the JSON object that goes into a Segment /v1/batch
request's batch[]. Each refused event is one line on stderr (reason, id, type, what to do), and with
--dead-letter also a JSON Lines record that `segment-bridge replay` accepts once the cause is fixed.
A one-line summary ends the run on stderr.

exit status: 0 all translated or acknowledged, 1 some refused, 2 usage or configuration error or an
unreadable input or --dead-letter path (checked before anything is read; a read error part-way through stops
after the summary), 130 interrupted, 141 standard output closed (| head). A run that ends early still prints its
summary.
"""


def _run_translate(args: argparse.Namespace, out: IO[bytes], err: IO[str]) -> int:
    _check_outputs_are_not_inputs(args)
    _check_paths(args)
    mapping = load_mapping_from_args(args, err)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    dead_letter = DeadLetterWriter(args.dead_letter) if args.dead_letter else None
    status: int | None = None
    try:
        for record in iter_records(args.files or ["-"]):
            for translation in translate_record(record.raw, mapping):
                counts[translation.outcome] += 1
                if translation.track is not None:
                    out.write(translation.track.body + b"\n")
                elif translation.refusal is not None:
                    reasons[translation.refusal.reason] += 1
                    if not args.quiet:
                        print(f"{record.name}:{record.location}: {translation.refusal.describe()}", file=err)
                    if dead_letter is not None:
                        dead_letter.write(translation.refusal, translation.event)
        out.flush()
    except ConfigurationError as error:  # an input unreadable part-way through, a dead-letter file not writable
        _flush_quietly(out)
        print(f"{_PROG}: error: {error}", file=err)
        status = EXIT_USAGE
    except KeyboardInterrupt:
        _flush_quietly(out)
        print(f"{_PROG}: interrupted", file=err)
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        _stdout_closed()
        status = EXIT_PIPE_CLOSED
    finally:
        if dead_letter is not None:
            dead_letter.close()
    print(f"{_PROG}: {summary_line(counts, reasons)}", file=err)
    if status is not None:
        return status
    return EXIT_REFUSED if counts[Outcome.REFUSED] else EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``translate`` arguments to ``parser``."""
    parser.add_argument("files", nargs="*", metavar="FILE", help="JSON or JSON Lines input; none or - = stdin")
    parser.add_argument(
        "--dead-letter", metavar="PATH", help="append each refused event as a JSON Lines record to PATH"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-refusal lines (the summary stays)")
    _add_mapping_options(parser)
    _add_log_level(parser)
