"""The Event Streams API through twilio-python's own client: credentials, base URL, retries, errors.

This is the one module that imports ``twilio`` (the ``[twilio]`` extra). It reads Twilio into the plain values of
:mod:`~segment_bridge.eventstreams.model` and makes the few changes the commands need; every decision about *what*
to change is made elsewhere, from those values.

* Credentials come from the environment the way twilio-python's users set them: ``TWILIO_ACCOUNT_SID`` with
  ``TWILIO_AUTH_TOKEN``, or ``TWILIO_API_KEY`` and ``TWILIO_API_SECRET`` with the account SID (each secret also as
  ``<NAME>_FILE``). They are never taken from the command line, and never appear in a message or a ``repr``.
* ``SEGMENT_BRIDGE_TWILIO_API_URL`` (default ``https://events.twilio.com``) replaces the Events domain's base URL,
  and only it: list pages are followed through the ``meta.next_page_url`` Twilio (or a stand-in) returns.
* Retries happen where Twilio says to: a 429, or a 5xx with ``Retry-After``, is tried again after that wait
  (Twilio did not act on it); a GET or DELETE is also tried again after a 5xx or a lost connection (repeating it
  changes nothing). A POST that failed otherwise is not repeated, since it may have been carried out: the commands
  re-read the account and are safe to run again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from segment_bridge.eventstreams.errors import TwilioApiError
from segment_bridge.eventstreams.model import (
    AccountState,
    EventType,
    Sink,
    SubscribedType,
    Subscription,
)
from segment_bridge.exceptions import ConfigurationError, MissingExtraError
from segment_bridge.settings import secret_setting

try:
    from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
    from twilio.http.http_client import TwilioHttpClient
    from twilio.http.response import Response
    from twilio.rest import Client
except ImportError:  # pragma: no cover - exercised by the no-extra test in a fresh interpreter
    raise MissingExtraError("twilio", "segment-bridge twilio") from None

__all__ = [
    "API_URL_VARIABLE",
    "DEFAULT_API_URL",
    "Credentials",
    "EventStreamsApi",
    "RetryPolicy",
    "api_base_url",
    "connect",
]

API_URL_VARIABLE = "SEGMENT_BRIDGE_TWILIO_API_URL"
DEFAULT_API_URL = "https://events.twilio.com"
_CREDENTIALS_HINT = (
    "set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET with TWILIO_ACCOUNT_SID"
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The account and the key pair its requests are signed with; the secret is a :class:`SecretStr`."""

    account_sid: str
    username: str
    password: SecretStr

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials:
        """Read the credentials twilio-python's users already set.

        Raises:
            ConfigurationError: a variable is missing (the message names which, never a value).
        """
        account_sid = environ.get("TWILIO_ACCOUNT_SID", "").strip()
        api_key = environ.get("TWILIO_API_KEY", "").strip()
        if not account_sid:
            raise ConfigurationError(f"TWILIO_ACCOUNT_SID is not set: {_CREDENTIALS_HINT}")
        if api_key:
            secret = secret_setting(environ, "TWILIO_API_SECRET")
            if secret is None:
                raise ConfigurationError(f"TWILIO_API_KEY is set but TWILIO_API_SECRET is not: {_CREDENTIALS_HINT}")
            return cls(account_sid, api_key, secret)
        token = secret_setting(environ, "TWILIO_AUTH_TOKEN")
        if token is None:
            raise ConfigurationError(f"TWILIO_AUTH_TOKEN (or TWILIO_API_KEY) is not set: {_CREDENTIALS_HINT}")
        return cls(account_sid, account_sid, token)

    def __repr__(self) -> str:
        return f"Credentials(account_sid={self.account_sid!r}, username={self.username!r}, password='**********')"


def api_base_url(environ: Mapping[str, str]) -> str:
    """The Events base URL: ``SEGMENT_BRIDGE_TWILIO_API_URL`` or Twilio's.

    Raises:
        ConfigurationError: the value is not an http(s) URL without user-info, query or fragment.
    """
    value = environ.get(API_URL_VARIABLE, "").strip() or DEFAULT_API_URL
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(f"{API_URL_VARIABLE} must be an http(s) base URL such as {DEFAULT_API_URL}")
    if parts.username or parts.password:
        # Credentials belong in TWILIO_*; a URL is printed in messages.
        raise ConfigurationError(f"{API_URL_VARIABLE} must not carry credentials: use TWILIO_* variables for them")
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait when Twilio says to try again."""

    max_attempts: int = 4
    max_wait: float = 60.0
    backoff: float = 1.0

    def delay(self, method: str, status: int | None, retry_after: str | None, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` not to try again.

        ``status`` None stands for a lost connection or timeout.
        """
        if attempt >= self.max_attempts:
            return None
        asked = _retry_after_seconds(retry_after)
        idempotent = method.upper() in ("GET", "DELETE")
        server_side = status is None or status >= 500
        # Twilio says to try again with a 429, or a Retry-After; repeating a GET or DELETE changes nothing.
        told = status == 429 or (status is not None and status >= 500 and asked is not None)
        if not told and not (server_side and idempotent):
            return None
        wait = asked if asked is not None else self._backoff(attempt)
        return wait if wait <= self.max_wait else None

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * 2.0 ** (attempt - 1), 8.0)


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _RetryingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio-python's HTTP client, trying again where Twilio says to (see the module docstring)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        timeout: float,
        sleep: Callable[[float], None],
        on_retry: Callable[[str], None] | None,
    ) -> None:
        super().__init__(timeout=timeout)
        self._policy = policy
        self._sleep = sleep
        self._on_retry = on_retry
        self.last_retry_after: str | None = None
        self.attempts = 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        attempt = 0
        while True:
            attempt += 1
            self.attempts = attempt
            try:
                response = super().request(method, url, *args, **kwargs)
            except OSError as error:  # requests' errors are OSErrors: refused, reset, timed out
                wait = self._policy.delay(method, None, None, attempt)
                if wait is None:
                    raise
                self._notify(f"{method} {_path(url)}: {type(error).__name__}; trying again in {wait:g} s")
                self._sleep(wait)
                continue
            headers = response.headers or {}
            self.last_retry_after = headers.get("Retry-After")
            if response.status_code < 400:
                return response
            wait = self._policy.delay(method, response.status_code, self.last_retry_after, attempt)
            if wait is None:
                return response
            self._notify(f"{method} {_path(url)}: Twilio answered {response.status_code}; trying again in {wait:g} s")
            self._sleep(wait)

    def _notify(self, line: str) -> None:
        if self._on_retry is not None:
            self._on_retry(line)


def _path(url: str) -> str:
    return urlsplit(url).path or url


def connect(
    environ: Mapping[str, str],
    *,
    policy: RetryPolicy | None = None,
    timeout: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[str], None] | None = None,
) -> EventStreamsApi:
    """An :class:`EventStreamsApi` for the account the environment names.

    Raises:
        ConfigurationError: credentials missing, or a malformed ``SEGMENT_BRIDGE_TWILIO_API_URL``.
    """
    credentials = Credentials.from_env(environ)
    base_url = api_base_url(environ)
    http = _RetryingHttpClient(policy or RetryPolicy(), timeout=timeout, sleep=sleep, on_retry=on_retry)
    client = Client(
        credentials.username,
        credentials.password.get_secret_value(),
        account_sid=credentials.account_sid,
        http_client=http,
    )
    if base_url != DEFAULT_API_URL:
        # twilio-python rewrites hosts for TWILIO_EDGE/TWILIO_REGION; a replaced base URL is used as given.
        client.edge = None
        client.region = None
    client.events.base_url = base_url
    return EventStreamsApi(client, http, base_url)


_STATUS_MEANING = {
    401: "the credentials were not accepted: " + _CREDENTIALS_HINT,
    403: "these credentials may not use the Event Streams API (an API key needs access to it)",
    404: "no such resource in this account",
}


@contextmanager
def _twilio_errors(http: _RetryingHttpClient, base_url: str, method: str, path: str) -> Iterator[None]:
    """Turn twilio-python's errors into one-line :class:`TwilioApiError` s."""
    try:
        yield
    except TwilioRestException as error:
        raise _api_error(http, method, path, int(error.status), error.code, _twilio_message(error.msg)) from None
    except TwilioServiceException as error:
        raise _api_error(http, method, path, int(error.status), error.code, str(error.detail or error.title)) from None
    except TwilioException as error:
        # A failed list page: twilio-python raises TwilioException("Unable to fetch page", response).
        response = error.args[1] if len(error.args) > 1 else None
        status = getattr(response, "status_code", None)
        if status is None:
            raise TwilioApiError(f"{method} {path}: Twilio's answer could not be read") from None
        raise _api_error(http, method, path, int(status), None, _body_message(response)) from None
    except OSError as error:
        raise TwilioApiError(
            f"cannot reach the Event Streams API at {base_url} ({type(error).__name__} on {method} {path}); "
            "check the network (and SEGMENT_BRIDGE_TWILIO_API_URL if set), then run the command again"
        ) from None


def _twilio_message(text: str) -> str:
    # twilio-python prefixes Twilio's own message with its "Unable to create record: ".
    return text.split(": ", 1)[1] if ": " in text else text


def _body_message(response: Any) -> str:
    try:
        payload = json.loads(response.text)
    except (ValueError, TypeError, AttributeError):
        return ""
    return str(payload.get("message", "")) if isinstance(payload, dict) else ""


def _api_error(
    http: _RetryingHttpClient, method: str, path: str, status: int, code: int | None, twilio_says: str
) -> TwilioApiError:
    said = f" ({twilio_says})" if twilio_says and status not in (401,) else ""
    if status == 429:
        wait = _retry_after_seconds(http.last_retry_after)
        asked = f", asking to wait {wait:g} s" if wait is not None else ""
        meaning = f"Twilio answered 429 Too Many Requests {http.attempts} time(s){asked}; run the command again later"
        return TwilioApiError(f"{method} {path}: {meaning}", status=status, code=code)
    if status >= 500:
        meaning = f"Twilio answered {status}{said}, a Twilio-side error; the command is safe to run again"
        return TwilioApiError(f"{method} {path}: {meaning}", status=status, code=code)
    meaning = _STATUS_MEANING.get(status, "Twilio refused the request")
    return TwilioApiError(f"{method} {path}: Twilio answered {status}: {meaning}{said}", status=status, code=code)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class EventStreamsApi:
    """The calls the commands make, returning plain values. Every method raises :class:`TwilioApiError`."""

    def __init__(self, client: Any, http: _RetryingHttpClient, base_url: str) -> None:
        self._v1 = client.events.v1
        self._http = http
        self.base_url = base_url
        self.account_sid: str = client.account_sid

    def __repr__(self) -> str:
        return f"EventStreamsApi(base_url={self.base_url!r}, account_sid={self.account_sid!r})"

    def _errors(self, method: str, path: str) -> Any:
        return _twilio_errors(self._http, self.base_url, method, path)

    # reading

    def event_types(self) -> dict[str, EventType]:
        """Every event type Twilio lists, by name, with its lifecycle status."""
        with self._errors("GET", "/v1/Types"):
            return {
                item.type: EventType(item.type, item.status or "", item.schema_id or "", item.documentation_url or "")
                for item in self._v1.event_types.stream()
            }

    def schema_versions(self, schema_id: str) -> frozenset[int]:
        """The versions Twilio publishes of a schema."""
        with self._errors("GET", f"/v1/Schemas/{schema_id}/Versions"):
            return frozenset(_int(item.schema_version) for item in self._v1.schemas(schema_id).versions.stream())

    def sinks(self) -> tuple[Sink, ...]:
        """Every sink of the account."""
        with self._errors("GET", "/v1/Sinks"):
            return tuple(_sink(item) for item in self._v1.sinks.stream())

    def sink(self, sid: str) -> Sink:
        """One sink."""
        with self._errors("GET", f"/v1/Sinks/{sid}"):
            return _sink(self._v1.sinks(sid).fetch())

    def subscribed_types(self, subscription_sid: str) -> tuple[SubscribedType, ...]:
        """The types a subscription carries."""
        path = f"/v1/Subscriptions/{subscription_sid}/SubscribedEvents"
        with self._errors("GET", path):
            return tuple(
                SubscribedType(item.type, _int(item.schema_version))
                for item in self._v1.subscriptions(subscription_sid).subscribed_events.stream()
            )

    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every subscription of the account, each with its types."""
        with self._errors("GET", "/v1/Subscriptions"):
            listed = list(self._v1.subscriptions.stream())
        return tuple(
            Subscription(item.sid, item.description or "", item.sink_sid or "", self.subscribed_types(item.sid))
            for item in listed
        )

    def subscription(self, sid: str) -> Subscription:
        """One subscription with its types."""
        with self._errors("GET", f"/v1/Subscriptions/{sid}"):
            item = self._v1.subscriptions(sid).fetch()
        return Subscription(item.sid, item.description or "", item.sink_sid or "", self.subscribed_types(item.sid))

    def account(self, schema_ids: tuple[str, ...] = ()) -> AccountState:
        """Types, sinks and subscriptions (with their types), and the published versions of ``schema_ids``."""
        return AccountState(
            types=self.event_types(),
            sinks=self.sinks(),
            subscriptions=self.subscriptions(),
            schema_versions={schema_id: self.schema_versions(schema_id) for schema_id in schema_ids},
        )

    # changing

    def add_subscribed_type(self, subscription_sid: str, event_type: str, schema_version: int | None) -> None:
        """Add a type to a subscription (at the latest version when ``schema_version`` is None)."""
        path = f"/v1/Subscriptions/{subscription_sid}/SubscribedEvents"
        with self._errors("POST", path):
            kwargs: dict[str, Any] = {"type": event_type}
            if schema_version is not None:
                kwargs["schema_version"] = schema_version
            self._v1.subscriptions(subscription_sid).subscribed_events.create(**kwargs)

    def remove_subscribed_type(self, subscription_sid: str, event_type: str) -> None:
        """Remove a type from a subscription."""
        path = f"/v1/Subscriptions/{subscription_sid}/SubscribedEvents/{event_type}"
        with self._errors("DELETE", path):
            self._v1.subscriptions(subscription_sid).subscribed_events(event_type).delete()

    def create_sink(self, destination: str, description: str) -> Sink:
        """Create a webhook sink posting single events (not batches) to ``destination``."""
        with self._errors("POST", "/v1/Sinks"):
            return _sink(
                self._v1.sinks.create(
                    description=description,
                    sink_configuration={"destination": destination, "method": "POST", "batch_events": False},
                    sink_type="webhook",
                )
            )

    def test_sink(self, sid: str) -> str:
        """Ask Twilio to send the sink's test event; returns Twilio's ``result``."""
        with self._errors("POST", f"/v1/Sinks/{sid}/Test"):
            return str(self._v1.sinks(sid).sink_test.create().result or "")

    def validate_sink(self, sid: str, test_id: str) -> str:
        """Confirm the sink with the test id its test event carried; returns Twilio's ``result``."""
        with self._errors("POST", f"/v1/Sinks/{sid}/Validate"):
            return str(self._v1.sinks(sid).sink_validate.create(test_id=test_id).result or "")

    def create_subscription(self, sink_sid: str, description: str, types: tuple[SubscribedType, ...]) -> Subscription:
        """Create a subscription of ``sink_sid`` carrying ``types``."""
        with self._errors("POST", "/v1/Subscriptions"):
            item = self._v1.subscriptions.create(
                description=description,
                sink_sid=sink_sid,
                types=[{"type": each.type, "schema_version": each.schema_version} for each in types],
            )
        return Subscription(item.sid, item.description or "", item.sink_sid or "", types)


def _sink(item: Any) -> Sink:
    configuration = item.sink_configuration if isinstance(item.sink_configuration, dict) else {}
    destination = configuration.get("destination", "")
    return Sink(
        item.sid or "",
        item.description or "",
        str(item.sink_type or ""),
        str(item.status or ""),
        destination if isinstance(destination, str) else "",
    )
