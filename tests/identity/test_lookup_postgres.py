"""UserIdLookup against a real PostgreSQL server (bash .ci/postgres starts one; CI always does).

The server is stopped and started by these tests (SEGMENT_BRIDGE_TEST_POSTGRES_CTL), so they run one at a time,
and each puts it back.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Iterator

import pytest
from identityhelp import HOW_TO_RUN_POSTGRES, POSTGRES_CTL, POSTGRES_URL, calls_for, phone, postgres_ctl, spec

pytestmark = pytest.mark.skipif(not (POSTGRES_URL and POSTGRES_CTL), reason=HOW_TO_RUN_POSTGRES)

if POSTGRES_URL:
    import sqlalchemy as sa

    from segment_bridge import ConfigurationError
    from segment_bridge.identity import LookupFailure, UserIdLookup

    PASSWORD = str(sa.make_url(POSTGRES_URL).password)

MANY = 10_000


@pytest.fixture(scope="module")
def customers() -> None:
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS customers"))
        connection.execute(sa.text("CREATE TABLE customers (phone_e164 text NOT NULL, user_id text NOT NULL)"))
        connection.execute(
            sa.text("INSERT INTO customers VALUES (:p, :u)"),
            [
                {"p": phone(1), "u": "user-1"},
                {"p": phone(2), "u": "user-2"},
                {"p": phone(3), "u": "user-3a"},
                {"p": phone(3), "u": "user-3b"},
            ],
        )
        connection.execute(
            sa.text(
                "INSERT INTO customers SELECT '+1415' || lpad((100000 + i)::text, 7, '0'), 'many-' || i "
                "FROM generate_series(0, :n - 1) AS i"
            ),
            {"n": MANY},
        )
    engine.dispose()


@pytest.fixture
def lookup(customers: None) -> Iterator[UserIdLookup]:
    lookup = UserIdLookup(POSTGRES_URL, spec())
    yield lookup
    lookup.close()


@pytest.fixture
def server_back() -> Iterator[None]:
    """Whatever a test does to the server, it is running again afterwards."""
    yield
    with contextlib.suppress(subprocess.CalledProcessError):  # already running: pg_ctl start refuses
        postgres_ctl("start")


def _user_ids(out: list[object]) -> list[object]:
    return [getattr(item, "message", {}).get("userId") for item in out]


def test_found_absent_and_two_user_ids_in_one_query(lookup: UserIdLookup) -> None:
    lookup.check()
    out = lookup.enrich(calls_for([phone(1), phone(9), phone(3), phone(2)]))
    assert _user_ids(out) == ["user-1", None, None, "user-2"]
    counters = lookup.counters
    assert (counters.hits, counters.misses, counters.conflicts, counters.failed, counters.queries) == (2, 1, 1, 0, 1)


def test_a_query_past_its_timeout_is_cancelled_by_the_server(customers: None) -> None:
    slow = "SELECT phone_e164 AS phone, user_id FROM customers, pg_sleep(30) WHERE phone_e164 IN :phones"
    lookup = UserIdLookup(POSTGRES_URL, spec(slow, timeout=0.3))
    try:
        calls = calls_for([phone(1), phone(2)])
        assert lookup.enrich(calls) == calls
        assert (lookup.counters.failed, lookup.counters.queries) == (2, 1)
        # statement_timeout, not the caller giving up: the server is no longer running the query.
        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as connection:
            running = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND state = 'active'"
                    " AND pid <> pg_backend_pid()"
                )
            ).scalar()
        engine.dispose()
        assert running == 0
        # The pooled connection is fine afterwards: the next batch is answered (timed out again, not broken).
        retry = UserIdLookup(POSTGRES_URL, spec(slow, timeout=0.3, on_error="retry"))
        try:
            (failure,) = retry.enrich(calls_for([phone(1)]))
            assert isinstance(failure, LookupFailure)
            assert failure.reason == "identity lookup failed: the database did not answer within 0.3 s"
        finally:
            retry.close()
    finally:
        lookup.close()


def test_server_stopped_mid_run_then_back_the_pool_recovers(
    lookup: UserIdLookup, server_back: None, caplog: pytest.LogCaptureFixture
) -> None:
    assert _user_ids(lookup.enrich(calls_for([phone(1)]))) == ["user-1"]  # a pooled connection exists now
    postgres_ctl("stop")
    calls = calls_for([phone(2), phone(9)])
    with caplog.at_level(logging.DEBUG):
        out = lookup.enrich(calls)
    assert out == calls  # sent unchanged, never an exception
    assert lookup.counters.failed == 2
    (line,) = [r.getMessage() for r in caplog.records if r.name == "segment_bridge.identity"]
    assert '"event":"identity_lookup_failed"' in line
    assert "identity lookup failed: the query failed: " in line
    # Cached answers still come while the server is down.
    assert _user_ids(lookup.enrich(calls_for([phone(1)]))) == ["user-1"]
    postgres_ctl("start")
    assert _user_ids(lookup.enrich(calls_for([phone(2), phone(9)]))) == ["user-2", None]
    assert lookup.counters.failed == 2
    assert PASSWORD not in caplog.text


def test_a_restart_between_batches_costs_no_failed_lookup(lookup: UserIdLookup, server_back: None) -> None:
    assert _user_ids(lookup.enrich(calls_for([phone(1)]))) == ["user-1"]
    postgres_ctl("stop")
    postgres_ctl("start")
    assert _user_ids(lookup.enrich(calls_for([phone(2)]))) == ["user-2"]
    assert lookup.counters.failed == 0


def test_with_retry_a_stopped_server_gives_failures_to_settle(customers: None, server_back: None) -> None:
    lookup = UserIdLookup(POSTGRES_URL, spec(on_error="retry"))
    try:
        postgres_ctl("stop")
        calls = calls_for([phone(1), "client:alice"])
        failure, untouched = lookup.enrich(calls)
        assert isinstance(failure, LookupFailure)
        assert failure.call is calls[0]
        assert PASSWORD not in failure.reason
        assert untouched is calls[1]
    finally:
        lookup.close()


def test_ten_thousand_distinct_phones_keep_the_cache_bounded(customers: None) -> None:
    lookup = UserIdLookup(POSTGRES_URL, spec(cache_size=1000))
    try:
        numbers = [phone(100000 + i) for i in range(MANY)]
        calls = calls_for(numbers)
        for start in range(0, MANY, 500):
            out = lookup.enrich(calls[start : start + 500])
            assert _user_ids(out) == [f"many-{i}" for i in range(start, start + 500)]
            assert lookup.cache_size <= 1000
        assert (lookup.counters.hits, lookup.counters.queries) == (MANY, MANY // 500)
        # The first numbers were evicted: asking again is a query; the last ones are still there.
        lookup.enrich(calls[-500:])
        assert lookup.counters.queries == MANY // 500
        lookup.enrich(calls[:500])
        assert lookup.counters.queries == MANY // 500 + 1
    finally:
        lookup.close()


def test_the_password_is_never_in_errors_reprs_or_logs(customers: None, caplog: pytest.LogCaptureFixture) -> None:
    wrong = sa.make_url(POSTGRES_URL).set(password=PASSWORD + "-wrong")
    with caplog.at_level(logging.DEBUG):
        bad = UserIdLookup(wrong, spec())
        try:
            assert PASSWORD not in repr(bad)
            with pytest.raises(ConfigurationError) as caught:
                bad.check()
            assert "password authentication failed" in str(caught.value)
            assert PASSWORD not in str(caught.value)
            assert "\n" not in str(caught.value)
            bad.enrich(calls_for([phone(1)]))
        finally:
            bad.close()
        wrong_columns = UserIdLookup(POSTGRES_URL, spec("SELECT user_id FROM customers WHERE phone_e164 IN :phones"))
        try:
            with pytest.raises(ConfigurationError) as caught:
                wrong_columns.check()
            assert "returns the columns user_id" in str(caught.value)
            assert PASSWORD not in str(caught.value) + repr(wrong_columns)
        finally:
            wrong_columns.close()
    assert caplog.records
    assert PASSWORD not in caplog.text


def test_the_session_is_read_only(customers: None) -> None:
    writer = UserIdLookup(
        POSTGRES_URL,
        spec("DELETE FROM customers WHERE phone_e164 IN :phones RETURNING phone_e164 AS phone, user_id"),
    )
    try:
        with pytest.raises(ConfigurationError, match="read-only transaction"):
            writer.check()
        assert writer.enrich(calls_for([phone(1)]))[0].message.get("userId") is None  # type: ignore[union-attr]
    finally:
        writer.close()
    check = UserIdLookup(POSTGRES_URL, spec())
    try:
        assert _user_ids(check.enrich(calls_for([phone(1)]))) == ["user-1"]
    finally:
        check.close()
