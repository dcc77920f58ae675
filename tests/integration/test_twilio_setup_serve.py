"""``twilio setup`` then a real ``serve`` receiving the stand-in's sink test event: the sink ends ``active``.

The stand-in plays Twilio: it posts the signed test event to the sink's public URL, which reaches ``serve``'s
address as through a TLS terminator; ``serve``, given the account's credentials, calls ``Validate`` with the test id
after answering. No clock is waited on: the test waits on the stand-in's sink status and on ``serve``'s log lines.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator

import pytest

pytest.importorskip("twilio")
pytest.importorskip("starlette")

from eventstreams_standin import AUTH_TOKEN, CURRENT, EventStreamsStandIn
from servehelp import ServeProcess, base_env

from segment_bridge.cli import twilio as twilio_cli

PUBLIC = "https://bridge.example.com"
SINK_URL = PUBLIC + "/events"

pytestmark = pytest.mark.slow


@pytest.fixture
def es() -> Iterator[EventStreamsStandIn]:
    with EventStreamsStandIn() as standin:
        yield standin


def setup(es: EventStreamsStandIn, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="segment-bridge")
    twilio_cli.add_arguments(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    code = twilio_cli.run(parser.parse_args(["twilio", "setup", "--sink-url", SINK_URL, *argv]), out, err, es.env())
    return code, out.getvalue(), err.getvalue()


def _serve(es: EventStreamsStandIn, **env: str) -> ServeProcess:
    return ServeProcess(
        ["--public-url", SINK_URL, "--dry-run", "--no-dead-letter", "--log-level", "info"], base_env(**env)
    )


def _log_lines(serve: ServeProcess, event: str) -> list[dict[str, object]]:
    lines = []
    for line in serve.lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            lines.append(record)
    return lines


def test_setup_then_serve_validates_the_sink_on_its_test_event_and_setup_subscribes_it(es):
    with _serve(es, **es.env()) as serve:
        es.forward[PUBLIC] = serve.url
        code, out, err = setup(es, "--wait", "0")
        assert code == 1, err  # the sink waits for its validation
        [sink_sid] = es.sinks
        assert "created webhook sink" in out and "asked Twilio to send the sink's test event" in out
        assert es.wait_for_sink_status(sink_sid, "active", timeout=20), serve.log
        assert serve.wait_for('"sink_validation"')
        [validation] = _log_lines(serve, "sink_validation")
        assert validation["result"] == "valid" and validation["sink"] == sink_sid
        assert es.wait_for_test_deliveries(1) == [200]  # serve answered the test event itself

        code, out, err = setup(es)
        assert code == 0, err
        assert "reusing webhook sink" in out and "is active" in out and "created subscription" in out
        [subscription] = es.subscriptions.values()
        assert (subscription.sink_sid, subscription.types) == (sink_sid, {t: 2 for t in CURRENT})

        assert setup(es)[0] == 0  # nothing left: run again, changes nothing
        assert len(es.subscriptions) == 1 and len(es.sinks) == 1
    assert AUTH_TOKEN not in serve.log + serve.out


def test_setup_waits_while_serve_validates(es):
    with _serve(es, **es.env()) as serve:
        es.forward[PUBLIC] = serve.url
        code, out, err = setup(es, "--wait", "20")
        assert code == 0, out + err
        assert "waiting up to 20 s" in out and "created subscription" in out
        [sink] = es.sinks.values()
        assert sink["status"] == "active"


def test_serve_without_account_sid_leaves_validation_to_the_user(es):
    with _serve(es, TWILIO_AUTH_TOKEN=AUTH_TOKEN) as serve:
        es.forward[PUBLIC] = serve.url
        code, out, _ = setup(es, "--wait", "0")
        assert code == 1
        assert "POST it to" in out or "Validate" in out
        assert serve.wait_for('"sink_validation"')
        [line] = _log_lines(serve, "sink_validation")
        assert line["result"] == "left_to_user" and "TWILIO_ACCOUNT_SID" in str(line["reason"])
        assert "/Validate" in str(line["hint"])
        [sink] = es.sinks.values()
        assert sink["status"] == "validating"
        assert es.wait_for_test_deliveries(1) == [200]
    assert AUTH_TOKEN not in serve.log


def test_an_unreachable_twilio_api_does_not_hold_up_the_answer_to_the_test_event(es):
    env = {**es.env(), "SEGMENT_BRIDGE_TWILIO_API_URL": "http://127.0.0.1:9"}
    with _serve(es, **env) as serve:
        es.forward[PUBLIC] = serve.url
        assert setup(es, "--wait", "0")[0] == 1
        assert es.wait_for_test_deliveries(1) == [200]
        assert serve.wait_for('"sink_validation"')
        [line] = _log_lines(serve, "sink_validation")
        assert line["result"] == "error" and "cannot reach the Event Streams API" in str(line["error"])
    assert AUTH_TOKEN not in serve.log
