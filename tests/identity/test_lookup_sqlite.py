"""UserIdLookup against a real SQLite file the test builds: hits, misses, conflicts, cache, timeouts, failures."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from identityhelp import QUERY, call_event, calls_for, phone, spec, sqlite_customers

from segment_bridge import ConfigurationError, MissingExtraError, load_mapping, translate
from segment_bridge._resources import packaged_mapping
from segment_bridge.identity import LookupFailure, UserIdLookup, lookup_from_env

ROWS = [(phone(1), "user-1"), (phone(2), "user-2"), (phone(3), "user-3a"), (phone(3), "user-3b"), (phone(4), "u4")]
ROWS += [(phone(4), "u4")]  # the same user id twice is one user


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_customers(tmp_path / "customers.db", ROWS)


@pytest.fixture
def lookup(url: str) -> UserIdLookup:
    lookup = UserIdLookup(url, spec())
    yield lookup
    lookup.close()


def test_found_phones_get_their_user_id_in_one_query_and_the_rest_go_out_unchanged(lookup: UserIdLookup) -> None:
    calls = calls_for([phone(1), phone(2), phone(9), phone(1), phone(3), phone(4), "client:alice"])
    out = lookup.enrich(calls)
    assert [c.message.get("userId") for c in out] == ["user-1", "user-2", None, "user-1", None, "u4", None]  # type: ignore[union-attr]
    for before, after in zip(calls, out, strict=True):
        assert not isinstance(after, LookupFailure)
        # Nothing else changes, and the body is the message.
        assert {k: v for k, v in after.message.items() if k != "userId"} == before.message
        assert orjson.loads(after.body) == after.message
        assert (after.event_id, after.event_type) == (before.event_id, before.event_type)
    assert list(out[0].message)[-1] == "userId"  # type: ignore[union-attr]
    assert out[2] is calls[2]  # not found: the very same call
    counters = lookup.counters
    # client:alice has no phone external id: not a lookup.
    assert (counters.lookups, counters.hits, counters.misses, counters.conflicts, counters.failed) == (6, 4, 1, 1, 0)
    assert counters.queries == 1


def test_the_cache_remembers_hits_misses_and_conflicts_until_the_ttl(url: str) -> None:
    clock = Clock()
    lookup = UserIdLookup(url, spec(cache_ttl=60), clock=clock)
    try:
        batch = calls_for([phone(1), phone(9), phone(3)])
        lookup.enrich(batch)
        assert lookup.counters.queries == 1
        again = lookup.enrich(batch)
        assert [c.message.get("userId") for c in again] == ["user-1", None, None]  # type: ignore[union-attr]
        assert (lookup.counters.queries, lookup.counters.cached, lookup.counters.conflicts) == (1, 3, 2)
        clock.now += 61
        lookup.enrich(batch)
        assert (lookup.counters.queries, lookup.counters.cached) == (2, 3)
    finally:
        lookup.close()


def test_calls_with_a_user_id_of_their_own_are_left_alone(lookup: UserIdLookup, tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(packaged_mapping().read_text().replace("user_id = []", 'user_id = ["param:CallSid"]'))
    (translation,) = translate(orjson.dumps(call_event(phone(1))), load_mapping(path))
    own = translation.track
    assert own is not None
    assert own.message["userId"].startswith("CA")
    assert lookup.enrich([own]) == [own]
    assert (lookup.counters.lookups, lookup.counters.queries) == (0, 0)


def test_an_empty_batch_or_one_without_phones_sends_no_query(lookup: UserIdLookup) -> None:
    assert lookup.enrich([]) == []
    assert lookup.enrich(calls_for(["sip:bob@example.com"]))[0].message.get("userId") is None  # type: ignore[union-attr]
    assert lookup.counters.queries == 0


def test_a_query_past_its_timeout_is_interrupted_and_the_calls_go_out_unchanged(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A recursive count to a billion takes minutes; SQLite's progress handler stops it at the deadline.
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        "SELECT phone_e164 AS phone, user_id FROM customers WHERE phone_e164 IN :phones "
        "AND (SELECT max(i) FROM n) > 0"
    )
    lookup = UserIdLookup(url, spec(slow, timeout=0.2))
    try:
        calls = calls_for([phone(1), phone(2)])
        with caplog.at_level(logging.WARNING, logger="segment_bridge.identity"):
            out = lookup.enrich(calls)
        assert out == calls
        assert (lookup.counters.failed, lookup.counters.hits, lookup.counters.queries) == (2, 0, 1)
        (record,) = caplog.records
        line = orjson.loads(record.getMessage())
        assert line == {
            "event": "identity_lookup_failed",
            "calls": 2,
            "reason": "identity lookup failed: the database did not answer within 0.2 s",
            "action": "sent without userId",
        }
    finally:
        lookup.close()


def test_on_error_retry_returns_failures_for_the_calls_that_needed_the_database(url: str, tmp_path: Path) -> None:
    lookup = UserIdLookup(url.replace("customers.db", "missing/customers.db"), spec(on_error="retry"))
    try:
        calls = calls_for([phone(1), phone(2), "client:bob"])
        out = lookup.enrich(calls)
        assert isinstance(out[0], LookupFailure)
        assert isinstance(out[1], LookupFailure)
        assert out[0].call is calls[0]
        assert out[0].reason.startswith("identity lookup failed: the query failed: unable to open database")
        assert out[2] is calls[2]
        assert lookup.counters.failed == 2
    finally:
        lookup.close()


def test_a_failure_is_not_cached_and_the_next_batch_asks_again(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    lookup = UserIdLookup(f"sqlite:///{path}", spec())
    try:
        assert lookup.enrich(calls_for([phone(1)]))[0].message.get("userId") is None  # type: ignore[union-attr]
        assert lookup.counters.failed == 1
        # The table arrives in the (empty) file SQLite made.
        sqlite_customers(path, ROWS)
        assert lookup.enrich(calls_for([phone(1)]))[0].message.get("userId") == "user-1"  # type: ignore[union-attr]
        assert (lookup.counters.failed, lookup.counters.hits, lookup.counters.queries) == (1, 1, 2)
    finally:
        lookup.close()


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("SELECT user_id FROM customers WHERE phone_e164 IN :phones", "returns the columns user_id; it must return"),
        ("SELECT phone_e164, user_id FROM customers WHERE phone_e164 IN :phones", "must return phone and user_id"),
        ("SELECT phone_e164 AS phone, user_id FROM clients WHERE phone_e164 IN :phones", "no such table: clients"),
        ("SELEC phone FROM customers WHERE x IN :phones", 'near "SELEC": syntax error'),
        ("DELETE FROM customers WHERE phone_e164 IN :phones RETURNING phone_e164 AS phone, user_id", "readonly"),
    ],
)
def test_check_says_in_one_line_what_is_wrong_with_the_query(url: str, query: str, problem: str) -> None:
    lookup = UserIdLookup(url, spec(query))
    try:
        with pytest.raises(ConfigurationError) as caught:
            lookup.check()
    finally:
        lookup.close()
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert "sqlalchemy" not in message.lower()
    assert sqlite_row_count(url) == len(ROWS)  # the DELETE did not delete


def sqlite_row_count(url: str) -> int:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        count: int = connection.execute("SELECT count(*) FROM customers").fetchone()[0]
    connection.close()
    return count


def test_check_passes_for_a_good_query(lookup: UserIdLookup) -> None:
    lookup.check()
    assert lookup.counters.queries == 0


def _mapping_with_lookup(tmp_path: Path, query: str = QUERY) -> Path:
    path = tmp_path / "lookup.toml"
    text = packaged_mapping().read_text()
    path.write_text(text.replace("user_id = []", f'user_id = []\n\n[identity.lookup]\nquery = "{query}"\n'))
    return path


def test_lookup_from_env_is_off_without_the_url_and_checked_with_it(url: str, tmp_path: Path) -> None:
    mapping = load_mapping(_mapping_with_lookup(tmp_path))
    assert lookup_from_env({}, mapping) is None
    assert lookup_from_env({"SEGMENT_BRIDGE_IDENTITY_URL": " "}, mapping) is None
    lookup = lookup_from_env({"SEGMENT_BRIDGE_IDENTITY_URL": url}, mapping)
    assert lookup is not None
    lookup.close()
    with pytest.raises(ConfigurationError, match=r"the mapping .* has no \[identity\.lookup\] query"):
        lookup_from_env({"SEGMENT_BRIDGE_IDENTITY_URL": url}, load_mapping())
    bad = load_mapping(_mapping_with_lookup(tmp_path, QUERY.replace("customers", "nobody")))
    with pytest.raises(ConfigurationError, match="no such table: nobody"):
        lookup_from_env({"SEGMENT_BRIDGE_IDENTITY_URL": url}, bad)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url with s3cr3t-pw", "is not a database URL"),
        ("postgresql+pg8000://bridge:s3cr3t-pw@127.0.0.1/db", "the database driver is not installed"),
        ("nosuchdialect://bridge:s3cr3t-pw@127.0.0.1/db", "the database driver is not installed"),
    ],
)
def test_a_bad_url_is_one_line_without_the_password(url: str, problem: str, tmp_path: Path) -> None:
    mapping = load_mapping(_mapping_with_lookup(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        lookup_from_env({"SEGMENT_BRIDGE_IDENTITY_URL": url}, mapping)
    assert problem in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_concurrent_batches_count_every_call_once(url: str) -> None:
    lookup = UserIdLookup(url, spec())
    batches = [calls_for([phone(1), phone(2), phone(9), phone(3)]) for _ in range(40)]
    results: list[list[object]] = [[] for _ in batches]
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        start.wait(timeout=10)
        for index in range(worker, len(batches), 8):
            results[index] = list(lookup.enrich(batches[index]))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        for out in results:
            assert [c.message.get("userId") for c in out] == ["user-1", "user-2", None, None]  # type: ignore[attr-defined]
        counters = lookup.counters
        assert (counters.lookups, counters.hits, counters.misses, counters.conflicts) == (160, 80, 40, 40)
        assert 1 <= counters.queries <= 8  # a query per batch until the cache has the phones
    finally:
        lookup.close()


def test_the_core_does_not_import_sqlalchemy_and_the_lookup_names_the_extra() -> None:
    code = (
        "import sys; import segment_bridge, segment_bridge.identity, segment_bridge.translate; "
        "print('sqlalchemy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "from segment_bridge import load_mapping\n"
        "from segment_bridge.identity import lookup_from_env\n"
        "try:\n"
        "    lookup_from_env({'SEGMENT_BRIDGE_IDENTITY_URL': 'sqlite://'}, load_mapping())\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.startswith("MissingExtraError the userId lookup (SEGMENT_BRIDGE_IDENTITY_URL) needs the ")
    assert "[identity] extra" in result.stdout
    assert issubclass(MissingExtraError, ConfigurationError)


def test_repr_hides_the_password() -> None:
    lookup = UserIdLookup("postgresql+psycopg://bridge:s3cr3t-pw@127.0.0.1:1/db", spec())
    try:
        assert "s3cr3t-pw" not in repr(lookup)
        assert "***" in repr(lookup)
        assert "s3cr3t-pw" not in lookup.url
    finally:
        lookup.close()


def test_a_database_that_never_answers_is_given_up_on_and_stuck_queries_do_not_pile_up(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A function the query calls blocks until released: no server-side timeout can fire (SQLite's progress handler
    # does not run inside it), as with a database that stopped answering. The caller stops waiting at the deadline.
    release = threading.Event()
    held = "SELECT phone_e164 AS phone, user_id FROM customers WHERE hold() AND phone_e164 IN :phones"
    lookup = UserIdLookup(url, spec(held, timeout=0.05, on_error="retry"))
    sa.event.listen(
        lookup._database.engine,
        "connect",
        lambda dbapi, record: dbapi.create_function("hold", 0, lambda: release.wait(30)),
    )
    try:
        failures: list[object] = []

        def stuck(number: int) -> None:
            failures.extend(lookup.enrich(calls_for([phone(number)])))

        threads = [threading.Thread(target=stuck, args=(n,)) for n in (1, 2, 4, 9)]  # as many as the workers
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(failures) == 4
        for failure in failures:
            assert isinstance(failure, LookupFailure)
            assert failure.reason == "identity lookup failed: the database did not answer within 0.05 s"
        # Every worker is stuck now: the next lookup fails at once instead of queueing behind them.
        (failure,) = lookup.enrich(calls_for([phone(1)]))
        assert isinstance(failure, LookupFailure)
        assert "earlier queries are still waiting for the database" in failure.reason
        assert (lookup.counters.failed, lookup.counters.queries) == (5, 5)
        release.set()
        # Once the database answers again, so does the lookup: the stuck queries end by themselves.
        pause = threading.Event()
        for _ in range(1000):
            (out,) = lookup.enrich(calls_for([phone(2)]))
            if not isinstance(out, LookupFailure):
                break
            pause.wait(0.01)
        assert out.message.get("userId") == "user-2"  # type: ignore[union-attr]
    finally:
        release.set()
        lookup.close()


def test_counters_describe_themselves_in_one_line(lookup: UserIdLookup) -> None:
    lookup.enrich(calls_for([phone(1), phone(9), phone(3)]))
    assert lookup.counters.describe() == (
        "identity lookup: 1 found, 1 not found, 1 with two user ids, 0 failed (1 query)"
    )


def test_a_user_id_is_written_into_the_body_exactly_and_one_too_long_for_segment_is_left_out(tmp_path: Path) -> None:
    rows = [(phone(1), 'cüs "1"\\\n'), (phone(2), "x" * 40_000)]
    lookup = UserIdLookup(sqlite_customers(tmp_path / "odd.db", rows), spec())
    try:
        calls = calls_for([phone(1), phone(2)])
        odd, long = lookup.enrich(calls)
        assert odd.message["userId"] == 'cüs "1"\\\n'  # type: ignore[union-attr]
        assert orjson.loads(odd.body) == odd.message  # type: ignore[union-attr]
        assert long is calls[1]  # Segment would drop the message: sent without it, counted as failed
        assert (lookup.counters.hits, lookup.counters.failed) == (1, 1)
    finally:
        lookup.close()
