"""Process start-up of ``segment-bridge serve``: uvicorn, ``--workers``, address checks, logging, exit status.

Importing this module needs no extra: :func:`serve_main` names the missing ``[server]`` extra in one JSON line and
returns 2. uvicorn's ``--workers`` factory is ``segment_bridge.server:app_from_environment``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from segment_bridge.exceptions import BridgeError, ConfigurationError, MissingExtraError
from segment_bridge.server.app import _Bridge, create_app
from segment_bridge.server.config import DEFAULT_MAX_ARRIVING_BYTES, ServerConfig
from segment_bridge.server.logs import _line, logger
from segment_bridge.server.metrics import _Metrics

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from segment_bridge.settings import Settings


_SERVE_ENV = "_SEGMENT_BRIDGE_SERVE_ARGS"
_SERVE_KEYS = (
    "public_url",
    "insecure_no_signature",
    "auth_token_file",
    "secondary_auth_token_file",
    "shared_keys_file",
    "max_body_size",
    "delivery_budget",
    "max_rate",
    "max_concurrency",
    "read_timeout",
    "max_connections",
    "max_arriving_bytes",
    "dry_run",
    "out",
    "dead_letter",
    "no_dead_letter",
    "mapping",
    "segment_host",
    "region",
    "log_level",
    # Paths, not secrets: each worker reads the files itself.
    "write_key_file",
    "hash_key_file",
)


def _worker_options(args: argparse.Namespace, config: ServerConfig) -> str:
    """The non-secret options for ``--workers`` processes, as JSON; the public URL without its user-info."""
    options = {key: getattr(args, key) for key in _SERVE_KEYS}
    options["public_url"] = config.public_url
    return orjson.dumps(options).decode()


def app_from_environment() -> Starlette:
    """App factory for uvicorn workers (``--workers N``): the options travel in an environment variable.

    Only non-secret options travel that way; each worker reads the secrets from its own environment.
    """
    raw = os.environ.get(_SERVE_ENV)
    if raw is None:
        raise ConfigurationError(f"{_SERVE_ENV} is not set: start workers with `segment-bridge serve --workers N`")
    args = argparse.Namespace(**orjson.loads(raw))
    # A worker is a fresh process: without this its INFO lines (one per request, the sink test id) are lost.
    _configure_logging(args.log_level)
    from segment_bridge.cli.serve import _config_from_args

    settings, config = _config_from_args(args, os.environ)
    return _logging_summary(create_app(settings, config))


def _configure_logging(log_level: str) -> None:
    from segment_bridge._logging import configure_json_logging

    configure_json_logging(log_level)


def uvicorn_http_protocol(config: ServerConfig) -> Any:
    """``uvicorn.Config(http=...)`` for ``config``: h11 with bounds on requests still arriving.

    ``serve`` uses it, and so should a host running :func:`create_app` under uvicorn itself (the ``[server]`` extra).
    """
    from segment_bridge.server.arrival import default_max_connections, protocol_factory

    max_connections = config.max_connections or default_max_connections()
    max_arriving = config.max_arriving_bytes or max(DEFAULT_MAX_ARRIVING_BYTES, 4 * config.max_body_size)
    return protocol_factory(config.read_timeout, max_connections, max_arriving)


def serve_main(args: argparse.Namespace) -> int:
    """Run ``segment-bridge serve`` with parsed arguments; returns the exit status.

    0 after a SIGTERM (an orchestrator's stop) once the server has drained, 130 after Ctrl-C (SIGINT), likewise
    drained; both log the counts of what was done first (``"event":"summary"``). 2, after one JSON line
    (``"event":"configuration_error"``), when it cannot start: the ``[server]`` extra is missing, a secret is
    missing, an option is invalid, or the address cannot be listened on.
    """
    # Before anything can fail: every line serve writes, a start-up error included, is one JSON object.
    _configure_logging(args.log_level)
    try:
        return _serve(args)
    except BridgeError as error:
        logger.error(_line("configuration_error", message=str(error)))
        return 2


def _serve(args: argparse.Namespace) -> int:
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise MissingExtraError("server", "segment-bridge serve") from None
    from segment_bridge._logging import uvicorn_log_config

    # Validate everything in the parent first, so a bad option is one line and exit 2, not a crash per worker.
    from segment_bridge.cli.serve import _config_from_args

    settings, config = _config_from_args(args, os.environ)
    _check_address(args.host, args.port)
    workers = args.workers or 1
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": str(args.log_level),
        "log_config": uvicorn_log_config(),
        "access_log": False,  # one structured line per request is ours; uvicorn's would double it
        "timeout_graceful_shutdown": max(10, math.ceil(config.delivery_budget) + 5),
        "lifespan": "on",
        "http": uvicorn_http_protocol(config),
    }
    if workers > 1:
        # Each worker checks the identity lookup as it starts; the parent checks it first, to stop in one line.
        _check_identity_lookup(settings, config)
        os.environ[_SERVE_ENV] = _worker_options(args, config)
        uvicorn.run("segment_bridge.server:app_from_environment", factory=True, workers=workers, **common)
        return 0
    app = _logging_summary(create_app(settings, config))
    server = uvicorn.Server(uvicorn.Config(app, **common))
    received: list[int] = []

    def remember(signum: int, _frame: object) -> None:
        # uvicorn handles the signal while it runs, then raises it again once it has drained: it lands here.
        received.append(signum)
        server.should_exit = True

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, remember) for signum in handled}
    try:
        server.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not server.started:
        return 1  # pragma: no cover - uvicorn exits the process itself when the app fails at startup
    status = 130 if signal.SIGINT in received else 0
    logger.info(_line("exit", signal=signal.Signals(received[-1]).name if received else None, status=status))
    return status


def _check_identity_lookup(settings: Settings, config: ServerConfig) -> None:
    """Raise ``ConfigurationError`` when SEGMENT_BRIDGE_IDENTITY_URL is set and the lookup cannot work."""
    from segment_bridge.identity import IDENTITY_URL_ENV, lookup_from_env
    from segment_bridge.mapping import load_mapping

    if not os.environ.get(IDENTITY_URL_ENV, "").strip():
        return
    hash_key = config.hash_key.get_secret_value().encode() if config.hash_key is not None else None
    lookup = lookup_from_env(os.environ, load_mapping(settings.mapping, hash_key=hash_key))
    if lookup is not None:
        lookup.close()


def _logging_summary(app: Starlette) -> Starlette:
    """Log the counts of what the app did once its lifespan has ended (drained), in every worker process."""
    inner = app.router.lifespan_context
    bridge: _Bridge = app.state.bridge

    @contextlib.asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncIterator[Any]:
        async with inner(started) as state:
            yield state
        logger.info(_line("summary", **_totals(bridge.metrics)))

    app.router.lifespan_context = lifespan
    return app


def _totals(metrics: _Metrics) -> dict[str, Any]:
    """Events by outcome, refusals by reason and answers by status, from the app's metrics."""
    outcomes = dict.fromkeys(("delivered", "acknowledged", "refused", "failed"), 0)
    reasons: dict[str, int] = {}
    for metric in metrics.events.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            outcome, count = sample.labels["outcome"], int(sample.value)
            outcomes[outcome] = outcomes.get(outcome, 0) + count
            if outcome == "refused" and count:
                reasons[sample.labels["reason"]] = reasons.get(sample.labels["reason"], 0) + count
    answers: dict[str, int] = {}
    for metric in metrics.responses.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.value:
                answers[sample.labels["status"]] = int(sample.value)
    return {**outcomes, "refused_reasons": reasons, "responses": answers}


def _check_address(host: str, port: int) -> None:
    """Fail at start, in one line, when ``host:port`` cannot be listened on (a port in use, an unknown host).

    uvicorn would log the error and exit 3 (its "startup failure"); an address is configuration, exit 2.
    """
    import socket

    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigurationError(
            f"cannot listen on {shown}: {error.strerror}; give --host an address of this host"
        ) from None
    if port == 0:
        return  # any free port: nothing to probe
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # The options asyncio uses for the real socket, so the probe fails exactly when the server would.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                reason = (error.strerror or type(error).__name__).lower()
                raise ConfigurationError(
                    f"cannot listen on {shown}: {reason}; stop what uses it or give another --port"
                ) from None
