"""Delivery benchmark: segment-analytics-python's default ``Client`` versus segment-bridge's replay engine.

Both send the same generated call events (``segment_bridge.samples`` translated with the default mapping) to the
stand-in Segment server (``tests/standin.py``), which runs in its own process so its work does not share a GIL
with the sender. Each sender runs in its own child process, so peak RSS and CPU time are its own.

Reported per run: events/s (events accepted by the stand-in / wall time until the sender is done), CPU µs per
event (user + system of the sender), peak RSS and events lost (sent minus distinct messageIds accepted).

    /work/venv/bin/python benchmarks/delivery.py                  # defaults: 20,000 events; RSS at 100k and 1M
    /work/venv/bin/python benchmarks/delivery.py --events 5000 --rss-events 20000,100000

Runs: (a) ``Client(write_key, host=...)`` with default settings, ``track`` x N then ``flush``; (b) ``replay``
with its defaults (4 batches of 500 in flight); both without and with 50 ms added to every stand-in answer.
In these runs the input is built before the clock starts and stays in memory, so their peak RSS includes it
(replay's input keeps each original CloudEvent for dead-letter records, hence the larger figure). Then replay
alone streaming 100,000 and 1,000,000 events generated lazily (translation included): the memory comparison.
The default run takes about 3.5 minutes on 2 CPUs, most of it generating and translating the 1,000,000 events.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "benchmark-write-key"

sys.path.insert(0, str(ROOT / "tests"))
from _measure import peak_rss_kb  # noqa: E402 - benchmarks/ is the script's own folder
from standin import StandInProcess  # noqa: E402 - tests/ holds the stand-in shared by tests and benchmarks

# -- child side: one sender per process ------------------------------------------------------------------------


def _translations(count: int) -> Iterator[Any]:
    from segment_bridge.mapping import load_mapping
    from segment_bridge.samples import iter_call_events
    from segment_bridge.translate import translate_event

    mapping = load_mapping()
    for event in iter_call_events(count):
        yield translate_event(event, mapping)


def _usage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, peak_rss_kb()


def child_client(count: int, url: str) -> dict[str, Any]:
    from segment.analytics import Client

    # The same messages, as Client.track arguments, built before the clock starts.
    calls = []
    for translation in _translations(count):
        message = translation.track.message
        calls.append(
            {
                "anonymous_id": message["anonymousId"],
                "event": message["event"],
                "properties": message["properties"],
                "context": dict(message["context"]),
                "timestamp": datetime.fromisoformat(message["timestamp"]),
                "message_id": message["messageId"],
            }
        )
    client = Client(WRITE_KEY, host=url)  # default settings otherwise
    cpu0, _ = _usage()
    start = time.perf_counter()
    for kwargs in calls:
        client.track(**kwargs)
    client.flush()
    seconds = time.perf_counter() - start
    cpu1, rss = _usage()
    client.shutdown()
    return {"sent": count, "seconds": seconds, "cpu": cpu1 - cpu0, "rss_kb": rss}


def child_replay(count: int, url: str, *, stream: bool) -> dict[str, Any]:
    from segment_bridge.delivery import SegmentTransport
    from segment_bridge.replay import replay

    items: Any
    if stream:
        # Lazily generated and translated: memory must not grow with the count.
        items = (((0, i + 1), t) for i, t in enumerate(_translations(count)))
    else:
        items = [((0, i + 1), t) for i, t in enumerate(_translations(count))]
    transport = SegmentTransport(WRITE_KEY, host=url)
    cpu0, _ = _usage()
    start = time.perf_counter()
    summary = replay(items, transport)
    seconds = time.perf_counter() - start
    cpu1, rss = _usage()
    return {"sent": count, "seconds": seconds, "cpu": cpu1 - cpu0, "rss_kb": rss, "delivered": summary.delivered}


# -- parent side -------------------------------------------------------------------------------------------------


def run(mode: str, count: int, latency: float) -> dict[str, Any]:
    server = StandInProcess(WRITE_KEY, latency=latency)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--events", str(count), "--url", server.url],
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
    result["unique"] = stats["unique"]
    result["lost"] = result["sent"] - stats["unique"]
    result["rate"] = stats["unique"] / result["seconds"]
    result["cpu_us"] = result["cpu"] / result["sent"] * 1e6
    result["mode"], result["latency_ms"] = mode, latency * 1000
    return result


def show(result: dict[str, Any]) -> None:
    print(
        f"{result['mode']:<14} {result['latency_ms']:>5.0f} ms {result['sent']:>10,} "
        f"{result['rate']:>10,.0f} {result['cpu_us']:>9.1f} {result['rss_kb'] / 1024:>9.1f} {result['lost']:>8,}",
        flush=True,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput run (default 20,000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency for the slow runs (default 50)")
    parser.add_argument(
        "--rss-events",
        default="100000,1000000",
        help="comma-separated event counts for the replay memory runs ('' to skip)",
    )
    parser.add_argument("--child", choices=["client", "replay", "replay-stream"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child == "client":
            result = child_client(args.events, args.url)
        else:
            result = child_replay(args.events, args.url, stream=args.child == "replay-stream")
        print(json.dumps(result))
        return 0

    print(f"{'sender':<14} {'latency':>8} {'events':>10} {'events/s':>10} {'CPU µs/ev':>9} {'peak MB':>9} {'lost':>8}")
    results: dict[tuple[str, float], dict[str, Any]] = {}
    for latency in (0.0, args.latency_ms / 1000):
        for mode in ("client", "replay"):
            results[mode, latency] = result = run(mode, args.events, latency)
            show(result)
    for latency in (0.0, args.latency_ms / 1000):
        ratio = results["replay", latency]["rate"] / results["client", latency]["rate"]
        print(f"replay / default Client throughput at {latency * 1000:.0f} ms: {ratio:.1f}x")

    counts = [int(c) for c in args.rss_events.split(",") if c.strip()]
    memory = []
    for count in counts:
        result = run("replay-stream", count, 0.0)
        show(result)
        memory.append(result)
    if len(memory) >= 2:
        growth = (memory[-1]["rss_kb"] - memory[0]["rss_kb"]) / 1024
        print(f"replay peak RSS growth from {counts[0]:,} to {counts[-1]:,} events: {growth:+.1f} MB")
    lost = sum(r["lost"] for (mode, _), r in results.items() if mode == "replay") + sum(r["lost"] for r in memory)
    print(f"events lost by replay: {lost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
