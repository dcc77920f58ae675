"""``segment-bridge twilio check|migrate|setup`` against the Event Streams stand-in, through twilio-python's client.

No mock of the client: the commands reach the stand-in on 127.0.0.1 through ``SEGMENT_BRIDGE_TWILIO_API_URL``
alone. Waits between attempts go to a recorder, so nothing here sleeps.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("twilio")
pytest.importorskip("starlette")

from eventstreams_standin import (
    API_KEY,
    API_SECRET,
    AUTH_TOKEN,
    CURRENT,
    DEPRECATED,
    EventStreamsStandIn,
)

from segment_bridge.cli import twilio as twilio_cli

URL = "https://bridge.example.com/events"
OTHER = "com.twilio.voice.api-request.call.created"


@pytest.fixture
def es() -> Iterator[EventStreamsStandIn]:
    with EventStreamsStandIn() as standin:
        yield standin


class Run:
    def __init__(self, code: int, out: str, err: str, sleeps: list[float]) -> None:
        self.code, self.out, self.err, self.sleeps = code, out, err, sleeps


def twilio(env: dict[str, str], *argv: str) -> Run:
    parser = argparse.ArgumentParser(prog="segment-bridge")
    twilio_cli.add_arguments(parser.add_subparsers(dest="command"))
    out, err, sleeps = io.StringIO(), io.StringIO(), []
    code = twilio_cli.run(parser.parse_args(["twilio", *argv]), out, err, env, sleep=sleeps.append)
    return Run(code, out.getvalue(), err.getvalue(), sleeps)


def _deprecated_subscription(es: EventStreamsStandIn) -> str:
    sink = es.make_sink(URL)
    return es.make_subscription(sink, {**{t: 2 for t in DEPRECATED}, OTHER: 1})


def _migrated() -> dict[str, int]:
    return {**{t: 2 for t in CURRENT}, OTHER: 1}


def _every_stage_always_carried(es: EventStreamsStandIn, sid: str) -> None:
    for change in es.history:
        if change.subscription_sid != sid:
            continue
        for old, new in zip(DEPRECATED, CURRENT, strict=True):
            assert old in change.types_after or new in change.types_after, (change, old, new)


# check


def test_check_reports_findings_exit_1_and_json_lists_them(es):
    _deprecated_subscription(es)
    es.make_sink("https://elsewhere.example.com/hook", status="failed")
    es.page_size_max = 2  # the types, sinks and subscriptions span pages: meta.next_page_url is followed
    text = twilio(es.env(), "check")
    assert text.code == 1, text.err
    assert "deprecated_type" in text.out and "refused_type" in text.out and "sink_not_active" in text.out
    assert "segment-bridge twilio migrate" in text.out
    machine = twilio(es.env(), "check", "--json")
    assert machine.code == 1
    document = json.loads(machine.out)
    codes = sorted(f["code"] for f in document["findings"])
    assert codes == ["deprecated_type"] * 4 + ["refused_type", "sink_not_active"]
    assert len(document["sinks"]) == 2 and len(document["subscriptions"]) == 1
    assert any(path == "/v1/Types" and "Page=1" not in path for _, path, _ in es.requests)
    assert sum(path == "/v1/Types" for _, path, _ in es.requests) >= 2 * 6  # 11 types, 2 a page, twice


def test_check_is_clean_after_migrate_and_narrows_to_the_sink_url(es):
    sid = _deprecated_subscription(es)
    es.make_sink("https://elsewhere.example.com/hook", status="failed")
    assert twilio(es.env(), "migrate", "--apply").code == 0
    assert es.types_of(sid) == _migrated()
    narrowed = twilio(es.env(), "check", "--sink-url", URL, "--json")
    assert [f["code"] for f in json.loads(narrowed.out)["findings"]] == ["refused_type"]
    es.make_subscription(es.make_sink("https://clean.example.com/e"), {t: 2 for t in CURRENT})
    clean = twilio(es.env(), "check", "--sink-url", "https://clean.example.com/e")
    assert (clean.code, clean.out.strip().splitlines()[-1]) == (0, "no findings")


def test_check_with_an_api_key(es):
    es.make_subscription(es.make_sink(URL), {t: 2 for t in CURRENT})
    env = es.env(TWILIO_API_KEY=API_KEY, TWILIO_API_SECRET=API_SECRET)
    del env["TWILIO_AUTH_TOKEN"]
    assert twilio(env, "check").code == 0


def test_wrong_credentials_are_one_line_exit_2_and_never_printed(es):
    secret = "wrong-token-" + "s" * 20
    run = twilio(es.env(TWILIO_AUTH_TOKEN=secret), "check")
    assert run.code == 2
    [line] = run.err.splitlines()
    assert "401" in line and "TWILIO_AUTH_TOKEN" in line
    assert secret not in run.out + run.err


def test_missing_credentials_exit_2(es):
    env = es.env()
    del env["TWILIO_AUTH_TOKEN"]
    run = twilio(env, "migrate")
    assert run.code == 2 and "TWILIO_AUTH_TOKEN" in run.err and not es.requests


def test_an_unreachable_api_is_one_line_exit_2(es):
    env = es.env(SEGMENT_BRIDGE_TWILIO_API_URL="http://127.0.0.1:9")
    run = twilio(env, "check")
    assert run.code == 2
    *retries, line = run.err.splitlines()
    assert "error: cannot reach the Event Streams API at http://127.0.0.1:9" in line
    assert run.sleeps == [1.0, 2.0, 4.0]  # a GET: tried 4 times, each retry announced on its own line
    assert len(retries) == 3 and all("trying again" in each for each in retries)


def test_429_waits_retry_after_and_goes_on(es):
    _deprecated_subscription(es)
    es.throttle(2, retry_after="3")
    run = twilio(es.env(), "check")
    assert run.code == 1
    assert run.sleeps == [3.0, 3.0]
    assert run.err.count("Twilio answered 429; trying again in 3 s") == 2


def test_429_that_does_not_stop_is_one_line_exit_2(es):
    es.throttle(10, retry_after="1")
    run = twilio(es.env(), "check")
    assert run.code == 2
    last = run.err.splitlines()[-1]
    assert "429 Too Many Requests 4 time(s), asking to wait 1 s" in last


# migrate


def test_migrate_without_apply_prints_the_plan_and_changes_nothing(es):
    sid = _deprecated_subscription(es)
    run = twilio(es.env(), "migrate")
    assert run.code == 1
    assert run.out.count("add    com.twilio.voice.status-callback") == 4
    assert run.out.count("remove com.twilio.voice.webhook") == 4
    assert "(schema version 2)" in run.out and "nothing was changed" in run.out
    assert es.history == [] and es.types_of(sid) == {**{t: 2 for t in DEPRECATED}, OTHER: 1}
    assert all(method == "GET" for method, _, _ in es.requests)


def test_migrate_apply_adds_then_confirms_then_removes_and_a_rerun_changes_nothing(es):
    sid = _deprecated_subscription(es)
    run = twilio(es.env(), "migrate", "--apply")
    assert run.code == 0, run.err
    assert es.types_of(sid) == _migrated()
    ops = [change.op for change in es.history]
    assert ops == ["add"] * 4 + ["remove"] * 4
    lines = [line for line in run.out.splitlines() if line.startswith(sid + ":")]
    assert [line.split()[1] for line in lines] == ["added"] * 4 + ["confirmed"] + ["removed"] * 4
    _every_stage_always_carried(es, sid)
    again = twilio(es.env(), "migrate", "--apply")
    assert again.code == 0 and "nothing to migrate" in again.out
    assert len(es.history) == 8


def test_migrate_named_subscription_only_and_unknown_sid_is_exit_2(es):
    first = _deprecated_subscription(es)
    second = es.make_subscription(es.make_sink("https://b.example.com/e"), {DEPRECATED[0]: 1})
    assert twilio(es.env(), "migrate", second, "--apply").code == 0
    assert es.types_of(second) == {CURRENT[0]: 1}
    assert DEPRECATED[0] in es.types_of(first)
    unknown = twilio(es.env(), "migrate", "DF" + "f" * 32)
    assert unknown.code == 2 and "no subscription DF" in unknown.err


def test_migrate_keeps_a_type_whose_replacement_is_restricted(es):
    sid = es.make_subscription(es.make_sink(URL), {DEPRECATED[0]: 2, DEPRECATED[1]: 2})
    es.add_type(CURRENT[0], "restricted")
    run = twilio(es.env(), "migrate", "--apply")
    assert run.code == 1
    assert es.types_of(sid) == {DEPRECATED[0]: 2, CURRENT[1]: 2}
    assert "cannot migrate it" in run.out


TYPE_CHANGES = 8  # four adds, four removes


@pytest.mark.parametrize("after_change", [False, True], ids=["fails-before-change", "answer-lost-after-change"])
@pytest.mark.parametrize("at", range(1, TYPE_CHANGES + 1))
def test_migrate_interrupted_at_any_step_then_run_again_ends_right(es, at, after_change):
    sid = _deprecated_subscription(es)
    es.fail_type_changes(at, after_change=after_change)
    first = twilio(es.env(), "migrate", "--apply")
    if after_change and at > 4:
        # A removal whose answer was lost is tried again (a DELETE), finds the type gone, and goes on.
        assert first.code == 0, first.err
        assert "was already removed" in first.out
    else:
        assert first.code == 2, first.out
        error = first.err.splitlines()[-1]
        assert "500" in error and "safe to run again" in error
    es.fail_type_changes(None)
    second = twilio(es.env(), "migrate", "--apply")
    assert second.code == 0, second.err
    assert es.types_of(sid) == _migrated()
    _every_stage_always_carried(es, sid)
    assert twilio(es.env(), "migrate").code == 0


def test_a_failed_delete_is_retried_with_backoff_and_no_add_is_repeated(es):
    sid = _deprecated_subscription(es)
    es.fail_type_changes(5)  # every removal fails
    run = twilio(es.env(), "migrate", "--apply")
    assert run.code == 2
    assert run.sleeps == [1.0, 2.0, 4.0]  # the first DELETE, 4 attempts
    posts = [path for method, path, _ in es.requests if method == "POST"]
    assert len(posts) == 4  # one per add, none repeated
    assert es.types_of(sid) == {**{t: 2 for t in DEPRECATED}, **{t: 2 for t in CURRENT}, OTHER: 1}


def test_changes_whose_answers_are_lost_are_tried_again_when_twilio_says_and_found_done(es):
    sid = _deprecated_subscription(es)
    es.fail_type_changes(1, after_change=True, retry_after="0")  # every change is made, then answered 500
    run = twilio(es.env(), "migrate", "--apply")
    assert run.code == 0, run.err
    assert run.out.count("was already subscribed") == 4 and run.out.count("was already removed") == 4
    assert es.types_of(sid) == _migrated()
    _every_stage_always_carried(es, sid)
    assert run.sleeps == [0.0] * 8


# setup (with serve validating the sink: tests/integration/test_twilio_setup_serve.py)


def test_setup_on_an_active_sink_adds_only_the_missing_stages_and_points_at_migrate(es):
    sink = es.make_sink(URL)
    sid = es.make_subscription(sink, {DEPRECATED[0]: 1, CURRENT[1]: 2})
    run = twilio(es.env(), "setup", "--sink-url", URL)
    assert run.code == 0, run.err
    assert es.types_of(sid) == {DEPRECATED[0]: 1, CURRENT[1]: 2, CURRENT[0]: 2, CURRENT[2]: 2, CURRENT[3]: 2}
    assert [change.op for change in es.history] == ["add"] * 3
    assert "still carries deprecated types" in run.out and "reusing webhook sink" in run.out
    assert not any(path.endswith("/Test") for _, path, _ in es.requests)  # active: no test event needed


def test_setup_without_waiting_says_what_remains(es):
    run = twilio(es.env(), "setup", "--sink-url", URL, "--wait", "0")
    assert run.code == 1
    [sink] = es.sinks.values()
    assert sink["status"] == "validating" and not es.subscriptions
    assert f"/v1/Sinks/{sink['sid']}/Validate" in run.out and "run this command again" in run.out
    assert es.wait_for_test_deliveries(1) == ["unreachable"]  # nothing listens at the sink's URL here


# without the extra


def test_without_the_twilio_package_the_command_names_the_install_line():
    code = (
        "import sys, argparse\n"
        "sys.modules['twilio'] = None\n"
        "from segment_bridge.cli import main\n"
        "sys.exit(main(['twilio', 'check']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "pip install 'segment-bridge[twilio] @ git+https://github.com/segment-bridge/segment-bridge'" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_secrets_never_appear_in_any_output(es):
    sid = _deprecated_subscription(es)
    es.make_sink("https://user:basic-pass-123@bridge.example.com/secret-hook", status="failed")
    outputs = [
        twilio(es.env(), *argv) for argv in (["check"], ["check", "--json"], ["migrate"], ["migrate", sid, "--apply"])
    ]
    for run in outputs:
        for secret in (AUTH_TOKEN, "basic-pass-123"):
            assert secret not in run.out + run.err
    assert "user:***@bridge.example.com" in outputs[0].out
