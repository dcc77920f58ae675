"""Reading archives: JSON Lines against concatenated values (Kinesis Firehose, jq), speed and memory.

    python benchmarks/sources.py [--events 30000] [--repeats 3] [--sizes 10,50]

Writes the same generated call events (~1.5 KB each) as JSON Lines, as a Kinesis Data Firehose archive (values
concatenated with no separator: one line), gzip'd Firehose, and `jq .` output, then:

* reading: the time `segment_bridge.sources.iter_records` takes to yield every record (best of N, alternating),
  as records/s and MB/s, each form's ratio against JSON Lines in the same run;
* memory: peak RSS of `segment-bridge translate --quiet` (a subprocess, interpreter start-up included) on
  Firehose archives of each size in MB, and on the JSON Lines file of the largest size, with events/s (the
  highest RSS and the best time of N runs). Flat memory means the same peak whatever the size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from segment_bridge.samples import iter_call_events
from segment_bridge.sources import iter_records

HERE = Path(__file__).parent


def write(path: Path, count: int, form: str) -> None:
    events = iter_call_events(count)
    if form == "jsonl":
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    elif form == "firehose":
        path.write_bytes(b"".join(orjson.dumps(e) for e in events))
    elif form == "firehose.gz":
        path.write_bytes(gzip.compress(b"".join(orjson.dumps(e) for e in events), compresslevel=1))
    elif form == "jq":
        path.write_bytes(b"".join(json.dumps(e, indent=2).encode() + b"\n" for e in events))


def read_all(path: Path) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in iter_records([str(path)]))
    elapsed = time.perf_counter() - start
    assert n > 0
    return elapsed


def translate_run(path: Path) -> tuple[float, float]:
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); from _measure import peak_rss_kb; "
        "from segment_bridge.cli import main; rc = main(['translate', '--quiet', sys.argv[1]]); "
        "sys.stderr.write('RSS=%d\\n' % peak_rss_kb())"
    )
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    err = result.stderr.decode()
    if "refused 0" not in err:
        raise SystemExit(f"translate did not translate everything: {err[-300:]}")
    line = next(ln for ln in err.splitlines() if ln.startswith("RSS="))
    return int(line[4:]) / 1024, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="10,50", help="Firehose archive sizes in MB for the memory runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        forms = ["jsonl", "firehose", "firehose.gz", "jq"]
        paths = {form: root / f"events.{form}" for form in forms}
        for form, path in paths.items():
            write(path, args.events, form)
        best = dict.fromkeys(forms, float("inf"))
        for _ in range(args.repeats):
            for form, path in paths.items():
                best[form] = min(best[form], read_all(path))
        raw_mb = paths["jsonl"].stat().st_size / 1e6
        print(f"reading {args.events:,} events ({raw_mb:.1f} MB as JSON Lines), best of {args.repeats}:")
        print(f"{'form':<12} {'records/s':>12} {'MB/s':>8} {'vs jsonl':>9}")
        for form in forms:
            rate = args.events / best[form]
            print(f"{form:<12} {rate:>12,.0f} {raw_mb / best[form]:>8.0f} {best['jsonl'] / best[form]:>8.2f}x")

        print(f"\nsegment-bridge translate --quiet (subprocess, best of {args.repeats}): peak RSS")
        per_mb = args.events / raw_mb
        sizes = [int(s) for s in args.sizes.split(",")]
        runs = [(f"firehose {size} MB", "firehose", size) for size in sizes]
        runs.append((f"jsonl {sizes[-1]} MB", "jsonl", sizes[-1]))
        for label, form, size in runs:
            path = root / f"mem-{size}.{form}"
            count = int(size * per_mb)
            write(path, count, form)
            rss, elapsed = 0.0, float("inf")
            for _ in range(args.repeats):
                peak, seconds = translate_run(path)
                rss, elapsed = max(rss, peak), min(elapsed, seconds)
            mb = path.stat().st_size / 1e6
            rate = count / elapsed
            print(f"{label:<18} {mb:>6.1f} MB {count:>8,} events  peak RSS {rss:6.1f} MB  {rate:>8,.0f} events/s")
            path.unlink()


if __name__ == "__main__":
    main()
