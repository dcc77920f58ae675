"""A blank signing secret is a configuration error, never a server that verifies nothing.

Anyone can compute an HMAC under an empty (or all-blank) key, so such a secret cannot authenticate Twilio; and a
configuration whose only secret is blank must not start a server that skips the check. The environment and the
secret files already read a blank value as unset or refuse it; these are values given through the Python API.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import SecretStr

pytest.importorskip("starlette")
twilio_validator = pytest.importorskip("twilio.request_validator")

from segment_bridge.exceptions import ConfigurationError  # noqa: E402
from segment_bridge.samples import call_events  # noqa: E402
from segment_bridge.server import ServerConfig, create_app  # noqa: E402
from segment_bridge.settings import Settings  # noqa: E402
from segment_bridge.signature import SigningSecrets, verify  # noqa: E402

PUBLIC_URL = "https://bridge.example.com/events"
TOKEN = "tw_blank_secret_T0ken-0123456789abcdef"
KEY_ID = "webhooks_sharedkey_0123456789abcdef"
SHARED_SECRET = "shared-S3cret-for-blank-tests-0123456789"
BODY = orjson.dumps(call_events(1)[0])


def forged_with(key: str, algorithm: str = "HMAC_SHA1") -> tuple[str, str]:
    """A request signed, with twilio's own code, under a key anyone can guess."""
    forger = twilio_validator.RequestValidator(key)
    url = f"{PUBLIC_URL}?bodySHA256={forger.compute_hash(BODY.decode())}"
    return url, forger.compute_signature(url, {}, algorithm)


BLANK_CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("TWILIO_AUTH_TOKEN", {"auth_token": ""}),
    ("TWILIO_AUTH_TOKEN", {"auth_token": " \t"}),
    ("TWILIO_AUTH_TOKEN", {"auth_token": SecretStr("")}),
    ("TWILIO_SECONDARY_AUTH_TOKEN", {"auth_token": TOKEN, "secondary_auth_token": ""}),
    ("TWILIO_SECONDARY_AUTH_TOKEN", {"auth_token": TOKEN, "secondary_auth_token": SecretStr("  ")}),
    ("SEGMENT_BRIDGE_SHARED_KEYS", {"shared_keys": {KEY_ID: ""}}),
    ("SEGMENT_BRIDGE_SHARED_KEYS", {"auth_token": TOKEN, "shared_keys": {KEY_ID: " "}}),
    ("SEGMENT_BRIDGE_SHARED_KEYS", {"auth_token": TOKEN, "shared_keys": ((KEY_ID, SecretStr("")),)}),
    ("SEGMENT_BRIDGE_SHARED_KEYS", {"auth_token": TOKEN, "shared_keys": {"": SHARED_SECRET}}),
]


@pytest.mark.parametrize(("setting", "values"), BLANK_CONFIGS)
def test_a_blank_secret_is_a_one_line_configuration_error(setting: str, values: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ServerConfig(public_url=PUBLIC_URL, **values)
    message = str(caught.value)
    assert setting in message
    assert "\n" not in message
    for secret in (TOKEN, SHARED_SECRET):
        assert secret not in message
    # The same values through from_env (the explicit arguments the CLI and embedders use).
    with pytest.raises(ConfigurationError):
        ServerConfig.from_env({}, public_url=PUBLIC_URL, **values)


def test_no_server_starts_without_checking_signatures_when_the_only_token_is_blank() -> None:
    """Before: the blank token was dropped from the secrets and the app answered an unsigned request 200."""
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        create_app(Settings(), ServerConfig(public_url=PUBLIC_URL, auth_token=""))


@pytest.mark.parametrize("blank", ["", b"", "   "])
def test_signing_secrets_refuse_a_blank_secret(blank: str | bytes) -> None:
    with pytest.raises(ValueError, match="blank"):
        SigningSecrets([blank])
    with pytest.raises(ValueError, match="blank"):
        SigningSecrets([TOKEN], {KEY_ID: blank})
    # A single token given as such is held to the same rule: a request forged under it is never accepted.
    url, signature = forged_with(blank.decode() if isinstance(blank, bytes) else blank)
    with pytest.raises(ValueError, match="blank"):
        verify(url, BODY, signature, blank)
