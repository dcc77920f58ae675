"""``serve`` finishing a sink's validation by itself, on the sink's test event.

Given Twilio credentials (``TWILIO_ACCOUNT_SID`` with ``TWILIO_AUTH_TOKEN``, the token ``serve`` already checks
signatures with, or ``TWILIO_API_KEY`` and ``TWILIO_API_SECRET``) and the ``[twilio]`` extra, each test event's
``test_id`` is posted to ``/v1/Sinks/{Sid}/Validate`` (see :mod:`segment_bridge.eventstreams.validation`) on a
thread of its own, so Twilio's answer is never held up by it; the result is one ``sink_validation`` log line.
Without them, that line says the validation is left to the operator and how to do it.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import SecretStr

from segment_bridge.exceptions import BridgeError
from segment_bridge.server.logs import _line, logger

__all__ = ["SinkValidator"]

# What the Event Streams client reads: only these are kept, not the whole environment.
_VARIABLES = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_AUTH_TOKEN_FILE",
    "TWILIO_API_KEY",
    "TWILIO_API_SECRET",
    "TWILIO_API_SECRET_FILE",
    "SEGMENT_BRIDGE_TWILIO_API_URL",
)
_BY_HAND = "POST the test_id as TestId to https://events.twilio.com/v1/Sinks/<SinkSid>/Validate (docs/webhook.md#3)"


class SinkValidator:
    """Validates sinks on their test events, or says why it leaves that to the operator."""

    def __init__(self, environ: Mapping[str, str], public_url: str | None, unavailable: str | None) -> None:
        self._environ = dict(environ)
        self._public_url = public_url
        #: Why validation is left to the operator, or None when this validator does it.
        self.unavailable = unavailable
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SinkValidator(public_url={self._public_url!r}, unavailable={self.unavailable!r})"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], public_url: str | None, auth_token: SecretStr | None = None
    ) -> SinkValidator:
        """A validator with the Twilio credentials of ``environ`` (``auth_token``: the token ``serve`` was given)."""
        kept = {name: environ[name] for name in _VARIABLES if environ.get(name)}
        if auth_token is not None and not kept.get("TWILIO_AUTH_TOKEN") and not kept.get("TWILIO_AUTH_TOKEN_FILE"):
            kept["TWILIO_AUTH_TOKEN"] = auth_token.get_secret_value()
        unavailable = None
        if not kept.get("TWILIO_ACCOUNT_SID"):
            unavailable = "TWILIO_ACCOUNT_SID is not set"
        elif not (kept.keys() & {"TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_FILE", "TWILIO_API_KEY"}):
            unavailable = "no Twilio credentials (TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET)"
        else:
            try:
                import segment_bridge.eventstreams.validation  # noqa: F401
            except ImportError:  # MissingExtraError is one
                unavailable = "the [twilio] extra is not installed"
        return cls(kept, public_url, unavailable)

    def submit(self, test_id: str | None) -> None:
        """Validate (in the background) the sink whose test event carried ``test_id``; never blocks or raises."""
        if test_id is None:
            return
        if self.unavailable is not None:
            logger.info(
                _line(
                    "sink_validation",
                    result="left_to_user",
                    test_id=test_id,
                    reason=self.unavailable,
                    hint=f"{_BY_HAND}; or give serve TWILIO_ACCOUNT_SID (with the [twilio] extra) to do it",
                )
            )
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-validation")
        try:
            self._executor.submit(self._validate, test_id)
        except RuntimeError:  # shut down: the app is stopping
            logger.warning(_line("sink_validation", result="skipped", test_id=test_id, reason="shutting down"))

    def _validate(self, test_id: str) -> None:
        from segment_bridge.eventstreams.validation import validate_test_event

        fields: dict[str, Any]
        try:
            fields = validate_test_event(self._environ, test_id, self._public_url)
        except BridgeError as error:
            fields = {"result": "error", "error": str(error)}
        except Exception as error:  # a background job: one log line, never a crashed thread
            fields = {"result": "error", "error": type(error).__name__}
        if fields.get("result") != "valid":
            fields["hint"] = _BY_HAND
        level = logger.info if fields.get("result") in ("valid", "no_pending_sink") else logger.warning
        level(_line("sink_validation", test_id=test_id, **fields))

    def stop(self) -> None:
        """Wait for a validation in progress (each call is bounded by a short timeout)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
