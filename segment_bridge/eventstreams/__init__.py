"""The Twilio Event Streams API commands: ``segment-bridge twilio check``, ``migrate`` and ``setup``.

Behind the ``[twilio]`` extra; only :mod:`~segment_bridge.eventstreams.api` (and what imports it) needs the
``twilio`` package, so the planning modules import without it.

* :mod:`~segment_bridge.eventstreams.model`: what an account holds, as frozen values (pure).
* :mod:`~segment_bridge.eventstreams.check`: findings from an account's state (pure).
* :mod:`~segment_bridge.eventstreams.migrate`: the plan that replaces deprecated types (pure), and its application.
* :mod:`~segment_bridge.eventstreams.setup`: a sink and a subscription for the bridge.
* :mod:`~segment_bridge.eventstreams.validation`: ``serve`` validating a sink on its test event.
* :mod:`~segment_bridge.eventstreams.api`: credentials, base URL, retries and errors around twilio-python's client.
* :mod:`~segment_bridge.eventstreams.errors`: :class:`TwilioApiError`.
"""

from __future__ import annotations

from segment_bridge.eventstreams.errors import TwilioApiError

__all__ = ["TwilioApiError"]
