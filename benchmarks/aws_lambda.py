"""Benchmark of the Lambda handler (``segment_bridge.aws_lambda``): CPU per invocation, cost against replay, import
time and memory.

The stand-in Segment (``tests/standin.py``) runs in its own process on 127.0.0.1; every measured sender runs in a
child process of its own, so CPU time (user + system) and peak RSS are its alone. Events are the realistic call
events of ``segment_bridge.samples`` (~1.5 KB each), put into Lambda Kinesis events exactly as the event source
mapping delivers them (base64 ``data``), built before the clock starts.

Reported:

* CPU ms per invocation of 100 records (warm; median and p95 over ``--invocations``), and the cold start (module
  import plus the first invocation, which validates the environment and loads the mapping);
* CPU µs per event, handler versus ``replay`` over the same events (``translate_record`` on the same bytes, then
  ``replay`` with its defaults);
* ``python -X importtime -c "import segment_bridge.aws_lambda"``: cumulative µs of the module and of every top-level
  import (median of 5 runs);
* peak RSS of a process running many invocations, for batches of 100 and of 3,000 records (about Lambda's 6 MB
  event limit), and the MemorySize that leaves room for it.

    /work/venv/bin/python benchmarks/aws_lambda.py
    /work/venv/bin/python benchmarks/aws_lambda.py --invocations 200 --latency 0.05 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "benchmark-write-key"

sys.path.insert(0, str(ROOT / "tests"))
from _measure import peak_rss_kb  # noqa: E402 - benchmarks/ is the script's own folder
from standin import StandInProcess  # noqa: E402 - tests/ holds the stand-in shared by tests and benchmarks

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


# -- child side ---------------------------------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return peak_rss_kb() / 1024


class _Context:
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _events(invocations: int, records: int) -> Iterator[dict[str, Any]]:
    """Lambda events one at a time, so the process holds one batch as Lambda does (no pile of prebuilt events)."""
    import orjson

    from segment_bridge.samples import iter_call_events

    source = iter_call_events(invocations * records)
    sequence = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898
    for _ in range(invocations):
        batch = []
        for _ in range(records):
            sequence += 1
            batch.append(
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": "pk",
                        "sequenceNumber": str(sequence),
                        "data": base64.b64encode(orjson.dumps(next(source))).decode(),
                        "approximateArrivalTimestamp": 1_767_225_600.0,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"shardId-000000000000:{sequence}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/twilio-events",
                }
            )
        yield {"Records": batch}


def child_lambda(invocations: int, records: int, url: str) -> dict[str, Any]:
    os.environ.update(SEGMENT_WRITE_KEY=WRITE_KEY, SEGMENT_HOST=url)
    cpu0, wall0 = _cpu(), time.perf_counter()
    from segment_bridge import aws_lambda

    import_cpu, import_wall = _cpu() - cpu0, time.perf_counter() - wall0
    rss_imported = _rss_mb()
    # Each event is built before its invocation's clock starts, and dropped after it.
    events = _events(invocations + 1, records)
    context = _Context()
    event = next(events)
    cpu0, wall0 = _cpu(), time.perf_counter()
    answer = aws_lambda.handler(event, context)
    first_cpu, first_wall = _cpu() - cpu0, time.perf_counter() - wall0
    assert answer == {"batchItemFailures": []}, answer
    cpus, walls = [], []
    rss_early = 0.0
    for event in events:
        cpu0, wall0 = _cpu(), time.perf_counter()
        answer = aws_lambda.handler(event, context)
        cpus.append(_cpu() - cpu0)
        walls.append(time.perf_counter() - wall0)
        assert answer == {"batchItemFailures": []}, answer
        if len(cpus) == min(10, invocations):
            rss_early = _rss_mb()
    return {
        "records": records,
        "invocations": invocations,
        "import_cpu_ms": import_cpu * 1000,
        "import_wall_ms": import_wall * 1000,
        "cold_cpu_ms": (import_cpu + first_cpu) * 1000,
        "cold_wall_ms": (import_wall + first_wall) * 1000,
        "cpu_ms_median": statistics.median(cpus) * 1000,
        "cpu_ms_p95": statistics.quantiles(cpus, n=20)[-1] * 1000 if len(cpus) > 1 else cpus[0] * 1000,
        "wall_ms_median": statistics.median(walls) * 1000,
        "cpu_us_per_event": sum(cpus) / (len(cpus) * records) * 1e6,
        "rss_imported_mb": rss_imported,
        "rss_after_10_mb": rss_early,
        "rss_peak_mb": _rss_mb(),
    }


def child_replay(events_count: int, url: str) -> dict[str, Any]:
    import orjson

    from segment_bridge.delivery import SegmentTransport
    from segment_bridge.mapping import load_mapping
    from segment_bridge.replay import replay
    from segment_bridge.samples import iter_call_events
    from segment_bridge.translate import translate_record

    mapping = load_mapping()
    raw = [orjson.dumps(event) for event in iter_call_events(events_count)]
    transport = SegmentTransport(WRITE_KEY, host=url)
    cpu0, wall0 = _cpu(), time.perf_counter()
    # Same work as the handler minus base64 and logging: bytes -> translation -> batches -> Segment.
    items = (((0, i + 1), t) for i, line in enumerate(raw) for t in translate_record(line, mapping))
    summary = replay(items, transport)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    assert summary.delivered == events_count, summary
    return {"events": events_count, "cpu_us_per_event": cpu / events_count * 1e6, "wall_s": wall}


# -- parent side --------------------------------------------------------------------------------------------------


def run_child(*args: str) -> dict[str, Any]:
    """Run this file as a child measuring one thing; its standard output (the handler's log lines) is discarded."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        subprocess.run(
            [sys.executable, __file__, "--child", result.name, *args],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith(("SEGMENT_", "AWS_"))},
        )
        return dict(json.load(result))


# Packages worth naming in the import-time breakdown (cumulative µs wherever they were first imported).
_NOTABLE = (
    "segment_bridge.events",
    "segment_bridge.mapping",
    "segment_bridge.delivery",
    "pydantic",
    "segment.analytics",
    "jwt",
    "requests",
    "tenacity",
    "orjson",
)


def import_time(runs: int = 7) -> dict[str, Any]:
    """``python -X importtime``: the module's cumulative µs and the sum over all top-level imports.

    Median and minimum over ``runs`` fresh interpreters: on a busy machine the minimum is the better estimate.
    """
    module, total = [], []
    parts: dict[str, list[int]] = {name: [] for name in _NOTABLE}
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import segment_bridge.aws_lambda"],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        tops = []
        for line in done.stderr.splitlines():
            match = _IMPORT_LINE.match(line)
            if match is None:
                continue
            cumulative, name = int(match.group(2)), match.group(4)
            if not match.group(3):  # top level: not nested under another import
                tops.append((cumulative, name))
            if name in parts:
                parts[name].append(cumulative)
        module.append(next(us for us, name in tops if name == "segment_bridge.aws_lambda"))
        total.append(sum(us for us, _ in tops))
    return {
        "module_us_median": statistics.median(module),
        "module_us_min": min(module),
        "total_us_median": statistics.median(total),
        "total_us_min": min(total),
        "parts_us_min": {name: min(values) for name, values in parts.items() if values},
    }


def memory_size(rss_mb: float) -> int:
    """Smallest Lambda MemorySize step of 64 MB (from 128) that leaves half the peak RSS again as headroom."""
    need = rss_mb * 1.5
    size = 128
    while size < need:
        size += 64
    return size


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--invocations", type=int, default=100, help="warm invocations of 100 records")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the stand-in adds to every answer")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        out, kind, *rest = args.child
        if kind == "lambda":
            figures = child_lambda(int(rest[0]), int(rest[1]), rest[2])
        else:
            figures = child_replay(int(rest[0]), rest[1])
        Path(out).write_text(json.dumps(figures))
        return 0

    standin = StandInProcess(WRITE_KEY, latency=args.latency)
    try:
        small = run_child("lambda", str(args.invocations), "100", standin.url)
        large = run_child("lambda", "10", "3000", standin.url)
        replayed = run_child("replay", str(args.invocations * 100), standin.url)
    finally:
        standin.close()
    imports = import_time()
    results = {
        "python": sys.version.split()[0],
        "latency_s": args.latency,
        "lambda_100": small,
        "lambda_3000": large,
        "replay": replayed,
        "import": imports,
        "lambda_vs_replay_cpu": small["cpu_us_per_event"] / replayed["cpu_us_per_event"],
        "memory_size_mb": memory_size(max(small["rss_peak_mb"], large["rss_peak_mb"])),
    }
    print(f"python {results['python']}, stand-in latency {args.latency * 1000:.0f} ms")
    print(
        f"100-record invocation, warm ({small['invocations']} runs): CPU {small['cpu_ms_median']:.1f} ms median, "
        f"{small['cpu_ms_p95']:.1f} ms p95; wall {small['wall_ms_median']:.1f} ms median"
    )
    print(
        f"cold start: import {small['import_cpu_ms']:.0f} ms CPU ({small['import_wall_ms']:.0f} ms wall), "
        f"import + first invocation {small['cold_cpu_ms']:.0f} ms CPU ({small['cold_wall_ms']:.0f} ms wall)"
    )
    print(
        f"CPU per event: handler {small['cpu_us_per_event']:.0f} µs, replay {replayed['cpu_us_per_event']:.0f} µs "
        f"-> handler/replay = {results['lambda_vs_replay_cpu']:.2f}"
    )
    print(
        f"import time (-X importtime, 7 runs): segment_bridge.aws_lambda {imports['module_us_min']:,} µs cumulative "
        f"(min; median {imports['module_us_median']:,.0f}), all top-level imports {imports['total_us_min']:,} µs "
        f"(min; median {imports['total_us_median']:,.0f})"
    )
    print("  of which: " + ", ".join(f"{name} {us:,} µs" for name, us in imports["parts_us_min"].items()))
    print(
        f"peak RSS: {small['rss_imported_mb']:.0f} MB after import; {small['rss_after_10_mb']:.0f} MB after 10 and "
        f"{small['rss_peak_mb']:.0f} MB after "
        f"{small['invocations']} x 100 records; {large['rss_peak_mb']:.0f} MB after 10 x 3,000 records "
        f"(CPU {large['cpu_ms_median']:.0f} ms per 3,000-record invocation)"
    )
    print(f"smallest MemorySize that fits with 50 % headroom: {results['memory_size_mb']} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
