"""When the Twilio commands try a request again, and how long they wait (pure: RetryPolicy.delay)."""

from __future__ import annotations

import pytest

pytest.importorskip("twilio")

from segment_bridge.eventstreams.api import Credentials, RetryPolicy, api_base_url
from segment_bridge.exceptions import ConfigurationError

POLICY = RetryPolicy(max_attempts=4, max_wait=60.0, backoff=1.0)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_429_is_retried_after_retry_after_for_any_method(method):
    assert POLICY.delay(method, 429, "3", 1) == 3.0
    assert POLICY.delay(method, 429, None, 2) == 2.0  # no Retry-After: backoff


def test_5xx_is_retried_for_get_and_delete_and_for_post_only_when_twilio_says_when():
    assert POLICY.delay("GET", 503, None, 1) == 1.0
    assert POLICY.delay("DELETE", 500, None, 3) == 4.0
    assert POLICY.delay("POST", 500, None, 1) is None  # may have been carried out: not repeated
    assert POLICY.delay("POST", 503, "5", 1) == 5.0


def test_lost_connections_are_retried_for_idempotent_requests_only():
    assert POLICY.delay("GET", None, None, 1) == 1.0
    assert POLICY.delay("POST", None, None, 1) is None


def test_other_4xx_and_exhausted_attempts_and_long_waits_are_not_retried():
    assert POLICY.delay("GET", 404, None, 1) is None
    assert POLICY.delay("POST", 400, "1", 1) is None
    assert POLICY.delay("GET", 429, "1", 4) is None
    assert POLICY.delay("GET", 429, "3600", 1) is None


def test_retry_after_as_an_http_date_in_the_past_means_now():
    assert POLICY.delay("GET", 429, "Wed, 21 Oct 2015 07:28:00 GMT", 1) == 0.0


def test_credentials_from_the_environment_and_never_in_repr():
    token = "tok-" + "x" * 28
    creds = Credentials.from_env({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": token})
    assert (creds.username, creds.password.get_secret_value()) == ("AC1", token)
    assert token not in repr(creds) and token not in str(creds)
    key = Credentials.from_env({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_API_KEY": "SK1", "TWILIO_API_SECRET": token})
    assert (key.account_sid, key.username) == ("AC1", "SK1")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": "AC1"}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_API_KEY": "SK1"}, "TWILIO_API_SECRET"),
    ],
)
def test_missing_credentials_are_named(environ, named):
    with pytest.raises(ConfigurationError, match=named):
        Credentials.from_env(environ)


def test_api_url_default_and_override():
    assert api_base_url({}) == "https://events.twilio.com"
    assert api_base_url({"SEGMENT_BRIDGE_TWILIO_API_URL": "http://127.0.0.1:9/"}) == "http://127.0.0.1:9"
    for bad in ("ftp://x", "http://u:p@host", "http://host?x=1", "not a url"):
        with pytest.raises(ConfigurationError, match="SEGMENT_BRIDGE_TWILIO_API_URL"):
            api_base_url({"SEGMENT_BRIDGE_TWILIO_API_URL": bad})
