"""The ``segment-bridge`` command line: the only place that prints.

Every command turns bad input into one readable line and an exit code, never a traceback:
0 every event translated (or delivered) or acknowledged, 1 some event refused, 2 a usage or configuration error or
an input that cannot be read (also part-way through, after the summary), 3 (``replay``) a batch failed
permanently, 130 interrupted (Ctrl-C), 141 standard output closed (``| head``). A run that ends early still prints
the summary of what it did.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from segment_bridge import __version__
from segment_bridge._logging import configure_text_logging, remove_handler
from segment_bridge.deadletter import DeadLetterWriter
from segment_bridge.delivery import (
    DEFAULT_BATCH_MESSAGES,
    DryRunTransport,
    FileTransport,
    RetryPolicy,
    SegmentTransport,
    Transport,
)
from segment_bridge.exceptions import BridgeError, ConfigurationError, MappingError, MissingExtraError
from segment_bridge.mapping import CompiledMapping, load_mapping
from segment_bridge.outcomes import Outcome, Refusal
from segment_bridge.replay import ReplaySummary, replay_files
from segment_bridge.server import add_serve_arguments, serve_main
from segment_bridge.settings import Settings, read_secret_file
from segment_bridge.sources import iter_records
from segment_bridge.track import MAX_BATCH_MESSAGES
from segment_bridge.translate import translate_record

__all__ = ["main"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_DELIVERY_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away

_PROG = "segment-bridge"

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

_REPLAY_EPILOG = """\
examples:
  segment-bridge replay --dry-run examples/events.jsonl          # no Segment account: batches to stdout
  segment-bridge replay --out batches.jsonl archive/*.jsonl.gz     # the /v1/batch bodies, to a file
  SEGMENT_WRITE_KEY_FILE=~/.segment-key segment-bridge replay \\
      --dead-letter failed.jsonl --checkpoint replay.ckpt archive/2026-03-*.jsonl.gz
  segment-bridge replay failed.jsonl                               # a dead-letter file, once the cause is fixed

Streams archived CloudEvents through translation and delivery: batches of at most --batch-size messages and
475,000 bytes, --concurrency batches in flight, retries with backoff (429 Retry-After honoured) within a budget.
Memory stays flat whatever the input size. Re-running is safe: messageIds are deterministic, so Segment drops
what it already has; --checkpoint skips what a killed or interrupted run already finished.

The write key comes from SEGMENT_WRITE_KEY or the file named by SEGMENT_WRITE_KEY_FILE / --write-key-file, never
from the command line. --dry-run and --out need none.

exit status: 0 all delivered or acknowledged, 1 some refused, 2 usage or configuration error or an
unreadable input or output path (all checked before anything is sent; a read error part-way through settles what
was read, then stops after the summary), 3 some batch failed permanently (its events are in --dead-letter, or
listed one per line without it), 130 interrupted, 141 standard output closed. A run that ends early still prints
its summary (Ctrl-C: the checkpoint keeps what finished).
"""

_CHECK_EPILOG = """\
examples:
  segment-bridge check-mapping                  # the packaged default
  segment-bridge check-mapping my-mapping.toml

Validates the file (an unknown key or a typo names the file and the key) and lints it against Segment's naming
spec (Title Case "Object Action" event names, snake_case property names) and Twilio's status-callback
parameters (a param: source Twilio does not document; [lint] known_params names newer ones). A mapping that
hashes phone numbers needs its key where it runs: without SEGMENT_BRIDGE_HASH_KEY or --hash-key-file that is a
finding too.

exit status: 0 valid and clean, 1 valid with lint findings, 2 invalid or unreadable.
"""


def _env_default(name: str) -> str | None:
    return os.environ.get(name) or None


def _add_mapping_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mapping",
        metavar="PATH",
        default=_env_default("SEGMENT_BRIDGE_MAPPING"),
        help="mapping file to use instead of the packaged default (env: SEGMENT_BRIDGE_MAPPING)",
    )
    parser.add_argument(
        "--hash-key-file",
        metavar="PATH",
        help="file holding the HMAC key for hashing phone numbers, when the mapping turns hashing on "
        "(env: SEGMENT_BRIDGE_HASH_KEY holds the key itself)",
    )


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="least level of the log lines from the bridge and its libraries, one human-readable line each "
        "(default: warning)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _batch_size(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_BATCH_MESSAGES:
        raise argparse.ArgumentTypeError(f"at most {MAX_BATCH_MESSAGES} (Segment drops larger batches), got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _hash_key(args: argparse.Namespace) -> bytes | None:
    if args.hash_key_file:
        return read_secret_file(args.hash_key_file, "the hash key file").encode()
    key = os.environ.get("SEGMENT_BRIDGE_HASH_KEY")
    return key.encode() if key else None


def load_mapping_from_args(args: argparse.Namespace, err: IO[str]) -> CompiledMapping:
    """Load the mapping the options name, printing its lint findings as warnings."""
    mapping = load_mapping(args.mapping, hash_key=_hash_key(args))
    for finding in mapping.warnings:
        print(f"{_PROG}: warning: {mapping.source}: {finding}", file=err)
    return mapping


def summary_line(counts: Counter[str], reasons: Counter[str], first: str = "translated") -> str:
    """``translated 4, acknowledged 1, refused 3 (deprecated_event_type 2, invalid_json 1)``."""
    refused = sum(reasons.values())
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    parts = [f"{first} {counts[first]}", f"acknowledged {counts['acknowledged']}", f"refused {refused}"]
    return ", ".join(parts) + (f" ({detail})" if detail else "")


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


def _flush_quietly(out: IO[bytes]) -> None:
    """Flush what was translated before the run stopped; a reader that went away is no longer told anything."""
    try:
        out.flush()
    except BrokenPipeError:
        _stdout_closed()


def _stdout_closed() -> None:
    """Point standard output at /dev/null, so Python's flush at exit does not fail on the closed pipe."""
    try:
        fileno = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (a library caller's stream): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def _check_paths(args: argparse.Namespace) -> None:
    """Check that every input can be read and every output written before anything is read or sent.

    A run that stops at its second file has already delivered the first: the user should learn of a typo at once.
    """
    for name in args.files:
        if name == "-":
            continue
        # Not opened here: opening a named pipe would wait for its writer, and the reader must not miss its data.
        try:
            is_dir = stat.S_ISDIR(os.stat(name).st_mode)
        except OSError as error:
            raise ConfigurationError(f"cannot read {name}: {error.strerror or type(error).__name__}") from None
        if is_dir:
            raise ConfigurationError(f"cannot read {name}: Is a directory")
        if not os.access(name, os.R_OK):
            raise ConfigurationError(f"cannot read {name}: Permission denied")
    for option in ("dead_letter", "checkpoint"):
        output = getattr(args, option, None)
        if output:
            _check_writable(Path(output), "--" + option.replace("_", "-"))


def _check_writable(path: Path, flag: str) -> None:
    if path.is_dir():
        raise ConfigurationError(f"cannot write {flag} {path}: it is a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigurationError(f"cannot write {flag} {path}: permission denied")
        return
    parent = path.parent
    if not parent.is_dir():
        raise ConfigurationError(f"cannot write {flag} {path}: no directory {parent}")
    if not os.access(parent, os.W_OK):
        raise ConfigurationError(f"cannot write {flag} {path}: directory {parent} is not writable")


class _Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, stream: IO[str], enabled: bool, verb: str = "delivered") -> None:
        self.stream = stream
        self.enabled = enabled
        self.verb = verb
        self.started = time.monotonic()
        self.drawn = 0.0

    def __call__(self, summary: ReplaySummary) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.drawn < 0.2:
            return
        self.drawn = now
        rate = summary.events / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{_PROG}: {summary.events:,} events read, {summary.delivered:,} {self.verb}, "
            f"{summary.refused_total:,} refused, {summary.failed:,} failed ({rate:,.0f}/s)\x1b[K"
        )
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


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


def _check_outputs_are_not_inputs(args: argparse.Namespace) -> None:
    """Refuse an output that is also an input or another output.

    Appending to a file while reading it never ends; and two outputs on one path destroy each other (the
    checkpoint is replaced atomically, which would throw away the dead-letter records appended to it).
    """
    inputs = [Path(name) for name in args.files if name != "-"]
    seen: dict[Path, str] = {}
    for option in ("dead_letter", "out", "checkpoint"):
        output = getattr(args, option, None)
        if not output:
            continue
        flag = "--" + option.replace("_", "-")
        resolved = Path(output).resolve()
        if resolved in seen:
            raise ConfigurationError(f"{seen[resolved]} and {flag} name the same file {output}; give each its own")
        seen[resolved] = flag
        if not Path(output).exists():
            continue
        for path in inputs:
            if path.exists() and os.path.samefile(path, output):
                raise ConfigurationError(f"{flag} {output} is also an input; write it elsewhere, then replay it")


def _run_replay(args: argparse.Namespace, err: IO[str]) -> int:
    _check_outputs_are_not_inputs(args)
    if args.checkpoint and (not args.files or "-" in args.files):
        raise ConfigurationError("--checkpoint needs named input files: standard input cannot be resumed")
    _check_paths(args)
    mapping = load_mapping_from_args(args, err)
    transport, verb = _replay_transport(args)
    progress = _Progress(err, enabled=err.isatty() and not args.quiet, verb=verb)
    names = args.files or ["-"]

    def show(position: tuple[int, ...], refusal: Refusal) -> None:
        progress.done()
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
        )
        if summary.interrupted:
            print(f"{_PROG}: interrupted", file=err)
            status = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        progress.done()
        print(f"{_PROG}: interrupted", file=err)
        status = EXIT_INTERRUPTED
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
    return status if status is not None else summary.exit_code


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


def _run_check_mapping(args: argparse.Namespace, err: IO[str]) -> int:
    # A placeholder key lets a mapping that turns hashing on be checked; nothing is hashed here.
    mapping = load_mapping(args.path, hash_key=b"check-mapping")
    findings = list(mapping.warnings)
    if mapping.spec.hashing.phone_numbers and _hash_key(args) is None:
        # Valid, but translate, replay and serve refuse to load it as things stand: say so before they do.
        findings.append(
            "hashing.phone_numbers is on but no hash key is given, so this mapping will not load: set "
            "SEGMENT_BRIDGE_HASH_KEY or pass --hash-key-file PATH (here too, to check it)"
        )
    for finding in findings:
        print(f"{mapping.source}: {finding}", file=err)
    if findings:
        print(f"{_PROG}: {mapping.source}: valid, {len(findings)} lint finding(s)", file=err)
        return EXIT_REFUSED
    print(
        f"{_PROG}: {mapping.source}: valid; {len(mapping.spec.events)} event types, "
        f"{len(mapping.spec.properties)} properties",
        file=err,
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Twilio Voice call events (Event Streams CloudEvents) into Segment track calls.",
        epilog="Run `segment-bridge COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    formatter = argparse.RawDescriptionHelpFormatter

    translate = commands.add_parser(
        "translate",
        help="turn CloudEvents (JSON or JSON Lines, .gz too) into Segment track messages on stdout",
        description="Translate archived Twilio CloudEvents into Segment track messages, one JSON object per line.",
        epilog=_TRANSLATE_EPILOG,
        formatter_class=formatter,
    )
    translate.add_argument("files", nargs="*", metavar="FILE", help="JSON or JSON Lines input; none or - = stdin")
    translate.add_argument(
        "--dead-letter", metavar="PATH", help="append each refused event as a JSON Lines record to PATH"
    )
    translate.add_argument("--quiet", "-q", action="store_true", help="no per-refusal lines (the summary stays)")
    _add_mapping_options(translate)
    _add_log_level(translate)

    replay = commands.add_parser(
        "replay",
        help="deliver archived CloudEvents (JSON or JSON Lines, .gz too) to Segment, resumably",
        description="Translate archived Twilio CloudEvents and deliver them to Segment's /v1/batch API.",
        epilog=_REPLAY_EPILOG,
        formatter_class=formatter,
    )
    replay.add_argument("files", nargs="*", metavar="FILE", help="JSON or JSON Lines input; none or - = stdin")
    sink = replay.add_mutually_exclusive_group()
    sink.add_argument("--dry-run", action="store_true", help="send nothing: write each batch to stdout")
    sink.add_argument("--out", metavar="PATH", help="append the batches as JSON Lines to PATH instead of sending")
    replay.add_argument("--dead-letter", metavar="PATH", help="append refused and failed events as JSON Lines to PATH")
    replay.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="resume from and record progress in PATH (refused if an input was rewritten since)",
    )
    replay.add_argument(
        "--concurrency", type=_positive_int, default=4, metavar="N", help="batches in flight at once (default: 4)"
    )
    replay.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_MESSAGES,
        metavar="N",
        help=f"most messages per request, at most 2500 (default: {DEFAULT_BATCH_MESSAGES})",
    )
    replay.add_argument(
        "--max-attempts", type=_positive_int, default=8, metavar="N", help="attempts per batch (default: 8)"
    )
    replay.add_argument(
        "--retry-budget",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="time per batch, retries included (default: 120)",
    )
    replay.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="SECONDS", help="per-request timeout (default: 10)"
    )
    replay.add_argument(
        "--write-key-file",
        metavar="PATH",
        help="file holding the Segment write key (env: SEGMENT_WRITE_KEY or SEGMENT_WRITE_KEY_FILE)",
    )
    replay.add_argument("--segment-host", metavar="URL", help="Segment base URL (env: SEGMENT_HOST)")
    replay.add_argument("--region", choices=["us", "eu"], help="Segment region (env: SEGMENT_REGION)")
    replay.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar and no per-refusal lines (the summary stays; failures are still listed when there is"
        " no --dead-letter file)",
    )
    _add_mapping_options(replay)
    _add_log_level(replay)

    serve = commands.add_parser(
        "serve",
        help="receive a Twilio Event Streams webhook sink and deliver to Segment (needs the [server] extra)",
        description="Run the webhook receiver: verify, translate, deliver, then answer Twilio.",
    )
    add_serve_arguments(serve)

    check = commands.add_parser(
        "check-mapping",
        help="validate and lint a mapping file",
        description="Validate a mapping file and lint it against Segment's naming spec.",
        epilog=_CHECK_EPILOG,
        formatter_class=formatter,
    )
    check.add_argument("path", nargs="?", metavar="PATH", help="mapping file (default: the packaged mapping)")
    check.add_argument(
        "--hash-key-file",
        metavar="PATH",
        help="file holding the HMAC key, to check that a mapping hashing phone numbers will load "
        "(env: SEGMENT_BRIDGE_HASH_KEY holds the key itself)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    err = sys.stderr
    handler = configure_text_logging(args.log_level) if args.command in ("translate", "replay") else None
    try:
        if args.command == "translate":
            return _run_translate(args, sys.stdout.buffer, err)
        if args.command == "replay":
            return _run_replay(args, err)
        if args.command == "serve":
            return serve_main(args)
        if args.command == "check-mapping":
            return _run_check_mapping(args, err)
    except MissingExtraError as error:
        print(f"{_PROG}: error: {error}", file=err)
        return EXIT_USAGE
    except MappingError as error:
        print(f"{_PROG}: error: invalid mapping {error}", file=err)
        return EXIT_USAGE
    except BridgeError as error:
        print(f"{_PROG}: error: {error}", file=err)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        _stdout_closed()
        return EXIT_PIPE_CLOSED
    except OSError as error:
        # An output that cannot be written (a full disk, a directory given as a file): one line, not a traceback.
        print(f"{_PROG}: error: {error}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=err)
        return EXIT_INTERRUPTED
    finally:
        if handler is not None:
            remove_handler(handler)
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE  # pragma: no cover - parser.error exits


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
