"""The one exception hierarchy of segment-bridge.

Every error the library raises on purpose is a :class:`BridgeError`::

    BridgeError
    ├── ConfigurationError                bad settings, missing write key, unreadable path
    │   └── MissingExtraError (+ImportError)   names the ``pip install`` line
    ├── MappingError                      a mapping file is wrong: file + key per problem
    ├── EventError (+ValueError)          one inbound event is unusable
    │   ├── InvalidEventError             not JSON / not a CloudEvent / fails the model
    │   └── SignatureError                bad or missing X-Twilio-Signature or bodySHA256
    └── DeliveryError                     Segment did not take a batch: status, counts, attempts
        ├── RetryableDeliveryError        429 / 408 / 5xx / network / timeout; ``retry_after``
        └── PermanentDeliveryError        other 4xx, or rejected before sending
            └── PayloadTooLargeError      Segment answered "too large" (400/413)

Refusals of individual events are *values* (:class:`segment_bridge.Refusal`), not exceptions: translation never
raises for bad input. Messages never carry secrets or payloads, only counts, codes, keys and field paths.
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ConfigurationError",
    "DeliveryError",
    "EventError",
    "InvalidEventError",
    "MappingError",
    "MissingExtraError",
    "PayloadTooLargeError",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "SignatureError",
]


#: Where the package is installed from until it is published (``[project.urls] Source`` in pyproject.toml).
SOURCE_URL = "https://github.com/segment-bridge/segment-bridge"


class BridgeError(Exception):
    """Root of every error segment-bridge raises on purpose."""


class ConfigurationError(BridgeError):
    """The bridge cannot start: a setting, path or secret is missing or wrong."""


class MissingExtraError(ConfigurationError, ImportError):
    """An optional extra is not installed; the message names the ``pip install`` line."""

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        # Not on PyPI yet: the lines that work today come first, the published form is marked as such.
        super().__init__(
            f"{feature} needs the [{extra}] extra: pip install 'segment-bridge[{extra}] @ git+{SOURCE_URL}' "
            f"(or pip install '.[{extra}]' in a checkout; once published: pip install 'segment-bridge[{extra}]')"
        )


class MappingError(BridgeError):
    """A mapping file is invalid. ``problems`` lists ``(key path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        detail = "; ".join(f"{key}: {message}" if key else message for key, message in problems)
        super().__init__(f"{source}: {detail}")


class EventError(BridgeError, ValueError):
    """One inbound event cannot be used."""


class InvalidEventError(EventError):
    """Input is not JSON, not a CloudEvent, or fails the event model; ``path`` names the field."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class SignatureError(EventError):
    """A request's X-Twilio-Signature or bodySHA256 does not check out."""


class DeliveryError(BridgeError):
    """Segment did not accept a batch. Carries status and counts, never payloads or the write key."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str = "http",
        attempts: int = 1,
        count: int = 0,
    ) -> None:
        self.status = status
        self.kind = kind
        self.attempts = attempts
        self.count = count
        super().__init__(message)


class RetryableDeliveryError(DeliveryError):
    """A transient failure (429, 408, 5xx, network, timeout): trying again may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PermanentDeliveryError(DeliveryError):
    """Segment refused the batch for good (a 4xx other than 408/429): retrying will not help."""


class PayloadTooLargeError(PermanentDeliveryError):
    """Segment answered that the batch or a message is too large; splitting the batch may help."""
