"""``serve`` and the secrets it verifies with: shared-key (HMAC-SHA256) signatures, a secondary Auth Token during
rotation, unknown key ids and algorithms, the paths it serves (never a redirect), and a signed empty array.

Requests are signed with twilio-python's own ``RequestValidator``; the bridge only verifies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
anyio_from_thread = pytest.importorskip("anyio.from_thread")
twilio_validator = pytest.importorskip("twilio.request_validator")

from apphelp import AppHarness  # noqa: E402

from segment_bridge.exceptions import ConfigurationError  # noqa: E402
from segment_bridge.mapping import load_mapping  # noqa: E402
from segment_bridge.samples import call_events  # noqa: E402
from segment_bridge.server import ServerConfig, create_app  # noqa: E402
from segment_bridge.settings import Settings  # noqa: E402
from segment_bridge.track import TrackCall  # noqa: E402

RequestValidator = twilio_validator.RequestValidator

TOKEN = "tw_primary_T0ken-for-sig-tests-01234"
SECONDARY = "tw_second_T0ken-for-sig-tests-567890"
KEY_ID = "webhooks_sharedkey_0123456789abcdef"
SHARED_SECRET = "shared-S3cret-for-server-tests-0123456789"
OTHER_KEY_ID = "webhooks_sharedkey_fedcba9876543210"
OTHER_SECRET = "shared-0ther-S3cret-for-server-tests-9876"
SECRETS = (TOKEN, SECONDARY, SHARED_SECRET, OTHER_SECRET)
PUBLIC_URL = "https://bridge.example.com/events"
MAPPING = load_mapping()
CALL = orjson.dumps(call_events(1)[0])
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


class RecordingTransport:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def send(self, batch: Sequence[TrackCall]) -> None:
        self.batches.append([call.message_id for call in batch])

    def close(self) -> None:
        pass


class Harness(AppHarness):
    """The app under test, posting to any path."""

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return self.call(self.client.post, path, content=body, headers=headers or {})

    def get(self, path: str) -> Any:
        return self.call(self.client.get, path)


def twilio_signed(
    body: bytes,
    *,
    secret: str = TOKEN,
    algorithm: str = "HMAC_SHA1",
    key_id: str | None = None,
    url: str = PUBLIC_URL,
) -> tuple[str, dict[str, str]]:
    """Sign like Twilio with twilio-python alone; returns (raw query, headers). ``key_id`` adds the settings header."""
    oracle = RequestValidator(secret)
    full = f"{url}{'&' if '?' in url else '?'}bodySHA256={oracle.compute_hash(body.decode())}"
    headers = {"X-Twilio-Signature": oracle.compute_signature(full, {}, algorithm), "Content-Type": "application/json"}
    if key_id is not None:
        headers[SETTINGS_HEADER] = f"key={key_id},algorithm={algorithm}"
        assert oracle.validate(full, body.decode(), headers["X-Twilio-Signature"], algorithm)
    return full.partition("?")[2], headers


def make_app(transport: RecordingTransport | None = None, environ: dict[str, str] | None = None, **values: Any) -> Any:
    explicit: dict[str, Any] = {"public_url": PUBLIC_URL, "delivery_budget": 1.0, **values}
    config = ServerConfig.from_env(environ or {}, **explicit)
    return create_app(Settings(), config, transport=transport or RecordingTransport(), mapping=MAPPING)


def post_signed(h: Harness, body: bytes, path: str = "/events", **signing: Any) -> Any:
    query, headers = twilio_signed(body, **signing)
    return h.post(f"{path}?{query}", body, headers)


def failure_metric(h: Harness, check: str) -> str | None:
    match = re.search(rf'segment_bridge_signature_failures_total{{check="{check}"}} (\S+)', h.get("/metrics").text)
    return match.group(1) if match else None


# ----------------------------------------------------------------------------------------------------------------
# Shared keys, rotation, unknown keys and algorithms
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HMAC_SHA256", "HMAC_SHA1"])
def test_shared_key_signatures_are_delivered(algorithm: str, caplog: pytest.LogCaptureFixture) -> None:
    transport = RecordingTransport()
    keys = f"{KEY_ID}:{SHARED_SECRET},{OTHER_KEY_ID}:{OTHER_SECRET}"
    with caplog.at_level(logging.DEBUG), Harness(make_app(transport, auth_token=TOKEN, shared_keys=keys)) as h:
        by_key = post_signed(h, CALL, secret=SHARED_SECRET, algorithm=algorithm, key_id=KEY_ID)
        by_other_key = post_signed(h, CALL, secret=OTHER_SECRET, algorithm=algorithm, key_id=OTHER_KEY_ID)
        by_token = post_signed(h, CALL)
        # The right key's signature under the other key id is no signature.
        swapped = post_signed(h, CALL, secret=SHARED_SECRET, algorithm=algorithm, key_id=OTHER_KEY_ID)
    assert [r.status_code for r in (by_key, by_other_key, by_token)] == [200, 200, 200]
    assert by_key.json()["events"][0]["outcome"] == "delivered"
    assert transport.batches
    assert swapped.status_code == 403
    assert swapped.json() == {"error": "signature", "check": "signature_mismatch"}
    for secret in SECRETS:
        assert secret not in caplog.text


def test_a_shared_key_request_is_refused_when_the_bridge_ignores_the_header() -> None:
    """What today's users saw: without the header's algorithm, a shared-key signature is checked as HMAC-SHA1."""
    with Harness(make_app(auth_token=TOKEN, shared_keys={KEY_ID: SHARED_SECRET})) as h:
        query, headers = twilio_signed(CALL, secret=SHARED_SECRET, algorithm="HMAC_SHA256", key_id=KEY_ID)
        del headers[SETTINGS_HEADER]
        response = h.post(f"/events?{query}", CALL, headers)
    assert response.status_code == 403


def test_rotation_accepts_either_auth_token() -> None:
    with Harness(make_app(auth_token=TOKEN, secondary_auth_token=SECONDARY)) as h:
        primary = post_signed(h, CALL, secret=TOKEN)
        secondary = post_signed(h, CALL, secret=SECONDARY)
        third = post_signed(h, CALL, secret="tw_third_T0ken-0000000000000000000")
        # A token-signed request naming SHA-256 (no key) is checked with the tokens too.
        sha256 = post_signed(h, CALL, secret=SECONDARY, algorithm="HMAC_SHA256")
    assert (primary.status_code, secondary.status_code) == (200, 200)
    assert third.status_code == 403
    assert third.json()["check"] == "signature_mismatch"
    # Without the settings header, a SHA-256 signature is not an HMAC-SHA1 one.
    assert sha256.status_code == 403
    with Harness(make_app(auth_token=TOKEN)) as h:
        assert post_signed(h, CALL, secret=SECONDARY).status_code == 403


@pytest.mark.parametrize(
    ("header", "check"),
    [
        ("key=webhooks_sharedkey_unknown,algorithm=HMAC_SHA256", "unknown_key"),
        (f"key={KEY_ID},algorithm=HMAC_SHA512", "unknown_algorithm"),
        ("algorithm=ED25519", "unknown_algorithm"),
    ],
)
def test_unknown_key_or_algorithm_is_403_with_its_own_reason(
    header: str, check: str, caplog: pytest.LogCaptureFixture
) -> None:
    transport = RecordingTransport()
    query, headers = twilio_signed(CALL, secret=SHARED_SECRET, algorithm="HMAC_SHA256", key_id=KEY_ID)
    headers[SETTINGS_HEADER] = header
    app = make_app(transport, auth_token=TOKEN, shared_keys={KEY_ID: SHARED_SECRET})
    with caplog.at_level(logging.INFO, logger="segment_bridge"), Harness(app) as h:
        response = h.post(f"/events?{query}", CALL, headers)
        assert failure_metric(h, check) == "1.0"
    assert response.status_code == 403
    assert response.json() == {"error": "signature", "check": check}
    assert transport.batches == []
    (line,) = [r.getMessage() for r in caplog.records if '"status":403' in r.getMessage()]
    assert f'"check":"{check}"' in line
    for secret in SECRETS:
        assert secret not in caplog.text


def test_shared_keys_alone_suffice_and_a_token_signed_request_is_then_an_unknown_key() -> None:
    with Harness(make_app(shared_keys={KEY_ID: SHARED_SECRET})) as h:
        assert post_signed(h, CALL, secret=SHARED_SECRET, algorithm="HMAC_SHA256", key_id=KEY_ID).status_code == 200
        response = post_signed(h, CALL, secret=TOKEN)
    assert response.status_code == 403
    assert response.json()["check"] == "unknown_key"


# ----------------------------------------------------------------------------------------------------------------
# Configuration: environment variables, files, options; never a secret in a repr or an error
# ----------------------------------------------------------------------------------------------------------------


def test_secrets_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_SECONDARY_AUTH_TOKEN": SECONDARY,
        "SEGMENT_BRIDGE_SHARED_KEYS": f" {KEY_ID}:{SHARED_SECRET} ,{OTHER_KEY_ID}:{OTHER_SECRET},",
        "SEGMENT_BRIDGE_PUBLIC_URL": PUBLIC_URL,
    }
    config = ServerConfig.from_env(environ)
    assert config.auth_token is not None and config.auth_token.get_secret_value() == TOKEN
    assert config.secondary_auth_token is not None and config.secondary_auth_token.get_secret_value() == SECONDARY
    assert {key: secret.get_secret_value() for key, secret in config.shared_keys} == {
        KEY_ID: SHARED_SECRET,
        OTHER_KEY_ID: OTHER_SECRET,
    }
    for text in (repr(config), str(config), repr(config.signing_secrets())):
        for secret in SECRETS:
            assert secret not in text
    # Files, named in the environment (a byte-order mark and a trailing newline are not part of a secret).
    (tmp_path / "secondary").write_text(f"\ufeff{SECONDARY}\n", encoding="utf-8")
    (tmp_path / "keys").write_text(f"{KEY_ID}:{SHARED_SECRET}\n\n{OTHER_KEY_ID}:{OTHER_SECRET}\n")
    from_files = ServerConfig.from_env(
        {
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_SECONDARY_AUTH_TOKEN_FILE": str(tmp_path / "secondary"),
            "SEGMENT_BRIDGE_SHARED_KEYS_FILE": str(tmp_path / "keys"),
        }
    )
    assert from_files.secondary_auth_token == config.secondary_auth_token
    assert from_files.shared_keys == config.shared_keys


def test_file_options_win_over_the_environment(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(f"{TOKEN}\n")
    (tmp_path / "secondary").write_text(f"{SECONDARY}\n")
    (tmp_path / "keys").write_text(f"{KEY_ID}:{SHARED_SECRET}\n")
    environ = {
        "TWILIO_AUTH_TOKEN": "from-the-environment",
        "TWILIO_SECONDARY_AUTH_TOKEN": "from-the-environment-2",
        "SEGMENT_BRIDGE_SHARED_KEYS": "env_key:env_secret",
    }
    config = ServerConfig.from_env(
        environ,
        auth_token_file=str(tmp_path / "token"),
        secondary_auth_token_file=str(tmp_path / "secondary"),
        shared_keys_file=str(tmp_path / "keys"),
    )
    assert config.auth_token is not None and config.auth_token.get_secret_value() == TOKEN
    assert config.secondary_auth_token is not None and config.secondary_auth_token.get_secret_value() == SECONDARY
    assert [(key, secret.get_secret_value()) for key, secret in config.shared_keys] == [(KEY_ID, SHARED_SECRET)]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TWILIO_SECONDARY_AUTH_TOKEN": SECONDARY, "TWILIO_SECONDARY_AUTH_TOKEN_FILE": "/x"}, "not both"),
        (
            {"SEGMENT_BRIDGE_SHARED_KEYS": f"{KEY_ID}:{SHARED_SECRET}", "SEGMENT_BRIDGE_SHARED_KEYS_FILE": "/x"},
            "not both",
        ),
        ({"SEGMENT_BRIDGE_SHARED_KEYS": SHARED_SECRET}, "entry 1 is not KEY_ID:SECRET"),
        ({"SEGMENT_BRIDGE_SHARED_KEYS": f"{KEY_ID}:{SHARED_SECRET},{KEY_ID}:{OTHER_SECRET}"}, "entry 2 repeats"),
        ({"SEGMENT_BRIDGE_SHARED_KEYS": f"{KEY_ID}:{SHARED_SECRET},:{OTHER_SECRET}"}, "entry 2 is not"),
        ({"SEGMENT_BRIDGE_SHARED_KEYS": f"{KEY_ID}:"}, "entry 1 is not"),
        ({"SEGMENT_BRIDGE_SHARED_KEYS": f"{KEY_ID}:{SHARED_SECRET} {OTHER_SECRET}"}, "entry 1 is not"),
        ({"SEGMENT_BRIDGE_SHARED_KEYS_FILE": "/nonexistent/keys"}, "cannot read SEGMENT_BRIDGE_SHARED_KEYS_FILE"),
    ],
)
def test_bad_secret_settings_are_one_line_errors_without_the_secret(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ServerConfig.from_env({"TWILIO_AUTH_TOKEN": TOKEN, **environ})
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    for secret in SECRETS:
        assert secret not in text


def test_what_must_be_configured_to_verify() -> None:
    with pytest.raises(ConfigurationError, match=r"TWILIO_AUTH_TOKEN .*SEGMENT_BRIDGE_SHARED_KEYS"):
        ServerConfig.from_env({}, public_url=PUBLIC_URL).check_security()
    with pytest.raises(ConfigurationError, match="TWILIO_SECONDARY_AUTH_TOKEN is set without TWILIO_AUTH_TOKEN"):
        ServerConfig.from_env({"TWILIO_SECONDARY_AUTH_TOKEN": SECONDARY}, public_url=PUBLIC_URL).check_security()
    ServerConfig.from_env({"SEGMENT_BRIDGE_SHARED_KEYS": f"{KEY_ID}:{SHARED_SECRET}"}, public_url=PUBLIC_URL)


# ----------------------------------------------------------------------------------------------------------------
# Paths: the public URL's and /events, exactly; never a redirect; 404 names the path
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "served", "not_served"),
    [
        ("https://bridge.example.com/events/", ["/events/", "/events"], ["/events//", "/other", "/"]),
        ("https://bridge.example.com/events", ["/events"], ["/events/", "/other"]),
        ("https://bridge.example.com/twilio/hook", ["/twilio/hook", "/events"], ["/twilio/hook/", "/twilio", "/"]),
        ("https://bridge.example.com/hook/?team=a%20b", ["/hook/", "/events"], ["/hook", "/events/"]),
        ("https://bridge.example.com", ["/", "/events"], ["/events/", "/x"]),
    ],
)
def test_the_public_url_path_and_events_are_served_and_nothing_redirects(
    public_url: str, served: list[str], not_served: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    transport = RecordingTransport()
    configured = served[0]
    with (
        caplog.at_level(logging.INFO, logger="segment_bridge"),
        Harness(make_app(transport, auth_token=TOKEN, public_url=public_url)) as h,
    ):
        for path in served:
            # Twilio signs the destination as configured, whichever path the request reaches.
            response = post_signed(h, CALL, path=path, url=public_url)
            assert response.status_code == 200, (path, response.status_code, response.text)
        for path in not_served:
            response = post_signed(h, CALL, path=path)
            assert response.status_code == 404, (path, response.status_code)
            assert "location" not in response.headers
            payload = response.json()
            assert payload["error"] == "not_found"
            assert f"post events to {configured} (the path of --public-url)" in payload["message"]
        assert h.get("/nowhere").status_code == 404
        assert h.get("/healthz").status_code == 200
    assert len(transport.batches) >= 1
    not_found_lines = [r.getMessage() for r in caplog.records if '"status":404' in r.getMessage()]
    assert len(not_found_lines) == len(not_served)


def test_without_a_public_url_only_events_is_served() -> None:
    app = create_app(
        Settings(),
        ServerConfig.from_env({}, insecure_no_signature=True),
        transport=RecordingTransport(),
        mapping=MAPPING,
    )
    with Harness(app) as h:
        assert h.post("/events", CALL).status_code == 200
        response = h.post("/events/", CALL)
    assert response.status_code == 404
    assert "post events to /events" in response.json()["message"]


# ----------------------------------------------------------------------------------------------------------------
# A signed empty array: nothing to deliver is a success
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[]", b"[ ]", b"\n[\r\n\t]\n", b" []"])
def test_a_signed_empty_array_is_200_with_no_outcomes(body: bytes, tmp_path: Path) -> None:
    transport = RecordingTransport()
    dead_letter = tmp_path / "dead.jsonl"
    with Harness(make_app(transport, auth_token=TOKEN, dead_letter=dead_letter)) as h:
        response = post_signed(h, body)
        metrics = h.get("/metrics").text
        unsigned = h.post("/events", body, {"Content-Type": "application/json"})
        still_malformed = post_signed(h, b"[[]]")
    assert response.status_code == 200
    assert response.json() == {"events": []}
    assert transport.batches == []
    # Nothing was refused, so nothing is recorded as refused.
    assert 'outcome="refused"' not in metrics
    assert unsigned.status_code == 403
    assert still_malformed.status_code == 400
    (record,) = [orjson.loads(line) for line in dead_letter.read_bytes().splitlines()]
    assert record["event"] == "[[]]"


# ----------------------------------------------------------------------------------------------------------------
# The real server: options, a trailing-slash destination, shared keys and rotation over HTTP
# ----------------------------------------------------------------------------------------------------------------

_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@contextlib.contextmanager
def running_serve(args: Sequence[str], env: dict[str, str], cwd: Path) -> Iterator[tuple[str, list[str]]]:
    """``segment-bridge serve --port 0`` in a subprocess; yields its base URL and its stderr lines so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "segment_bridge", "serve", "--port", "0", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            match = _RUNNING.search(line)
            if match:
                port.append(int(match.group(1)))
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(30) or not port:
            raise AssertionError("serve did not start:\n" + "".join(lines))
        yield f"http://127.0.0.1:{port[0]}", lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.slow
def test_real_serve_with_file_options_shared_keys_rotation_and_a_trailing_slash(tmp_path: Path) -> None:
    public_url = "https://bridge.example.com/events/"
    (tmp_path / "token").write_text(f"{TOKEN}\n")
    (tmp_path / "keys").write_text(f"{KEY_ID}:{SHARED_SECRET}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGMENT_", "TWILIO_"))}
    env["TWILIO_SECONDARY_AUTH_TOKEN"] = SECONDARY
    args = [
        "--dry-run",
        "--public-url",
        public_url,
        "--auth-token-file",
        str(tmp_path / "token"),
        "--shared-keys-file",
        str(tmp_path / "keys"),
        "--dead-letter",
        str(tmp_path / "dead.jsonl"),
    ]
    with running_serve(args, env, tmp_path) as (base, lines), httpx.Client(base_url=base, timeout=10) as client:

        def post(path: str, body: bytes = CALL, **signing: Any) -> Any:
            query, headers = twilio_signed(body, url=public_url, **signing)
            return client.post(f"{path}?{query}", content=body, headers=headers)

        answers = {
            "shared_key_sha256": post("/events/", secret=SHARED_SECRET, algorithm="HMAC_SHA256", key_id=KEY_ID),
            "primary": post("/events/"),
            "secondary": post("/events", secret=SECONDARY),
            "wrong_key": post("/events/", secret=SHARED_SECRET, algorithm="HMAC_SHA256", key_id="other"),
            "other_path": post("/other"),
            "empty_array": post("/events/", body=b"[]"),
        }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "shared_key_sha256": 200,
        "primary": 200,
        "secondary": 200,
        "wrong_key": 403,
        "other_path": 404,
        "empty_array": 200,
    }
    assert answers["wrong_key"].json()["check"] == "unknown_key"
    assert "/events/ (the path of --public-url)" in answers["other_path"].json()["message"]
    log = "".join(lines)
    for secret in SECRETS:
        assert secret not in log
        assert all(secret not in response.text for response in answers.values())


def test_worker_processes_get_the_secret_file_paths_never_the_secrets(tmp_path: Path) -> None:
    """``--workers N`` passes options to each worker as JSON: the file paths travel, the secrets are read there."""
    import argparse

    from segment_bridge.cli.serve import _config_from_args, add_serve_arguments
    from segment_bridge.server.run import _worker_options

    (tmp_path / "token").write_text(f"{TOKEN}\n")
    (tmp_path / "secondary").write_text(f"{SECONDARY}\n")
    (tmp_path / "keys").write_text(f"{KEY_ID}:{SHARED_SECRET}\n")
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(
        [
            *("--public-url", PUBLIC_URL, "--dry-run", "--no-dead-letter", "--workers", "2"),
            *("--auth-token-file", str(tmp_path / "token")),
            *("--secondary-auth-token-file", str(tmp_path / "secondary")),
            *("--shared-keys-file", str(tmp_path / "keys")),
        ]
    )
    _, config = _config_from_args(args, {})
    options = _worker_options(args, config)
    for secret in SECRETS:
        assert secret not in options
    _, in_worker = _config_from_args(argparse.Namespace(**orjson.loads(options)), {})
    assert in_worker.auth_token == config.auth_token
    assert in_worker.secondary_auth_token == config.secondary_auth_token
    assert in_worker.shared_keys == config.shared_keys
    assert [key for key, _ in in_worker.shared_keys] == [KEY_ID]
