"""The ``segment-bridge`` command line: the only place that prints.

Every command turns bad input into one readable line and an exit code, never a traceback:
0 every event translated (or delivered) or acknowledged, 1 some event refused, 2 a usage or configuration error or
an input that cannot be read (also part-way through, after the summary), 3 (``replay``) a batch failed
permanently, 130 interrupted (Ctrl-C), 141 standard output closed (``| head``). A run that ends early still prints
the summary of what it did.

This module assembles the parser and maps errors to exit codes; each command's options and run live in a module
of its own (:mod:`.translate`, :mod:`.replay`, :mod:`.serve`, :mod:`.check_mapping`, :mod:`.twilio`), shared helpers in
:mod:`._common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from segment_bridge import __version__
from segment_bridge._logging import configure_text_logging, remove_handler
from segment_bridge.cli import check_mapping, replay, serve, translate, twilio
from segment_bridge.cli._common import _PROG, EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, EXIT_USAGE, _stdout_closed
from segment_bridge.exceptions import BridgeError, MappingError, MissingExtraError

__all__ = ["main"]


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

    translate.add_arguments(
        commands.add_parser(
            "translate",
            help="turn CloudEvents (JSON or JSON Lines, .gz too) into Segment track messages on stdout",
            description="Translate archived Twilio CloudEvents into Segment track messages, one JSON object per line.",
            epilog=translate._TRANSLATE_EPILOG,
            formatter_class=formatter,
        )
    )
    replay.add_arguments(
        commands.add_parser(
            "replay",
            help="deliver archived CloudEvents (JSON or JSON Lines, .gz too) to Segment, resumably",
            description="Translate archived Twilio CloudEvents and deliver them to Segment's /v1/batch API.",
            epilog=replay._REPLAY_EPILOG,
            formatter_class=formatter,
        )
    )
    serve.add_serve_arguments(
        commands.add_parser(
            "serve",
            help="receive a Twilio Event Streams webhook sink and deliver to Segment (needs the [server] extra)",
            description="Run the webhook receiver: verify, translate, deliver, then answer Twilio.",
        )
    )
    check_mapping.add_arguments(
        commands.add_parser(
            "check-mapping",
            help="validate and lint a mapping file",
            description="Validate a mapping file and lint it against Segment's naming spec.",
            epilog=check_mapping._CHECK_EPILOG,
            formatter_class=formatter,
        )
    )
    twilio.add_arguments(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    err = sys.stderr
    handler = configure_text_logging(args.log_level) if args.command in ("translate", "replay") else None
    try:
        if args.command == "translate":
            return translate._run_translate(args, sys.stdout.buffer, err)
        if args.command == "replay":
            return replay._run_replay(args, err)
        if args.command == "serve":
            return serve.run_serve(args)
        if args.command == "check-mapping":
            return check_mapping._run_check_mapping(args, err)
        if args.command == "twilio":
            return twilio.run(args)
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
