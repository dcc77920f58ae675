"""``segment-bridge check-mapping``: validate a mapping file and lint it."""

from __future__ import annotations

import argparse
import os
from typing import IO

from segment_bridge.cli._common import _PROG, EXIT_OK, EXIT_REFUSED, _hash_key
from segment_bridge.identity import IDENTITY_URL_ENV, lookup_from_env
from segment_bridge.mapping import load_mapping

_CHECK_EPILOG = """\
examples:
  segment-bridge check-mapping                  # the packaged default
  segment-bridge check-mapping my-mapping.toml

Validates the file (an unknown key or a typo names the file and the key) and lints it against Segment's naming
spec (Title Case "Object Action" event names, snake_case property names) and Twilio's status-callback
parameters (a param: source Twilio does not document; [lint] known_params names newer ones). A mapping that
hashes phone numbers needs its key where it runs: without SEGMENT_BRIDGE_HASH_KEY or --hash-key-file that is a
finding too. With SEGMENT_BRIDGE_IDENTITY_URL set, a mapping's [identity.lookup] query is run once against
that database (no phones), as the other commands do at start; a mapping without one is a finding then.

exit status: 0 valid and clean, 1 valid with lint findings, 2 invalid or unreadable.
"""


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
    identity_url_set = bool(os.environ.get(IDENTITY_URL_ENV, "").strip())
    if identity_url_set and mapping.spec.identity.lookup is None:
        # Valid, but translate, replay and serve refuse to start with it while the URL is set: say so before they do.
        findings.append(
            f"{IDENTITY_URL_ENV} is set but this mapping has no [identity.lookup] query, so translate, replay and "
            f"serve will not start with it: add one (README, 'Linking calls to your customers') or unset the URL"
        )
    if mapping.spec.identity.lookup is not None and identity_url_set:
        # The query against the database the commands would use: one line and exit 2 when it cannot work.
        lookup = lookup_from_env(os.environ, mapping)
        if lookup is not None:
            lookup.close()
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``check-mapping`` arguments to ``parser``."""
    parser.add_argument("path", nargs="?", metavar="PATH", help="mapping file (default: the packaged mapping)")
    parser.add_argument(
        "--hash-key-file",
        metavar="PATH",
        help="file holding the HMAC key, to check that a mapping hashing phone numbers will load "
        "(env: SEGMENT_BRIDGE_HASH_KEY holds the key itself)",
    )
