"""segment-bridge: Twilio Voice call events into Segment as clean, deduplicated track calls."""

from __future__ import annotations

__version__ = "0.1.0"
