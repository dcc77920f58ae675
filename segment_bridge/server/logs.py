"""The server's log lines: one JSON object each, on the ``segment_bridge.server`` logger (a log field)."""

from __future__ import annotations

import logging
from typing import Any

import orjson

logger = logging.getLogger("segment_bridge.server")


def _line(event: str, **fields: Any) -> str:
    """One structured (JSON) log line."""
    return orjson.dumps({"event": event, **fields}, default=str).decode()


def _safe_url(url: str | None) -> str | None:
    """The URL without credentials or query (either may hold secrets), for logs."""
    if url is None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
