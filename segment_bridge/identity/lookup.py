"""``UserIdLookup``: a batch of track calls in, the same calls out with ``userId`` where the customer table has one.

One query per batch for the distinct phone numbers not in the cache; a bounded cache with a time-to-live that also
remembers numbers found in no row (and numbers with two user ids); every outcome counted. Thread-safe: the delivery
engine runs batches on several threads at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import orjson
from cachetools import TTLCache
from sqlalchemy.engine import URL

from segment_bridge.external_ids import phone_external_id
from segment_bridge.identity.database import MAX_PHONES_PER_QUERY, PhoneDatabase, QueryFailed, redacted_url
from segment_bridge.mapping import LookupSpec
from segment_bridge.track import MAX_MESSAGE_BYTES, TrackCall

__all__ = ["LookupCounters", "LookupFailure", "UserIdLookup"]

_log = logging.getLogger("segment_bridge.identity")


class _Absent:
    """What the cache remembers for a phone found in no row."""


class _Conflict:
    """What the cache remembers for a phone found with two different user ids."""


_ABSENT: Final = _Absent()
_CONFLICT: Final = _Conflict()
_Cached = str | _Absent | _Conflict


@dataclass(frozen=True)
class LookupFailure:
    """A call whose lookup failed under ``on_error = "retry"``: settle it without sending, so it comes back later.

    ``reason`` is one line without secrets or phone numbers, e.g. ``identity lookup failed: the database did not
    answer within 2 s``.
    """

    call: TrackCall
    reason: str


@dataclass(frozen=True)
class LookupCounters:
    """Counts since the lookup started; calls are counted once each, so ``lookups`` is the sum of the four after it.

    Attributes:
        lookups: calls that carried a phone external id and no ``userId`` of their own.
        hits: calls given a ``userId``.
        misses: calls whose phone is in no row.
        conflicts: calls whose phone is in rows with different user ids (sent without ``userId``).
        failed: calls whose lookup failed (database down, too slow, query error): ``identity_lookup_failed``.
        cached: calls answered from the cache (part of hits, misses and conflicts).
        queries: queries sent to the database (failed ones too).
    """

    lookups: int = 0
    hits: int = 0
    misses: int = 0
    conflicts: int = 0
    failed: int = 0
    cached: int = 0
    queries: int = 0

    def describe(self) -> str:
        """One line for a command's summary: ``identity lookup: 15 found, 6 not found, 0 with two user ids, ...``."""
        queries = f"{self.queries} quer{'y' if self.queries == 1 else 'ies'}"
        return (
            f"identity lookup: {self.hits} found, {self.misses} not found, {self.conflicts} with two user ids, "
            f"{self.failed} failed ({queries})"
        )


class UserIdLookup:
    """Looks up ``userId`` by the phone external id of each track call, with ``spec``'s query against ``url``."""

    def __init__(self, url: str | URL, spec: LookupSpec, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._database = PhoneDatabase(url, spec.query, spec.timeout)
        self._cache: TTLCache[str, _Cached] = TTLCache(maxsize=spec.cache_size, ttl=spec.cache_ttl, timer=clock)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(LookupCounters.__dataclass_fields__, 0)

    def __repr__(self) -> str:
        return f"UserIdLookup({redacted_url(self._database.url)!r}, on_error={self.spec.on_error!r})"

    @property
    def url(self) -> str:
        """The database URL with its password hidden (for logs)."""
        return redacted_url(self._database.url)

    @property
    def counters(self) -> LookupCounters:
        """A snapshot of the counts."""
        with self._lock:
            return LookupCounters(**self._counts)

    @property
    def cache_size(self) -> int:
        """Phone numbers in the cache now (at most ``cache_size`` of the spec)."""
        with self._lock:
            return len(self._cache)

    def check(self) -> None:
        """Run the query once for no phones: it must compile and return ``phone`` and ``user_id``.

        Raises:
            ConfigurationError: one line, without the password; the commands exit 2 with it.
        """
        self._database.check()

    def close(self) -> None:
        """Close the database connections."""
        self._database.close()

    def enrich(self, calls: Sequence[TrackCall]) -> list[TrackCall | LookupFailure]:
        """The calls, in order, each with its ``userId`` when the table has one; never raises for the database.

        A call that has a ``userId`` already, or no phone external id, comes back as it was, uncounted.
        """
        wanted: dict[int, str] = {}
        for index, call in enumerate(calls):
            if "userId" not in call.message:
                phone = phone_external_id(call.message)
                if phone is not None:
                    wanted[index] = phone
        if not wanted:
            return list(calls)
        found, unknown = self._from_cache(set(wanted.values()))
        failure = ""
        if unknown:
            failure = self._query(sorted(unknown), found)
        counts = dict.fromkeys(LookupCounters.__dataclass_fields__, 0)
        counts["lookups"] = len(wanted)
        out: list[TrackCall | LookupFailure] = list(calls)
        failed = 0
        for index, phone in wanted.items():
            value = found.get(phone)
            if phone in unknown and failure:
                failed += 1
                if self.spec.on_error == "retry":
                    out[index] = LookupFailure(calls[index], failure)
                continue
            if phone not in unknown:
                counts["cached"] += 1
            if isinstance(value, str):
                enriched = _with_user_id(calls[index], value)
                if enriched is None:  # a user id so long that Segment would drop the message: sent without it
                    failed += 1
                else:
                    out[index] = enriched
                    counts["hits"] += 1
            elif value is _CONFLICT:
                counts["conflicts"] += 1
            else:
                counts["misses"] += 1
        counts["failed"] = failed
        if failed:
            action = "to be retried" if self.spec.on_error == "retry" else "sent without userId"
            _log.warning(
                orjson.dumps(
                    {"event": "identity_lookup_failed", "calls": failed, "reason": failure, "action": action}
                ).decode()
            )
        with self._lock:
            for name, count in counts.items():
                self._counts[name] += count
        return out

    def _from_cache(self, phones: set[str]) -> tuple[dict[str, _Cached], set[str]]:
        found: dict[str, _Cached] = {}
        unknown: set[str] = set()
        with self._lock:
            for phone in phones:
                value = self._cache.get(phone)
                if value is None:
                    unknown.add(phone)
                else:
                    found[phone] = value
        return found, unknown

    def _query(self, phones: list[str], found: dict[str, _Cached]) -> str:
        """Look ``phones`` up into ``found`` and the cache; the failure's reason, or ``""``."""
        for start in range(0, len(phones), MAX_PHONES_PER_QUERY):
            chunk = phones[start : start + MAX_PHONES_PER_QUERY]
            with self._lock:
                self._counts["queries"] += 1
            try:
                rows = self._database.user_ids(chunk)
            except QueryFailed as error:
                return f"identity lookup failed: {error.reason}"
            answers: dict[str, _Cached] = dict.fromkeys(chunk, _ABSENT)
            for phone, user_id in rows:
                key = str(phone) if phone is not None else None
                if key not in answers or user_id is None or str(user_id) == "":
                    continue
                value = str(user_id)
                previous = answers[key]
                answers[key] = value if previous is _ABSENT or previous == value else _CONFLICT
            found.update(answers)
            with self._lock:
                self._cache.update(answers)
        return ""


def _with_user_id(call: TrackCall, user_id: str) -> TrackCall | None:
    """``call`` with ``userId`` set; ``None`` when the message would then be over Segment's size limit.

    The body is the old one with the member appended, not the message serialized again: this runs for every call
    found, on the delivery path. (``userId`` comes last; the order of members means nothing in JSON.)
    """
    message = dict(call.message)
    message["userId"] = user_id
    body = b"".join((call.body[:-1], b',"userId":', orjson.dumps(user_id), b"}"))
    enriched = TrackCall(message, body, call.event_id, call.event_type)
    return enriched if enriched.within(MAX_MESSAGE_BYTES) else None
