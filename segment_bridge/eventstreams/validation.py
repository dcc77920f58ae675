"""Validating a sink from ``serve``, on the sink's test event.

The test event carries the test id but not the sink's SID, so the sinks that may have sent it are looked up: the
account's webhook sinks that are not active yet, narrowed to those posting to the bridge's public URL when it is
known. Each is asked to validate with the id until one accepts it. The calls are few and bounded in time, and
``serve`` makes them after answering Twilio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segment_bridge.eventstreams.api import RetryPolicy, connect
from segment_bridge.eventstreams.errors import TwilioApiError
from segment_bridge.eventstreams.model import same_destination

__all__ = ["validate_test_event"]

# Short, and one retry at most: the bridge's own work comes first, and the operator can validate by hand.
_POLICY = RetryPolicy(max_attempts=2, max_wait=2.0, backoff=0.5)
_TIMEOUT = 5.0


def validate_test_event(environ: Mapping[str, str], test_id: str, public_url: str | None) -> dict[str, Any]:
    """Validate the sink whose test event carried ``test_id``; returns the fields of one log line.

    ``result`` is ``valid`` (``sink`` names it), ``no_pending_sink`` (no sink waits for validation), ``not_valid``
    (Twilio accepted the id for none of them) or ``error`` (``error`` says why, in one line).

    Raises:
        ConfigurationError: credentials missing or ``SEGMENT_BRIDGE_TWILIO_API_URL`` malformed.
    """
    api = connect(environ, policy=_POLICY, timeout=_TIMEOUT)
    try:
        candidates = [
            sink
            for sink in api.sinks()
            if sink.sink_type == "webhook"
            and sink.status != "active"
            and (public_url is None or same_destination(sink.destination, public_url))
        ]
        if not candidates:
            return {"result": "no_pending_sink"}
        for sink in candidates:
            try:
                result = api.validate_sink(sink.sid, test_id)
            except TwilioApiError as error:
                if error.status is not None and 400 <= error.status < 500 and error.status not in (401, 403, 429):
                    continue  # not this sink's test id
                raise
            if result == "valid":
                return {"result": "valid", "sink": sink.sid}
        return {"result": "not_valid", "sinks": [sink.sid for sink in candidates]}
    except TwilioApiError as error:
        return {"result": "error", "error": str(error), "status": error.status}
