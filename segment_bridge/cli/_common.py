"""What the commands share: exit statuses, option helpers, path checks, the summary line."""

from __future__ import annotations

import argparse
import math
import os
import stat
import sys
from collections import Counter
from pathlib import Path
from typing import IO, Protocol

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.mapping import CompiledMapping, load_mapping
from segment_bridge.settings import read_secret_file

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_DELIVERY_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away


_PROG = "segment-bridge"


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


class _Flushable(Protocol):
    def flush(self) -> None: ...


def _flush_quietly(out: _Flushable) -> None:
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
    for option in ("dead_letter", "checkpoint", "summary_json"):
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


def _check_outputs_are_not_inputs(args: argparse.Namespace) -> None:
    """Refuse an output that is also an input or another output.

    Appending to a file while reading it never ends; and two outputs on one path destroy each other (the
    checkpoint is replaced atomically, which would throw away the dead-letter records appended to it).
    """
    inputs = [Path(name) for name in args.files if name != "-"]
    seen: dict[Path, str] = {}
    for option in ("dead_letter", "out", "checkpoint", "summary_json"):
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


def _add_summary_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--summary-json",
        metavar="PATH",
        help="at the end (also after Ctrl-C or a read error) write the run's counts by outcome and reason, inputs "
        "with their last settled positions, times and rate to PATH as JSON, atomically",
    )


def _run_status(*, interrupted: bool, error: bool, output_closed: bool) -> str:
    """The ``status`` of a ``--summary-json`` document."""
    if output_closed:
        return "output_closed"
    if error:
        return "error"
    return "interrupted" if interrupted else "completed"


def disk_size(name: str) -> int | None:
    """Input ``name``'s size on disk (compressed, for ``.gz``); ``None`` for stdin, a pipe or an unreadable path."""
    if name == "-":
        return None
    try:
        status = os.stat(name)
    except OSError:
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None
