"""Pacing benchmark: deliveries against a Segment stand-in limited to a workspace rate, in one run.

The stand-in (``tests/ratelimit_standin.py``, its own process) takes ``--workspace-rate`` events/s (token bucket of
one second's worth) and answers 429 with ``Retry-After`` and ``X-RateLimit-Reset`` above it. Each sender runs in a
child process over the same generated call events (``segment_bridge.samples`` through the default mapping), 4
batches of 500 in flight:

* ``paced N``: this version's ``replay`` (the delivery engine) with ``--max-rate N`` (its shared pause after a 429
  included);
* ``baseline``: the code installed at ``--baseline`` (today's per-batch retries, no pacing), run by its own
  interpreter, for the same input against the same stand-in.

Reported per run: events/s accepted (events accepted / wall time until the sender is done), the deviation from the
asked rate, Segment requests, 429 answers and their share, seconds paused, wall time, events lost (sent minus
distinct messageIds accepted) and the most events the stand-in accepted in one whole second.

    .venv/bin/python benchmarks/pacing.py                        # 20,000 events: 500, 900, 0 and the baseline
    .venv/bin/python benchmarks/pacing.py --events 5000 --rates 500,0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "benchmark-write-key"
CONCURRENCY = 4
BATCH = 500

sys.path.insert(0, str(ROOT / "tests"))
from ratelimit_standin import RateLimitedStandInProcess  # noqa: E402 - tests/ holds the stand-in

# -- child side: one sender per process ------------------------------------------------------------------------


def _items(count: int) -> list[Any]:
    from segment_bridge.mapping import load_mapping
    from segment_bridge.samples import iter_call_events
    from segment_bridge.translate import translate_event

    mapping = load_mapping()
    return [((0, i + 1), translate_event(event, mapping)) for i, event in enumerate(iter_call_events(count))]


def child_baseline(count: int, url: str) -> dict[str, Any]:
    """Today's replay: every batch retries its own 429 after Retry-After."""
    from segment_bridge.delivery import SegmentTransport
    from segment_bridge.replay import replay

    items = _items(count)
    transport = SegmentTransport(WRITE_KEY, host=url)
    start = time.perf_counter()
    summary = replay(items, transport, concurrency=CONCURRENCY, max_messages=BATCH)
    seconds = time.perf_counter() - start
    return {"sent": count, "seconds": seconds, "delivered": summary.delivered, "paused": None}


def child_paced(count: int, url: str, rate: float) -> dict[str, Any]:
    """This version's replay (the delivery engine) with ``--max-rate rate`` (0: unlimited, the shared pause only)."""
    from segment_bridge.delivery import SegmentTransport
    from segment_bridge.delivery.pacing import RatePacer
    from segment_bridge.replay import replay

    items = _items(count)
    transport = SegmentTransport(WRITE_KEY, host=url)
    pacer = RatePacer(rate)
    start = time.perf_counter()
    summary = replay(items, transport, concurrency=CONCURRENCY, max_messages=BATCH, pacer=pacer)
    seconds = time.perf_counter() - start
    paused = pacer.metrics().paused_seconds
    return {"sent": count, "seconds": seconds, "delivered": summary.delivered, "paused": paused}


# -- parent side -------------------------------------------------------------------------------------------------


def run(mode: str, count: int, workspace_rate: float, rate: float, baseline: Path) -> dict[str, Any]:
    python, root = sys.executable, ROOT
    if mode == "baseline":
        python, root = str(baseline / ".venv" / "bin" / "python"), baseline
    with RateLimitedStandInProcess(WRITE_KEY, rate=workspace_rate) as server:
        out = subprocess.run(
            [python, __file__, "--child", mode, "--events", str(count), "--url", server.url, "--rate", str(rate)],
            check=True,
            capture_output=True,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        stats = server.stats()
    result["mode"] = mode if mode == "baseline" else f"max-rate {rate:g}"
    result["asked"] = rate if mode == "paced" and rate else None
    result["requests"] = stats["requests"]
    result["rate_limited"] = stats["rate_limited"]
    result["lost"] = result["sent"] - stats["unique"]
    result["rate"] = stats["unique"] / result["seconds"]
    # The busiest whole second at the stand-in, first and last (partial) seconds left out.
    seconds = sorted(stats["per_second"].items(), key=lambda item: int(item[0]))[1:-1]
    result["peak"] = max((events for _, events in seconds), default=0)
    return result


def show(result: dict[str, Any]) -> None:
    asked = result["asked"]
    off = f"{(result['rate'] / asked - 1) * 100:+.1f}%" if asked else "-"
    paused = "-" if result["paused"] is None else f"{result['paused']:.1f}"
    share = result["rate_limited"] / max(result["requests"], 1) * 100
    print(
        f"{result['mode']:<14} {result['rate']:>9,.0f} {off:>7} {result['requests']:>8} "
        f"{result['rate_limited']:>5} {share:>6.1f}% {paused:>8} {result['seconds']:>8.1f} {result['lost']:>6} "
        f"{result['peak']:>7,}",
        flush=True,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20,000)")
    parser.add_argument("--workspace-rate", type=float, default=1_000, help="stand-in's events/s (default 1,000)")
    parser.add_argument("--rates", default="500,900,0", help="comma-separated --max-rate values (default 500,900,0)")
    parser.add_argument("--baseline", type=Path, default=Path("/work/baseline"), help="today's code, with .venv")
    parser.add_argument("--child", choices=["paced", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child == "baseline":
            result = child_baseline(args.events, args.url)
        else:
            result = child_paced(args.events, args.url, args.rate)
        print(json.dumps(result))
        return 0

    print(f"stand-in: {args.workspace_rate:,.0f} events/s; {args.events:,} events, {CONCURRENCY} x {BATCH} in flight")
    print(f"{'sender':<14} {'events/s':>9} {'vs ask':>7} {'requests':>8} {'429s':>5} {'share':>7} "
          f"{'paused s':>8} {'wall s':>8} {'lost':>6} {'peak/s':>7}")  # fmt: skip
    for rate in (float(r) for r in args.rates.split(",") if r.strip()):
        show(run("paced", args.events, args.workspace_rate, rate, args.baseline))
    if (args.baseline / ".venv" / "bin" / "python").exists():
        show(run("baseline", args.events, args.workspace_rate, 0.0, args.baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
