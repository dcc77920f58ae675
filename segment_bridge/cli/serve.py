"""The ``serve`` command's options: parsed here, run by :mod:`segment_bridge.server.run`.

Importing this module needs no extra (only :mod:`segment_bridge.server.config`'s defaults, which import no server
package), so ``segment-bridge serve --help`` works without the ``[server]`` extra and ``serve`` can name it.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.server.config import (
    DEFAULT_DEAD_LETTER_FILE,
    DEFAULT_DELIVERY_BUDGET,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_READ_TIMEOUT,
)
from segment_bridge.settings import parse_max_rate

if TYPE_CHECKING:
    from segment_bridge.server.config import ServerConfig
    from segment_bridge.settings import Settings

__all__ = ["add_serve_arguments", "run_serve", "serve_only"]

_SERVE_EPILOG = """\
examples:
  TWILIO_AUTH_TOKEN=... SEGMENT_WRITE_KEY=... \\
    segment-bridge serve --host 0.0.0.0 --port 8000 --public-url https://bridge.example.com/events \\
    --dead-letter /var/lib/segment-bridge/refused.jsonl
  segment-bridge serve --insecure-no-signature --dry-run        # local try-out: batches on stdout

Refused events (deprecated or unknown types, malformed events) are answered 200 once they are in the dead-letter
file, ./segment-bridge-refused.jsonl unless --dead-letter names another; `segment-bridge replay` reads it back.

Twilio's webhook sink posts to POST /events or the path of --public-url. Answers: 200 once every event is
delivered, acknowledged or refused and recorded; 503/429 when Twilio should retry; 400/403/404/413 for requests to
drop. See docs/webhook.md.

environment: TWILIO_AUTH_TOKEN (or TWILIO_AUTH_TOKEN_FILE), SEGMENT_WRITE_KEY (or SEGMENT_WRITE_KEY_FILE),
SEGMENT_BRIDGE_PUBLIC_URL, SEGMENT_HOST, SEGMENT_REGION, SEGMENT_BRIDGE_MAPPING, SEGMENT_BRIDGE_HASH_KEY,
SEGMENT_BRIDGE_MAX_RATE; TWILIO_SECONDARY_AUTH_TOKEN and SEGMENT_BRIDGE_SHARED_KEYS (each or its _FILE) for token
rotation and shared keys; SEGMENT_BRIDGE_IDENTITY_URL to look userIds up in your customer table ([identity] extra);
TWILIO_ACCOUNT_SID with the Auth Token or TWILIO_API_KEY/TWILIO_API_SECRET to validate a new sink on its test event
itself ([twilio] extra).

exit status: 0 stopped by SIGTERM after draining, 130 stopped by Ctrl-C after draining (both log the counts),
2 usage or configuration error (a missing secret, an address in use).
"""


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port between 0 and 65535, got {text!r}")
    return value


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _integer(text: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.lstrip("+-").isdigit()):
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}")
    return int(stripped)


def _max_rate(text: str) -> float:
    try:
        return parse_max_rate(text, "--max-rate")
    except ConfigurationError:
        raise argparse.ArgumentTypeError(f"must be a number of events per second, 0 for no limit, got {text}") from None


def _positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, got {text!r}")
    return value


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser`` (uvicorn's flag names and defaults). Imports no server package."""
    parser.epilog = _SERVE_EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    env = os.environ.get
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="bind port, 0 for any free one (default: 8000)")
    parser.add_argument("--workers", type=_at_least_one, default=None, help="worker processes (default: 1)")
    parser.add_argument(
        "--public-url",
        default=env("SEGMENT_BRIDGE_PUBLIC_URL") or None,
        metavar="URL",
        help="the sink destination as configured in Twilio; signatures are checked over it "
        "(env: SEGMENT_BRIDGE_PUBLIC_URL)",
    )
    parser.add_argument(
        "--insecure-no-signature",
        action="store_true",
        help="do not verify X-Twilio-Signature (local testing only; logged loudly)",
    )
    parser.add_argument(
        "--auth-token-file",
        metavar="PATH",
        help="file holding the Primary Auth Token that signs the sink's requests (env: TWILIO_AUTH_TOKEN or "
        "TWILIO_AUTH_TOKEN_FILE)",
    )
    parser.add_argument(
        "--secondary-auth-token-file",
        metavar="PATH",
        help="file holding a second Auth Token, accepted as well while you rotate the token "
        "(env: TWILIO_SECONDARY_AUTH_TOKEN or TWILIO_SECONDARY_AUTH_TOKEN_FILE)",
    )
    parser.add_argument(
        "--shared-keys-file",
        metavar="PATH",
        help="file of KEY_ID:SECRET lines: the shared keys of requests signed with one (Twilio's Webhooks "
        "configuration) (env: SEGMENT_BRIDGE_SHARED_KEYS=KEY_ID:SECRET,... or SEGMENT_BRIDGE_SHARED_KEYS_FILE)",
    )
    parser.add_argument(
        "--max-body-size",
        type=_at_least_one,
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help=f"larger bodies get 413 (default: {DEFAULT_MAX_BODY_SIZE})",
    )
    parser.add_argument(
        "--delivery-budget",
        type=_positive_seconds,
        default=DEFAULT_DELIVERY_BUDGET,
        metavar="SECONDS",
        help=f"time to deliver a request's events, retries included, before 503 (default: {DEFAULT_DELIVERY_BUDGET})",
    )
    parser.add_argument(
        "--max-rate",
        type=_max_rate,
        metavar="N",
        help="most events per second sent to Segment by this process (each worker), 0 for no limit (default: no "
        "limit; env: SEGMENT_BRIDGE_MAX_RATE)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=_at_least_one,
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help=f"requests in progress before answering 429 (default: {DEFAULT_MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--read-timeout",
        type=_positive_seconds,
        default=DEFAULT_READ_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request (headers and body) has not arrived whole this long after its first "
        f"byte or the connection's opening (default: {DEFAULT_READ_TIMEOUT})",
    )
    parser.add_argument(
        "--max-connections",
        type=_at_least_one,
        default=None,
        metavar="N",
        help="open connections before the one waiting longest for a request is closed for a new one "
        "(default: the file-descriptor limit less 128)",
    )
    parser.add_argument(
        "--max-arriving-bytes",
        type=_at_least_one,
        default=None,
        metavar="BYTES",
        help="bytes held by requests still arriving before the longest-arriving one is closed "
        "(default: 64 MiB, or 4 bodies of --max-body-size if more)",
    )
    parser.add_argument("--dry-run", action="store_true", help="send nothing: write each batch to stdout or --out")
    parser.add_argument("--out", metavar="PATH", help="write batches as JSON Lines to PATH instead of Segment")
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument(
        "--dead-letter",
        metavar="PATH",
        help=f"append refused events and bad bodies as JSON Lines to PATH (default: ./{DEFAULT_DEAD_LETTER_FILE})",
    )
    kept.add_argument(
        "--no-dead-letter",
        action="store_true",
        help="keep no file: refused events are only logged (by id and reason) and cannot be replayed",
    )
    parser.add_argument(
        "--mapping",
        metavar="PATH",
        default=env("SEGMENT_BRIDGE_MAPPING") or None,
        help="mapping file instead of the packaged default (env: SEGMENT_BRIDGE_MAPPING)",
    )
    parser.add_argument(
        "--hash-key-file",
        metavar="PATH",
        help="file holding the HMAC key for hashing phone numbers, when the mapping turns hashing on "
        "(env: SEGMENT_BRIDGE_HASH_KEY holds the key itself)",
    )
    parser.add_argument(
        "--write-key-file",
        metavar="PATH",
        help="file holding the Segment write key (env: SEGMENT_WRITE_KEY or SEGMENT_WRITE_KEY_FILE)",
    )
    parser.add_argument("--segment-host", metavar="URL", default=None, help="Segment base URL (env: SEGMENT_HOST)")
    parser.add_argument("--region", choices=["us", "eu"], default=None, help="Segment region (env: SEGMENT_REGION)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="(default: info); every line on standard error is one JSON object",
    )


def _config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Settings, ServerConfig]:
    from segment_bridge.server.config import ServerConfig
    from segment_bridge.settings import Settings, read_secret_file

    file_output = bool(args.dry_run or args.out)
    settings = Settings.from_env(
        environ,
        write_key_file=getattr(args, "write_key_file", None),
        host=args.segment_host,
        region=args.region,
        mapping=args.mapping,
        require_write_key=not file_output,
    )
    hash_key_file = getattr(args, "hash_key_file", None)
    hash_key = SecretStr(read_secret_file(hash_key_file, "the hash key file")) if hash_key_file else None
    config = ServerConfig.from_env(
        environ,
        public_url=args.public_url,
        insecure_no_signature=args.insecure_no_signature or None,
        auth_token_file=getattr(args, "auth_token_file", None),
        secondary_auth_token_file=getattr(args, "secondary_auth_token_file", None),
        shared_keys_file=getattr(args, "shared_keys_file", None),
        max_body_size=args.max_body_size,
        delivery_budget=args.delivery_budget,
        max_rate=getattr(args, "max_rate", None),
        max_concurrency=args.max_concurrency,
        read_timeout=args.read_timeout,
        max_connections=args.max_connections,
        max_arriving_bytes=args.max_arriving_bytes,
        dry_run=args.dry_run,
        out=args.out,
        dead_letter=None if args.no_dead_letter else args.dead_letter or DEFAULT_DEAD_LETTER_FILE,
        hash_key=hash_key,
    )
    config.check_security()
    if config.dead_letter is not None:
        _check_writable(config.dead_letter)
    return settings, config


def _check_writable(path: Path) -> None:
    """Fail at start, in one line, rather than answer 503 at the first refused event.

    The file itself is created only when the first record is written: a server that refuses nothing leaves none.
    """
    problem: str | None = None
    if path.is_dir():
        problem = "it is a directory"
    elif path.exists():
        if not os.access(path, os.W_OK):
            problem = "it is not writable"
    elif not path.parent.is_dir():
        problem = "its directory does not exist"
    elif not os.access(path.parent, os.W_OK):
        problem = "its directory is not writable"
    if problem is not None:
        raise ConfigurationError(
            f"cannot write the dead-letter file {str(path)!r}: {problem}; give --dead-letter PATH, "
            "or --no-dead-letter to only log refused events"
        )


def run_serve(args: argparse.Namespace) -> int:
    """Run ``segment-bridge serve`` with parsed arguments (see :func:`segment_bridge.server.run.serve_main`)."""
    from segment_bridge.server.run import serve_main

    return serve_main(args)


def serve_only(argv: Sequence[str] | None = None) -> int:
    """``python -m segment_bridge.server``: the ``serve`` command on its own (same options and exit codes)."""
    parser = argparse.ArgumentParser(prog="segment-bridge serve", description="Receive Twilio Event Streams webhooks.")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    return run_serve(args)  # a start-up error is one JSON line and exit 2, as in the CLI
