"""``segment-bridge twilio check|migrate|setup``: the Event Streams API commands' options and run.

Only the wiring lives here: the work is in :mod:`segment_bridge.eventstreams`, imported when a command runs, so
that the command line works (and says what to install) without the ``[twilio]`` extra.

Exit status: 0 nothing to do (``check`` clean, ``migrate`` nothing left, ``setup`` complete); 1 something remains
(``check`` findings, a ``migrate`` plan not applied or a type that cannot be migrated, ``setup`` waiting for the
sink's validation); 2 a usage, configuration or Twilio API error, or the extra is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import IO, Any

from segment_bridge.exceptions import BridgeError

__all__ = ["add_arguments", "run"]

EXIT_OK = 0
EXIT_REMAINS = 1
EXIT_ERROR = 2
_PROG = "segment-bridge twilio"

_CREDENTIALS = """\
credentials (never on the command line): TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and
TWILIO_API_SECRET with TWILIO_ACCOUNT_SID (the secrets also as <NAME>_FILE). SEGMENT_BRIDGE_TWILIO_API_URL
replaces https://events.twilio.com (a stand-in, a proxy). Needs the [twilio] extra."""

_GROUP_EPILOG = f"""\
examples:
  segment-bridge twilio check --sink-url https://bridge.example.com/events
  segment-bridge twilio migrate                  # the plan: what would be added and removed
  segment-bridge twilio migrate --apply          # do it: add each replacement, confirm, then remove
  segment-bridge twilio setup --sink-url https://bridge.example.com/events

{_CREDENTIALS}

exit status: 0 nothing to do, 1 something remains (findings, a plan not applied, validation pending),
2 usage, configuration or Twilio API error.
"""

_CHECK_EPILOG = f"""\
examples:
  segment-bridge twilio check
  segment-bridge twilio check --sink-url https://bridge.example.com/events
  segment-bridge twilio check --json | jq '.findings[] | .code'

Lists the account's sinks and subscriptions and reports, per subscription: types Twilio marks deprecated,
restricted or discontinued (live from /v1/Types) with their replacement; subscribed types the bridge refuses and
why; call-progress types missing for a complete funnel; schema versions the bridge was not tested with; sinks that
are not active. With --sink-url, only the sinks posting to that URL (and their subscriptions).

{_CREDENTIALS}

exit status: 0 clean, 1 findings, 2 configuration or Twilio API error.
"""

_MIGRATE_EPILOG = f"""\
examples:
  segment-bridge twilio migrate                          # plan for every subscription; changes nothing
  segment-bridge twilio migrate DFxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
  segment-bridge twilio migrate --apply                  # carry the plan out

Replaces each deprecated com.twilio.voice.webhook.status-callback.call.* type by its current twin. --apply adds
each replacement first (at the deprecated type's schema version when the replacement has it, else the latest),
reads the subscription back to confirm it, and only then removes the deprecated type, printing each change. A
type whose replacement cannot be added is kept. Safe to run again after any failure: it finishes the job and
changes nothing that is already right.

{_CREDENTIALS}

exit status: 0 nothing (left) to migrate, 1 a plan printed but not applied (without --apply) or a type that
cannot be migrated, 2 configuration or Twilio API error (run again: it resumes).
"""

_SETUP_EPILOG = f"""\
examples:
  segment-bridge twilio setup --sink-url https://bridge.example.com/events
  segment-bridge twilio setup --sink-url https://bridge.example.com/events --wait 0   # don't wait

Creates a webhook sink posting to URL (or reuses one that already does), asks Twilio to send its test event, waits
for the sink to be validated (serve does that itself when it has TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN), then
creates a subscription with the four call-progress types at their latest schema version (or adds the missing ones
to the sink's subscription). If the sink is still not active, it prints the step that remains; run it again
afterwards.

{_CREDENTIALS}

exit status: 0 sink active and subscribed, 1 the sink still waits for validation, 2 configuration or Twilio API
error.
"""


def _wait_seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 600 seconds, got {text}")
    return value


def add_arguments(subparsers: Any) -> None:
    """Add the ``twilio`` command group to the CLI's subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    group = subparsers.add_parser(
        "twilio",
        help="check, migrate and set up the Twilio Event Streams sink and subscription (needs the [twilio] extra)",
        description="Look after the Twilio side: sinks, subscriptions and deprecated event types.",
        epilog=_GROUP_EPILOG,
        formatter_class=formatter,
    )
    commands = group.add_subparsers(dest="twilio_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="report deprecated, refused and missing types, untested schema versions and inactive sinks",
        description="Check the account's Event Streams sinks and subscriptions against what the bridge needs.",
        epilog=_CHECK_EPILOG,
        formatter_class=formatter,
    )
    check.add_argument("--sink-url", metavar="URL", help="only the sinks posting to URL (the bridge's public URL)")
    check.add_argument("--json", action="store_true", help="one JSON object on stdout instead of text")
    migrate = commands.add_parser(
        "migrate",
        help="replace deprecated call-progress types: a plan, or with --apply the change",
        description="Replace deprecated call-progress types on subscriptions: add first, confirm, then remove.",
        epilog=_MIGRATE_EPILOG,
        formatter_class=formatter,
    )
    migrate.add_argument(
        "subscriptions", nargs="*", metavar="SUBSCRIPTION_SID", help="subscriptions to migrate (default: all)"
    )
    migrate.add_argument("--apply", action="store_true", help="make the changes (default: print the plan only)")
    setup = commands.add_parser(
        "setup",
        help="create (or reuse) the bridge's webhook sink, have it validated, subscribe it to call progress",
        description="Set the account up for the bridge: webhook sink, validation, call-progress subscription.",
        epilog=_SETUP_EPILOG,
        formatter_class=formatter,
    )
    setup.add_argument("--sink-url", metavar="URL", required=True, help="the bridge's public URL (serve --public-url)")
    setup.add_argument(
        "--wait",
        type=_wait_seconds,
        default=20.0,
        metavar="SECONDS",
        help="how long to wait for the sink to be validated (default: 20; 0 = don't wait)",
    )


def run(
    args: argparse.Namespace,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run one ``twilio`` command; returns the exit status. Errors are one line on ``err``.

    ``sleep`` waits between attempts, and between looks at a sink waiting for validation (tests pass a recorder).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    environ = environ if environ is not None else os.environ
    command = f"{_PROG} {args.twilio_command}"

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    def notice(line: str) -> None:
        print(f"{command}: {line}", file=err, flush=True)

    try:
        from segment_bridge.eventstreams.api import connect

        api = connect(environ, on_retry=notice, sleep=sleep)
        if args.twilio_command == "check":
            return _run_check(api, args, say)
        if args.twilio_command == "migrate":
            return _run_migrate(api, args, say)
        return _run_setup(api, args, say, sleep)
    except BridgeError as error:
        print(f"{command}: error: {error}", file=err, flush=True)
        return EXIT_ERROR


def _run_check(api: Any, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from segment_bridge.eventstreams.check import bridge_sinks, display_url, find_problems

    state = api.account()
    findings = find_problems(state, args.sink_url)
    sinks = bridge_sinks(state, args.sink_url)
    sink_sids = {sink.sid for sink in sinks}
    subscriptions = [each for each in state.subscriptions if args.sink_url is None or each.sink_sid in sink_sids]
    if args.json:
        document = {
            "sinks": [
                {
                    "sid": sink.sid,
                    "description": sink.description,
                    "sink_type": sink.sink_type,
                    "status": sink.status,
                    "destination": display_url(sink.destination),
                }
                for sink in sinks
            ],
            "subscriptions": [
                {
                    "sid": each.sid,
                    "description": each.description,
                    "sink_sid": each.sink_sid,
                    "types": [{"type": t.type, "schema_version": t.schema_version} for t in each.types],
                }
                for each in subscriptions
            ],
            "findings": [finding.as_json() for finding in findings],
        }
        say(json.dumps(document, indent=2))
        return EXIT_REMAINS if findings else EXIT_OK
    say(f"sinks ({len(sinks)}):")
    for sink in sinks:
        where = f" -> {display_url(sink.destination)}" if sink.destination else ""
        say(f"  {sink.sid}  {sink.sink_type}  {sink.status}{where}  ({sink.description})")
    say(f"subscriptions ({len(subscriptions)}):")
    for each in subscriptions:
        say(f"  {each.sid}  sink {each.sink_sid}  ({each.description})")
        for subscribed in each.types:
            say(f"    {subscribed.type} v{subscribed.schema_version}")
    if not findings:
        say("no findings")
        return EXIT_OK
    say(f"findings ({len(findings)}):")
    for finding in findings:
        where = finding.subscription_sid or finding.sink_sid or "account"
        say(f"  {where}  {finding.code}: {finding.message}")
        if finding.fix:
            say(f"    fix: {finding.fix}")
    return EXIT_REMAINS


def _run_migrate(api: Any, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from segment_bridge.eventstreams.errors import TwilioApiError
    from segment_bridge.eventstreams.migrate import (
        AddType,
        Blocked,
        RemoveType,
        apply_plan,
        describe,
        plan_subscription,
        replacement_schema_ids,
    )

    state = api.account()
    state = replace(state, schema_versions={sid: api.schema_versions(sid) for sid in replacement_schema_ids(state)})
    known = {each.sid: each for each in state.subscriptions}
    unknown = [sid for sid in args.subscriptions if sid not in known]
    if unknown:
        raise TwilioApiError(f"no subscription {', '.join(unknown)} in this account (see segment-bridge twilio check)")
    chosen = [known[sid] for sid in args.subscriptions] if args.subscriptions else list(state.subscriptions)
    plans = [(each, plan_subscription(each, state)) for each in chosen]
    plans = [(each, steps) for each, steps in plans if steps]
    if not plans:
        say("nothing to migrate: no subscription carries a deprecated call-progress type")
        return EXIT_OK
    blocked = 0
    for subscription, steps in plans:
        say(f"{subscription.sid} (sink {subscription.sink_sid}, {subscription.description or 'no description'}):")
        for step in steps:
            say(f"  {describe(step)}")
        blocked += sum(isinstance(step, Blocked) for step in steps)
    changes = sum(isinstance(step, AddType | RemoveType) for _, steps in plans for step in steps)
    if not args.apply:
        say(f"{changes} change(s) planned; nothing was changed. Run again with --apply to make them.")
        return EXIT_REMAINS
    for _, steps in plans:
        apply_plan(api, steps, say)
    say("done" + (f"; {blocked} type(s) kept, see above" if blocked else ""))
    return EXIT_REMAINS if blocked else EXIT_OK


def _run_setup(api: Any, args: argparse.Namespace, say: Callable[[str], None], sleep: Callable[[float], None]) -> int:
    from segment_bridge.eventstreams.setup import run_setup

    result = run_setup(api, args.sink_url, say, wait=args.wait, sleep=sleep)
    return EXIT_OK if result.complete else EXIT_REMAINS
