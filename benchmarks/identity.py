"""Identity benchmark: ``replay`` with the userId lookup on (SQLite, PostgreSQL) against off, in one run.

The same generated call events (``segment_bridge.samples``, default mapping) go to the stand-in Segment server
(``tests/standin.py``, its own process) answering after 50 ms, as in ``benchmarks/delivery.py``; each sender runs in
its own child process. The customer table holds two of every three callers (the rest are misses), indexed on the
phone column; the lookup runs as the delivery engine's batch stage, one query per batch for the phones it has not
cached.

    python benchmarks/identity.py                          # SQLite only, unless PostgreSQL is at hand:
    bash .ci/postgres python benchmarks/identity.py        # SQLite and PostgreSQL (a throwaway cluster)

Reported per run: events/s (accepted by the stand-in / wall time), the ratio to the run without the lookup, queries
per event, and how many calls got a userId. Runs alternate between the modes, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "benchmark-write-key"
QUERY = "SELECT phone_e164 AS phone, user_id FROM bench_customers WHERE phone_e164 IN :phones"

sys.path.insert(0, str(ROOT / "tests"))
from standin import StandInProcess  # noqa: E402 - tests/ holds the stand-in shared by tests and benchmarks


def _translations(count: int) -> Iterator[Any]:
    from segment_bridge.mapping import load_mapping
    from segment_bridge.samples import iter_call_events
    from segment_bridge.translate import translate_event

    mapping = load_mapping()
    for event in iter_call_events(count):
        yield translate_event(event, mapping)


def _customers(count: int) -> list[tuple[str, str]]:
    """Two of every three customer phone numbers of the generated events, with a user id each."""
    from segment_bridge.external_ids import phone_external_id

    phones = dict.fromkeys(
        phone for t in _translations(count) if t.track is not None and (phone := phone_external_id(t.track.message))
    )
    return [(phone, f"user-{index}") for index, phone in enumerate(phones) if index % 3 != 2]


def build_sqlite(path: Path, rows: list[tuple[str, str]]) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE bench_customers (phone_e164 TEXT NOT NULL, user_id TEXT NOT NULL)")
        connection.execute("CREATE INDEX bench_customers_phone ON bench_customers (phone_e164)")
        connection.executemany("INSERT INTO bench_customers VALUES (?, ?)", rows)
    connection.close()
    return f"sqlite:///{path}"


def build_postgres(url: str, rows: list[tuple[str, str]]) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS bench_customers"))
        connection.execute(sa.text("CREATE TABLE bench_customers (phone_e164 text NOT NULL, user_id text NOT NULL)"))
        connection.execute(sa.text("CREATE INDEX ON bench_customers (phone_e164)"))
        connection.execute(sa.text("INSERT INTO bench_customers VALUES (:p, :u)"), [{"p": p, "u": u} for p, u in rows])
    engine.dispose()
    return url


# -- child side ----------------------------------------------------------------------------------------------------


def child(count: int, url: str, database: str) -> dict[str, Any]:
    from segment_bridge.delivery import SegmentTransport
    from segment_bridge.identity import UserIdLookup
    from segment_bridge.mapping import LookupSpec

    items = [((0, i + 1), t) for i, t in enumerate(_translations(count))]
    transport = SegmentTransport(WRITE_KEY, host=url)
    lookup = UserIdLookup(database, LookupSpec(query=QUERY)) if database else None
    if lookup is not None:
        lookup.check()
    start = time.perf_counter()
    delivered = _replay(items, transport, lookup)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"sent": count, "seconds": seconds, "delivered": delivered}
    if lookup is not None:
        counters = lookup.counters
        result.update(queries=counters.queries, hits=counters.hits, lookups=counters.lookups, failed=counters.failed)
        lookup.close()
    return result


def _replay(items: list[Any], transport: Any, lookup: Any) -> int:
    from segment_bridge.identity import identity_stage
    from segment_bridge.replay import replay

    summary = replay(items, transport, stage=identity_stage(lookup))
    return int(summary.delivered)


def enrich_only(count: int, database: str) -> dict[str, Any]:
    """The lookup alone, in the calling thread: ``enrich`` over batches of 500 calls, cold cache then warm."""
    from segment_bridge.identity import UserIdLookup
    from segment_bridge.mapping import LookupSpec

    calls = [t.track for t in _translations(count) if t.track is not None]
    lookup = UserIdLookup(database, LookupSpec(query=QUERY))
    lookup.check()
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        for begin in range(0, len(calls), 500):
            lookup.enrich(calls[begin : begin + 500])
        timings.append((time.perf_counter() - start) / len(calls) * 1e6)
    queries = lookup.counters.queries
    lookup.close()
    return {"cold_us": timings[0], "warm_us": timings[1], "queries": queries}


# -- parent side ---------------------------------------------------------------------------------------------------


def run(count: int, latency: float, mode: str, database: str) -> dict[str, Any]:
    server = StandInProcess(WRITE_KEY, latency=latency)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--events", str(count), "--url", server.url, "--database", database],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        stats = server.stats()
    finally:
        server.close()
    result["mode"] = mode
    result["rate"] = stats["unique"] / result["seconds"]
    result["lost"] = count - stats["unique"]
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20,000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="stand-in answer latency (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode, best kept (default 3)")
    parser.add_argument("--enrich-only", action="store_true", help="measure the lookup alone, without replay")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--database", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.events, args.url, args.database)))
        return 0

    rows = _customers(args.events)
    best: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        modes = {"off": "", "sqlite": build_sqlite(Path(scratch) / "customers.db", rows)}
        postgres = os.environ.get("SEGMENT_BRIDGE_TEST_POSTGRES_URL", "")
        if postgres:
            modes["postgresql"] = build_postgres(postgres, rows)
        else:
            print("PostgreSQL: not measured (run under bash .ci/postgres to include it)")
        print(f"{len(rows):,} customers; {args.events:,} events")
        for mode, database in modes.items():
            if database:
                figures = enrich_only(args.events, database)
                print(
                    f"enrich alone, {mode}: {figures['cold_us']:.1f} µs/event with a cold cache "
                    f"({figures['queries']} queries), {figures['warm_us']:.1f} µs/event warm"
                )
        if args.enrich_only:
            return 0
        for _ in range(args.repeat):
            for mode, database in modes.items():
                result = run(args.events, args.latency_ms / 1000, mode, database)
                if mode not in best or result["rate"] > best[mode]["rate"]:
                    best[mode] = result
    print(f"replay, stand-in latency {args.latency_ms:.0f} ms, best of {args.repeat}:")
    header = ("lookup", "events/s", "vs off", "queries", "queries/event", "userId", "lost")
    print("{:<11} {:>9} {:>7} {:>8} {:>14} {:>7} {:>5}".format(*header))
    for mode, result in best.items():
        queries = result.get("queries", 0)
        print(
            f"{mode:<11} {result['rate']:>9,.0f} {result['rate'] / best['off']['rate']:>7.2f} {queries:>8,} "
            f"{queries / args.events:>14.4f} {result.get('hits', 0):>7,} {result['lost']:>5}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
