"""The database side of the lookup: a SQLAlchemy engine with a timeout on every query, read-only where it can be.

Errors are described in one line without the password or the looked-up numbers.

Timeouts, by dialect:

- PostgreSQL (psycopg, psycopg2): ``statement_timeout`` and ``connect_timeout`` in the connection's options, so the
  server cancels a slow query; the session is also ``default_transaction_read_only``.
- SQLite: a progress handler interrupts a query past its deadline; the connection is ``PRAGMA query_only``, and
  ``timeout`` bounds the wait for a lock.
- Every dialect (Snowflake, BigQuery, Redshift, ...): the query runs on a worker thread and the caller stops waiting
  at the deadline (a stalled server cannot stall delivery). The worker is left to finish; while as many are stuck
  as there are workers, further lookups fail at once instead of queueing behind them.

The pool checks a connection before use (``pool_pre_ping``) and a query that meets a connection the server dropped
(a restart) is run again once on a fresh one, so a database restart costs no failed lookup once it is back.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sqlalchemy import Engine, String, bindparam, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql.elements import TextClause

from segment_bridge.exceptions import ConfigurationError

__all__ = ["PhoneDatabase", "QueryFailed", "redacted_url"]

#: The columns the query must return (any case: Snowflake upper-cases unquoted names).
COLUMNS = ("phone", "user_id")
_EXAMPLE = "e.g. SELECT phone_e164 AS phone, user_id FROM customers WHERE phone_e164 IN :phones"
# SQLite before 3.32 takes at most 999 bound values per statement; larger batches are looked up in chunks.
MAX_PHONES_PER_QUERY = 999
# Threads that run queries; a batch runs one query, so this bounds the database connections the lookup holds.
_WORKERS = 4
# The server's own timeout (PostgreSQL, SQLite) fires first; the caller waits this much longer before giving up.
_NATIVE_GRACE = 1.0
_SQLITE_PROGRESS_STEPS = 1_000


class QueryFailed(Exception):
    """A query failed; ``reason`` is one line without secrets or looked-up values."""

    def __init__(self, reason: str, *, timeout: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timeout = timeout


# Query parameters that carry a credential: libpq reads ``?password=``, other drivers take tokens and keys there.
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|credential", re.IGNORECASE)


def redacted_url(url: URL) -> str:
    """The URL as it may be logged: the password hidden, in the user part and in the query string."""
    hidden = {name: "***" for name in url.query if _SECRET_PARAMETER.search(name)}
    rendered = url.update_query_dict(hidden).render_as_string(hide_password=True)
    return rendered.replace("=%2A%2A%2A", "=***")  # the query string is rendered percent-encoded


def _secret_values(url: URL) -> list[str]:
    """The password and any credential in the query string, to scrub from a driver's words."""
    values = [url.password] if isinstance(url.password, str) and url.password else []
    for name, value in url.query.items():
        if _SECRET_PARAMETER.search(name):
            values.extend(v for v in ([value] if isinstance(value, str) else value) if v)
    return values


class PhoneDatabase:
    """The query over one engine: ``user_ids(phones)`` is the rows ``(phone, user_id)`` for those phones."""

    def __init__(self, url: str | URL, query: str, timeout: float) -> None:
        try:
            self.url = make_url(url)
        except (exc.ArgumentError, ValueError):
            # Never echo the text: it may hold a password.
            raise ConfigurationError(
                "SEGMENT_BRIDGE_IDENTITY_URL is not a database URL (dialect+driver://user:password@host/database)"
            ) from None
        self.timeout = timeout
        self._secrets = _secret_values(self.url)
        # Typed: the check's empty list is rendered as an empty set of strings (untyped, PostgreSQL reads integers).
        self._statement: TextClause = text(query).bindparams(bindparam("phones", expanding=True, type_=String()))
        self._native_timeout = False
        self.engine = self._create_engine()
        self._executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="segment-bridge-identity")
        self._lock = threading.Lock()
        self._stuck = 0

    def __repr__(self) -> str:
        return f"PhoneDatabase({redacted_url(self.url)!r}, timeout={self.timeout})"

    def _create_engine(self) -> Engine:
        try:
            return self._engine_for(self.url.get_backend_name())
        except (exc.NoSuchModuleError, ModuleNotFoundError) as error:
            hint = " (pip install 'psycopg[binary]')" if self.url.get_backend_name() == "postgresql" else ""
            raise ConfigurationError(
                f"SEGMENT_BRIDGE_IDENTITY_URL {redacted_url(self.url)}: the database driver is not installed{hint}: "
                f"{self._scrub(str(error).splitlines()[0] if str(error) else type(error).__name__)}"
            ) from None
        except exc.ArgumentError as error:
            raise ConfigurationError(
                f"SEGMENT_BRIDGE_IDENTITY_URL {redacted_url(self.url)}: {self._scrub(str(error))}"
            ) from None

    def _engine_for(self, backend: str) -> Engine:
        driver = self.url.get_driver_name()
        connect_args: dict[str, Any] = {}
        if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
            milliseconds = max(1, round(self.timeout * 1000))
            connect_args = {
                "options": f"-c statement_timeout={milliseconds} -c default_transaction_read_only=on",
                "connect_timeout": max(2, math.ceil(self.timeout)),
            }
            self._native_timeout = True
        elif backend == "sqlite":
            connect_args = {"timeout": self.timeout}
            self._native_timeout = True
        engine = create_engine(
            self.url,
            connect_args=connect_args,
            pool_pre_ping=True,
            # Warehouses and proxies drop idle connections; take a fresh one after half an hour.
            pool_recycle=1800,
        )
        if backend == "sqlite":
            _sqlite_deadlines(engine)
        return engine

    def close(self) -> None:
        """Stop the workers (without waiting for a stuck one) and close the pool's connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()

    # -----------------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Run the query for no phones: it must compile, run and return ``phone`` and ``user_id``.

        Raises:
            ConfigurationError: one line naming what is wrong (never the password).
        """
        try:
            columns = self._run(self._columns, ())
        except QueryFailed as error:
            raise ConfigurationError(f"identity lookup ({redacted_url(self.url)}): {error.reason}") from None
        missing = [name for name in COLUMNS if name not in columns]
        if missing:
            raise ConfigurationError(
                f"identity lookup: the query returns the columns {', '.join(columns) or 'none'}; it must return "
                f"{' and '.join(COLUMNS)} ({_EXAMPLE})"
            )

    def user_ids(self, phones: Sequence[str]) -> list[tuple[str, Any]]:
        """The ``(phone, user_id)`` rows for ``phones`` (one query, at most :data:`MAX_PHONES_PER_QUERY`).

        Raises:
            QueryFailed: the database failed, or did not answer in time.
        """
        rows: list[tuple[str, Any]] = self._run(self._rows, phones)
        return rows

    def _run(self, work: Callable[[Sequence[str]], Any], phones: Sequence[str]) -> Any:
        with self._lock:
            if self._stuck >= _WORKERS:
                raise QueryFailed(
                    f"earlier queries are still waiting for the database past their timeout ({self.timeout:g} s)",
                    timeout=True,
                )
        try:
            future: Future[Any] = self._executor.submit(self._guarded, work, phones)
        except RuntimeError:  # closed: the command is shutting down
            raise QueryFailed("the lookup is closed") from None
        wait = self.timeout + (_NATIVE_GRACE if self._native_timeout else 0.0)
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            with self._lock:
                self._stuck += 1
            future.add_done_callback(self._unstick)
            raise QueryFailed(f"the database did not answer within {self.timeout:g} s", timeout=True) from None

    def _unstick(self, _: Future[Any]) -> None:
        with self._lock:
            self._stuck -= 1

    def _guarded(self, work: Callable[[Sequence[str]], Any], phones: Sequence[str]) -> Any:
        try:
            try:
                return work(phones)
            except exc.DBAPIError as error:
                if not error.connection_invalidated:
                    raise
            # The server dropped the connection (a restart): once more, on a fresh one.
            return work(phones)
        except exc.SQLAlchemyError as error:
            raise self._describe(error, phones) from None

    def _columns(self, phones: Sequence[str]) -> list[str]:
        with self.engine.connect() as connection, _deadline(connection, self.timeout):
            result = connection.execute(self._statement, {"phones": list(phones)})
            columns = [str(key).lower() for key in result.keys()]  # noqa: SIM118 - a Result, not a dict
            result.close()
            return columns

    def _rows(self, phones: Sequence[str]) -> list[tuple[str, Any]]:
        with self.engine.connect() as connection, _deadline(connection, self.timeout):
            result = connection.execute(self._statement, {"phones": list(phones)})
            keys = [str(key).lower() for key in result.keys()]  # noqa: SIM118 - a Result, not a dict
            try:
                phone_at, user_at = keys.index("phone"), keys.index("user_id")
            except ValueError:
                raise exc.InvalidRequestError("the query no longer returns phone and user_id") from None
            return [(row[phone_at], row[user_at]) for row in result]

    def _describe(self, error: exc.SQLAlchemyError, phones: Iterable[str]) -> QueryFailed:
        """One line: what failed and the database's words, without the password or the numbers looked up."""
        original = getattr(error, "orig", None)
        if original is not None and _is_timeout(original):
            return QueryFailed(f"the database did not answer within {self.timeout:g} s", timeout=True)
        words = str(original if original is not None else error).strip().splitlines()
        return QueryFailed(f"the query failed: {self._scrub(words[0] if words else type(error).__name__, phones)}")

    def _scrub(self, words: str, phones: Iterable[str] = ()) -> str:
        # Drivers do not echo passwords or bound values as a rule; this makes sure of it for those that might.
        for secret in self._secrets:
            words = words.replace(secret, "***")
        for phone in phones:
            if phone in words:
                words = words.replace(phone, "<phone>")
        return words


def _is_timeout(original: BaseException) -> bool:
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate == "57014":  # PostgreSQL query_canceled: statement_timeout
        return True
    return type(original).__name__ == "OperationalError" and str(original).strip() == "interrupted"


class _deadline:
    """Sets the SQLite progress handler's deadline for the statements run inside it; a no-op elsewhere."""

    __slots__ = ("_slot", "_timeout")

    def __init__(self, connection: Any, timeout: float) -> None:
        self._slot: list[float] | None = connection.info.get(_DEADLINE)
        self._timeout = timeout

    def __enter__(self) -> None:
        if self._slot is not None:
            self._slot[0] = time.monotonic() + self._timeout

    def __exit__(self, *exc_info: object) -> None:
        if self._slot is not None:
            self._slot[0] = 0.0


_DEADLINE = "segment_bridge_deadline"


def _sqlite_deadlines(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        slot = [0.0]
        record.info[_DEADLINE] = slot

        def past_deadline() -> int:
            return 1 if slot[0] and time.monotonic() > slot[0] else 0

        dbapi_connection.set_progress_handler(past_deadline, _SQLITE_PROGRESS_STEPS)
        # The lookup only reads: a query that would write fails instead.
        dbapi_connection.execute("PRAGMA query_only = ON")
