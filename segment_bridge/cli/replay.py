"""``segment-bridge replay``: deliver archived CloudEvents to Segment, resumably."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from segment_bridge.cli._common import (
    _PROG,
    EXIT_INTERRUPTED,
    EXIT_PIPE_CLOSED,
    EXIT_USAGE,
    _add_log_level,
    _add_mapping_options,
    _add_summary_json,
    _check_outputs_are_not_inputs,
    _check_paths,
    _positive_int,
    _run_status,
    _seconds,
    _stdout_closed,
    load_mapping_from_args,
    summary_line,
)
from segment_bridge.cli.progress import InputMeter, ReplayProgress
from segment_bridge.cli.summary_json import build_summary, input_states, write_summary
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.delivery import (
    DEFAULT_BATCH_MESSAGES,
    DryRunTransport,
    FileTransport,
    RetryPolicy,
    SegmentTransport,
    Transport,
)
from segment_bridge.delivery.pacing import RatePacer
from segment_bridge.exceptions import ConfigurationError
from segment_bridge.identity import identity_stage, lookup_from_env
from segment_bridge.mapping import CompiledMapping
from segment_bridge.outcomes import Refusal
from segment_bridge.replay import ReplaySummary, replay_files
from segment_bridge.settings import REPLAY_MAX_RATE, Settings, max_rate_setting, parse_max_rate
from segment_bridge.track import MAX_BATCH_MESSAGES

if TYPE_CHECKING:
    from segment_bridge.identity import UserIdLookup

_REPLAY_EPILOG = """\
examples:
  segment-bridge replay --dry-run examples/events.jsonl          # no Segment account: batches to stdout
  segment-bridge replay --out batches.jsonl archive/*.jsonl.gz     # the /v1/batch bodies, to a file
  SEGMENT_WRITE_KEY_FILE=~/.segment-key segment-bridge replay \\
      --dead-letter failed.jsonl --checkpoint replay.ckpt archive/2026-03-*.jsonl.gz
  segment-bridge replay failed.jsonl                               # a dead-letter file, once the cause is fixed

Streams archived CloudEvents through translation and delivery: batches of at most --batch-size messages and
475,000 bytes, --concurrency batches in flight, retries with backoff (429 Retry-After honoured) within a budget,
at most --max-rate events/s (default 500: half of Segment's 1,000 per workspace, the rest left to live traffic;
after a 429 all sending pauses). Memory stays flat whatever the input size. Re-running is safe: messageIds are
deterministic, so Segment drops what it already has; --checkpoint skips what a killed or interrupted run already
finished. --summary-json PATH leaves the run's counts and positions as JSON for an orchestrator.

The write key comes from SEGMENT_WRITE_KEY or the file named by SEGMENT_WRITE_KEY_FILE / --write-key-file, never
from the command line. --dry-run and --out need none. With SEGMENT_BRIDGE_IDENTITY_URL set (a database URL,
[identity] extra), each batch's userIds are looked up with the mapping's [identity.lookup] query before it is sent
(README: "Linking calls to your customers").

exit status: 0 all delivered or acknowledged, 1 some refused, 2 usage or configuration error or an
unreadable input or output path (all checked before anything is sent; a read error part-way through settles what
was read, then stops after the summary), 3 some batch failed permanently (its events are in --dead-letter, or
listed one per line without it), 130 interrupted, 141 standard output closed. A run that ends early still prints
its summary (Ctrl-C: the checkpoint keeps what finished).
"""


def _batch_size(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_BATCH_MESSAGES:
        raise argparse.ArgumentTypeError(f"at most {MAX_BATCH_MESSAGES} (Segment drops larger batches), got {value}")
    return value


def _max_rate(text: str) -> float:
    try:
        return parse_max_rate(text, "--max-rate")
    except ConfigurationError:
        raise argparse.ArgumentTypeError(f"must be a number of events per second, 0 for no limit, got {text}") from None


def _pacer(args: argparse.Namespace) -> RatePacer:
    """The events/s limit: Segment's workspace allowance is shared; a file or stdout is not paced unless asked."""
    if args.out or args.dry_run:
        return RatePacer(args.max_rate or 0.0)
    return RatePacer(max_rate_setting(os.environ, args.max_rate, default=REPLAY_MAX_RATE))


def _replay_transport(args: argparse.Namespace) -> tuple[Transport, str]:
    if args.out:
        return FileTransport(args.out), "written"
    if args.dry_run:
        return DryRunTransport(), "shown"
    settings = Settings.from_env(
        os.environ,
        write_key_file=args.write_key_file,
        host=args.segment_host,
        region=args.region,
        require_write_key=True,
    )
    return SegmentTransport(settings.require_write_key(), host=settings.host, timeout=args.timeout), "delivered"


def _run_replay(args: argparse.Namespace, err: IO[str]) -> int:
    _check_outputs_are_not_inputs(args)
    if args.checkpoint and (not args.files or "-" in args.files):
        raise ConfigurationError("--checkpoint needs named input files: standard input cannot be resumed")
    _check_paths(args)
    mapping = load_mapping_from_args(args, err)
    lookup = lookup_from_env(os.environ, mapping)  # checked now: a query that fails stops the run before it starts
    try:
        return _replay(args, mapping, lookup, err)
    finally:
        if lookup is not None:
            print(f"{_PROG}: {lookup.counters.describe()}", file=err)
            lookup.close()


def _replay(args: argparse.Namespace, mapping: CompiledMapping, lookup: UserIdLookup | None, err: IO[str]) -> int:
    pacer = _pacer(args)
    transport, verb = _replay_transport(args)
    names = args.files or ["-"]
    meter = InputMeter(names)
    progress = ReplayProgress(err, enabled=err.isatty() and not args.quiet, meter=meter, verb=verb)
    started_at, started = datetime.now(UTC), time.monotonic()

    def show(position: tuple[int, ...], refusal: Refusal) -> None:
        progress.clear()
        where = ":".join(map(str, position[1:]))  # LINE, or LINE:COLUMN for a value inside a line
        print(f"{names[position[0]]}:{where}: {refusal.describe()}", file=err)

    def report_refusal(position: tuple[int, ...], refusal: Refusal) -> None:
        if not args.quiet:
            show(position, refusal)

    def report_failure(position: tuple[int, ...], refusal: Refusal) -> None:
        # Without a dead-letter file this line is the only trace of which event Segment did not take.
        if not args.quiet or dead_letter is None:
            show(position, refusal)

    policy = RetryPolicy(max_attempts=args.max_attempts, budget_seconds=args.retry_budget)
    dead_letter = DeadLetterWriter(args.dead_letter) if args.dead_letter else None
    summary = ReplaySummary()
    status: int | None = None
    stop = threading.Event()
    previous = _stop_on_interrupt(stop)
    try:
        replay_files(
            names,
            mapping,
            transport,
            checkpoint_path=args.checkpoint,
            dead_letter=dead_letter,
            policy=policy,
            concurrency=args.concurrency,
            max_messages=args.batch_size,
            progress=progress,
            on_refusal=report_refusal,
            on_failure=report_failure,
            summary=summary,
            stop=stop,
            stage=identity_stage(lookup),
            pacer=pacer,
            on_open=meter.opened,
        )
        if summary.interrupted:
            print(f"{_PROG}: interrupted", file=err)
            status = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        progress.done()
        print(f"{_PROG}: interrupted", file=err)
        status = EXIT_INTERRUPTED
        summary.interrupted = True
    except BrokenPipeError:
        _stdout_closed()
        status = EXIT_PIPE_CLOSED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        progress.done()
        try:
            transport.close()
        except BrokenPipeError:
            _stdout_closed()
            status = EXIT_PIPE_CLOSED
        if dead_letter is not None:
            dead_letter.close()
    if summary.read_error is not None:
        print(f"{_PROG}: error: {summary.read_error}", file=err)
    counts: Counter[str] = Counter({verb: summary.delivered, "acknowledged": summary.acknowledged})
    line = summary_line(counts, summary.refused, first=verb)
    line += f", failed {summary.failed}" + (f" in {summary.failed_batches} batches" if summary.failed else "")
    if summary.skipped:
        line += f", skipped {summary.skipped} records already done (checkpoint)"
    if summary.dead_lettered:
        line += f"; {summary.dead_lettered} dead-lettered to {args.dead_letter}"
    elif summary.failed or summary.refused_total:
        line += "; use --dead-letter PATH to keep them"
    print(f"{_PROG}: {line}", file=err)
    code = status if status is not None else summary.exit_code
    if args.summary_json:
        return _write_summary_json(args, summary, verb, code, pacer, names, started_at, time.monotonic() - started, err)
    return code


def _write_summary_json(
    args: argparse.Namespace,
    summary: ReplaySummary,
    verb: str,
    code: int,
    pacer: RatePacer,
    names: list[str],
    started_at: datetime,
    seconds: float,
    err: IO[str],
) -> int:
    """Write ``--summary-json``; the exit status, 2 if it cannot be written."""
    # Every event settled (none in flight, none failed without a record of it): every input is complete.
    finished = (
        not summary.interrupted and summary.read_error is None and (not summary.failed or summary.dead_lettered > 0)
    )
    metrics = pacer.metrics()
    document = build_summary(
        command="replay",
        status=_run_status(
            interrupted=summary.interrupted,
            error=summary.read_error is not None,
            output_closed=code == EXIT_PIPE_CLOSED,
        ),
        exit_code=code,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        duration_seconds=seconds,
        counts={
            "records": summary.records,
            "skipped": summary.skipped,
            "events": summary.events,
            verb: summary.delivered,
            "acknowledged": summary.acknowledged,
            "refused": summary.refused_total,
            "failed": summary.failed,
            "batches": summary.batches,
            "failed_batches": summary.failed_batches,
            "dead_lettered": summary.dead_lettered,
        },
        refused_by_reason=summary.refused,
        inputs=input_states(names, summary.checkpoint, finished=finished),
        error=summary.read_error,
        pacing={
            "max_rate": metrics.max_rate,
            "rate_limited": metrics.rate_limited,
            "paused_seconds": round(metrics.paused_seconds, 3),
        },
    )
    try:
        write_summary(args.summary_json, document)
    except ConfigurationError as error:
        print(f"{_PROG}: error: {error}", file=err)
        return EXIT_USAGE
    return code


def _stop_on_interrupt(stop: threading.Event) -> Any:
    """Make Ctrl-C set ``stop`` (a second one interrupts at once); returns the handler to restore, if replaced.

    A replay runs threads: a KeyboardInterrupt raised wherever the main thread happens to be can land inside the
    threading machinery (a lock being re-acquired) and lose a batch's count, or worse. The flag is read between
    events, and what is in flight finishes and is counted.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_interrupt(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    return signal.signal(signal.SIGINT, on_interrupt)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``replay`` arguments to ``parser``."""
    parser.add_argument("files", nargs="*", metavar="FILE", help="JSON or JSON Lines input; none or - = stdin")
    sink = parser.add_mutually_exclusive_group()
    sink.add_argument("--dry-run", action="store_true", help="send nothing: write each batch to stdout")
    sink.add_argument("--out", metavar="PATH", help="append the batches as JSON Lines to PATH instead of sending")
    parser.add_argument("--dead-letter", metavar="PATH", help="append refused and failed events as JSON Lines to PATH")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="resume from and record progress in PATH (refused if an input was rewritten since)",
    )
    parser.add_argument(
        "--concurrency", type=_positive_int, default=4, metavar="N", help="batches in flight at once (default: 4)"
    )
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_MESSAGES,
        metavar="N",
        help=f"most messages per request, at most 2500 (default: {DEFAULT_BATCH_MESSAGES})",
    )
    parser.add_argument(
        "--max-attempts", type=_positive_int, default=8, metavar="N", help="attempts per batch (default: 8)"
    )
    parser.add_argument(
        "--retry-budget",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="time per batch, retries included (default: 120)",
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="SECONDS", help="per-request timeout (default: 10)"
    )
    parser.add_argument(
        "--max-rate",
        type=_max_rate,
        metavar="N",
        help=f"most events per second sent to Segment, shared by every batch in flight; 0 for no limit (default: "
        f"{REPLAY_MAX_RATE:.0f}, half of Segment's 1,000 per workspace, leaving the rest to live traffic; env: "
        "SEGMENT_BRIDGE_MAX_RATE). --dry-run and --out are not paced unless it is given",
    )
    parser.add_argument(
        "--write-key-file",
        metavar="PATH",
        help="file holding the Segment write key (env: SEGMENT_WRITE_KEY or SEGMENT_WRITE_KEY_FILE)",
    )
    parser.add_argument("--segment-host", metavar="URL", help="Segment base URL (env: SEGMENT_HOST)")
    parser.add_argument("--region", choices=["us", "eu"], help="Segment region (env: SEGMENT_REGION)")
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar and no per-refusal lines (the summary stays; failures are still listed when there is"
        " no --dead-letter file)",
    )
    _add_summary_json(parser)
    _add_mapping_options(parser)
    _add_log_level(parser)
