"""The ``userId`` lookup in the team's own customer table, behind the ``[identity]`` extra (SQLAlchemy Core).

Off unless ``SEGMENT_BRIDGE_IDENTITY_URL`` names a database: :func:`lookup_from_env` returns ``None`` then, without
importing SQLAlchemy, so the commands and the Lambda cost nothing when the lookup is not used. The URL is read from
the environment only, never from the mapping file, because it may hold a password; the query, its timeout and what
to do when the database fails are in the mapping's ``[identity.lookup]``.

What is sent when (the README's "Linking calls to your customers" tells users the same):

- a call whose ``phone`` external id is found in one row: ``userId`` added (Segment links it to ``anonymousId``);
- found in no row: sent as it was (and the absence is remembered for ``cache_ttl``, like a found id);
- found with two different user ids: sent as it was, counted as a conflict (never a guess);
- the database failed or was too slow: with ``on_error = "send"`` sent as it was and counted as
  ``identity_lookup_failed``; with ``"retry"`` a :class:`LookupFailure`, which the delivery engine settles without
  sending (503 for Twilio to redeliver, a dead-letter record that replays, a ``batchItemFailures`` entry).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from segment_bridge.exceptions import ConfigurationError, MissingExtraError

if TYPE_CHECKING:
    from segment_bridge.delivery.engine import BatchStage
    from segment_bridge.identity.lookup import LookupCounters, LookupFailure, UserIdLookup
    from segment_bridge.mapping import CompiledMapping

__all__ = [
    "IDENTITY_URL_ENV",
    "LookupCounters",
    "LookupFailure",
    "UserIdLookup",
    "identity_stage",
    "lookup_from_env",
]

#: The environment variable that turns the lookup on: a SQLAlchemy database URL.
IDENTITY_URL_ENV = "SEGMENT_BRIDGE_IDENTITY_URL"

_LAZY = frozenset({"LookupCounters", "LookupFailure", "UserIdLookup"})


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'segment_bridge.identity' has no attribute {name!r}")
    return getattr(_lookup_module(), name)


def _lookup_module() -> Any:
    try:
        return importlib.import_module("segment_bridge.identity.lookup")
    except ImportError as error:
        if (error.name or "").partition(".")[0] in ("sqlalchemy", "cachetools"):
            raise MissingExtraError("identity", f"the userId lookup ({IDENTITY_URL_ENV})") from None
        raise


def lookup_from_env(environ: Mapping[str, str], mapping: CompiledMapping, *, check: bool = True) -> UserIdLookup | None:
    """The lookup ``environ`` asks for, checked against the database; ``None`` when the URL is unset or empty.

    Raises:
        MissingExtraError: the URL is set and the ``[identity]`` extra is not installed.
        ConfigurationError: the URL is set and the mapping has no ``[identity.lookup]``, the URL does not parse or
            names a driver that is not installed, or (``check``) the query fails or returns the wrong columns.
            One line, without the password.
    """
    url = environ.get(IDENTITY_URL_ENV, "").strip()
    if not url:
        return None
    module = _lookup_module()
    spec = mapping.spec.identity.lookup
    if spec is None:
        raise ConfigurationError(
            f"{IDENTITY_URL_ENV} is set but the mapping {mapping.source} has no [identity.lookup] query; add one "
            f"(see the README, 'Linking calls to your customers') or unset {IDENTITY_URL_ENV}"
        )
    lookup: UserIdLookup = module.UserIdLookup(url, spec)
    if check:
        try:
            lookup.check()
        except BaseException:
            lookup.close()
            raise
    return lookup


def identity_stage(lookup: UserIdLookup | None) -> BatchStage | None:
    """The delivery engine's batch stage for ``lookup`` (``None``: no stage, the lookup is off)."""
    if lookup is None:
        return None
    from segment_bridge.identity.stage import lookup_stage  # imports SQLAlchemy: only when the lookup is on

    return lookup_stage(lookup)
