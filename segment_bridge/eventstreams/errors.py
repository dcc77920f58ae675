"""The error an Event Streams API call ends in, once the retries Twilio asks for are spent.

It lives apart from :mod:`~segment_bridge.eventstreams.api` so that code handling it never needs the ``twilio``
package imported. Its message is one line: the status, the request (method and path, which hold SIDs and event
type names, never credentials), what it means and what to do.
"""

from __future__ import annotations

from segment_bridge.exceptions import BridgeError

__all__ = ["TwilioApiError"]


class TwilioApiError(BridgeError):
    """Twilio answered an Event Streams API request with an error, or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)
