"""The webhook receiver (``segment-bridge serve``): an ASGI app a Twilio Event Streams webhook sink posts to.

``create_app(settings)`` returns the app (:mod:`.app`); :func:`serve_main` runs it under uvicorn (:mod:`.run`).
The package's modules:

* :mod:`.app`: the Starlette app and its request handling (routes, status codes), delivering through the one
  delivery engine (:class:`segment_bridge.delivery.DeliveryEngine`: group commit, deadlines, retries);
* :mod:`.config`: :class:`ServerConfig`, the receiver's options, from the environment or arguments;
* :mod:`.metrics`, :mod:`.health`, :mod:`.redelivery`: Prometheus metrics, ``/healthz``, the cache of recently
  delivered ``messageId`` s;
* :mod:`.arrival`: uvicorn's h11 protocol with bounds on requests still arriving;
* :mod:`.run`: process start-up (uvicorn, ``--workers``, address checks, logging);
* :mod:`.logs`, :mod:`.handling`: the log-line format and small helpers of the request handling.

The command's options live with the command line (:mod:`segment_bridge.cli.serve`). Importing this package needs
no extra: the names below load on first use, and only :mod:`.app` (when an app is built), :mod:`.metrics` (when
it is instantiated), :mod:`.arrival` and :mod:`.run` (when serving) import starlette, prometheus_client and uvicorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segment_bridge.server.app import create_app
    from segment_bridge.server.config import DEFAULT_DELIVERY_BUDGET, DEFAULT_MAX_BODY_SIZE, ServerConfig
    from segment_bridge.server.run import app_from_environment, serve_main, uvicorn_http_protocol

__all__ = [
    "DEFAULT_DELIVERY_BUDGET",
    "DEFAULT_MAX_BODY_SIZE",
    "ServerConfig",
    "app_from_environment",
    "create_app",
    "serve_main",
    "uvicorn_http_protocol",
]

# Loaded on first use, so that ``segment_bridge.server.config`` (the CLI's defaults) comes without the app.
_LAZY = {
    "DEFAULT_DELIVERY_BUDGET": "config",
    "DEFAULT_MAX_BODY_SIZE": "config",
    "ServerConfig": "config",
    "app_from_environment": "run",  # uvicorn's factory for `--workers N`: "segment_bridge.server:app_from_environment"
    "create_app": "app",
    "serve_main": "run",
    "uvicorn_http_protocol": "run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
