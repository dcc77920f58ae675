"""Log set-up shared by the entry points: one JSON object per line for the servers, one-line text on a terminal.

``serve`` and the Lambda handler are read by log collectors (CloudWatch Logs Insights, Loki, ...) that parse each
line as a whole: every line they write, uvicorn's and the Segment SDK's included, is one JSON object. A message that
is already a JSON object (the bridge's own structured lines) is merged into it; any other message becomes its
``message`` field, and a traceback its ``exception`` field (escaped, so it stays on the line).

The Segment SDK's ``request.post`` logs an ERROR line (``Unknown error: [500] ...``) for every answer it cannot read
before raising; the bridge turns that exception into its own report (a ``delivery_failed`` refusal, a
``segment_rejected`` line, a retry), so the SDK's line is a duplicate on every retry and is dropped.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

import orjson

__all__ = [
    "JsonFormatter",
    "configure_json_logging",
    "configure_text_logging",
    "drop_sdk_duplicates",
    "level_of",
    "remove_handler",
    "uvicorn_log_config",
]

#: Loggers of the libraries under the bridge; they go through the same handler as the bridge's own.
_LIBRARY_LOGGERS = ("segment", "backoff", "analytics", "urllib3", "uvicorn", "uvicorn.error", "uvicorn.asgi")
#: The attribute that marks the handler these functions installed, so configuring twice replaces, never doubles.
_MARK = "_segment_bridge_handler"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", ...}``: the message's own fields when it is a JSON object, else ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        fields = _json_object(message)
        if fields is not None:
            line.update(fields)
        else:
            line["message"] = message
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def _json_object(message: str) -> dict[str, Any] | None:
    if not message.startswith("{"):
        return None
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler on whatever ``sys.stderr`` is at each write (tests and wrappers replace it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass  # the constructor's assignment; the property always answers the current sys.stderr


class _SdkDuplicates(logging.Filter):
    """Drops the SDK's per-answer lines from ``request.post``: the exception that follows is reported by us."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "segment" and record.funcName == "post")


_SDK_DUPLICATES = _SdkDuplicates()


def drop_sdk_duplicates() -> None:
    """Install the filter on the SDK's ``segment`` logger (idempotent)."""
    logger = logging.getLogger("segment")
    if _SDK_DUPLICATES not in logger.filters:
        logger.addFilter(_SDK_DUPLICATES)


def level_of(name: str) -> int:
    """``"info"`` -> ``logging.INFO``; unknown names are INFO (argparse has checked the choices)."""
    level = logging.getLevelName(str(name).upper())
    return level if isinstance(level, int) else logging.INFO


def configure_json_logging(level_name: str, stream: IO[str] | None = None) -> logging.Handler:
    """Every record of this process as one JSON line on ``stream`` (standard error by default).

    Replaces the root logger's handlers and the handlers of uvicorn's and the SDK's loggers, which propagate to
    it, so nothing writes a line of another shape.
    """
    level = level_of(level_name)
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(JsonFormatter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries speak at WARNING and above (urllib3's DEBUG lines would drown the bridge's own).
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger("segment_bridge").setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for old in list(library.handlers):
            library.removeHandler(old)
        library.propagate = True
    # uvicorn's start-up lines ("Uvicorn running on ...") are INFO and worth keeping at INFO.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(level)
    drop_sdk_duplicates()
    return handler


def configure_text_logging(level_name: str) -> logging.Handler:
    """For ``translate`` and ``replay``: ``segment-bridge: LEVEL: logger: message`` lines on standard error.

    Their report is the per-event lines and the summary they print; logging is for the libraries' warnings and,
    at ``debug``, the details. Returns the handler, which :func:`remove_handler` takes away again.
    """
    level = level_of(level_name)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("segment-bridge: %(levelname)s: %(name)s: %(message)s"))
    handler.setLevel(level)
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    handler._previous_level = root.level  # type: ignore[attr-defined]
    root.setLevel(level)
    drop_sdk_duplicates()
    return handler


def remove_handler(handler: logging.Handler) -> None:
    """Undo :func:`configure_text_logging` (``main`` may run more than once in a process, e.g. in tests)."""
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(getattr(handler, "_previous_level", root.level))


def uvicorn_log_config() -> dict[str, Any]:
    """The ``log_config`` for uvicorn: install nothing of its own, so its loggers reach the JSON handler above.

    uvicorn applies ``log_config`` in each process it starts (``--workers`` too) after the app's module is
    imported; its default installs plain-text handlers with ``propagate: False``, which is what this replaces.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
