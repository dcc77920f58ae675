"""Throughput of the full translate path against a no-validation floor, measured in the same run.

    python benchmarks/translate.py [--events 100000] [--repeats 3]

Generates realistic call-progress events (four per call, filled parameters, ~1.5 KB each) as JSON Lines, then
times, over the same lines:

* floor:      orjson.loads -> a hand-written track dict -> orjson.dumps (no validation, no mapping file)
* validation: the validating decode alone (the default mapping's typed msgspec decoder), translate's first step
* translate:  segment_bridge.translate_record (decode and validate, classify, map, check Segment's rules, serialize)

and reports events/s and the ratio translate/floor (best of N repeats, alternating, to damp a noisy machine).
It also runs `segment-bridge translate` on the file as a subprocess at two input sizes and reports peak RSS, to
show memory does not grow with the input (streaming), and, where valgrind is installed, counts instructions per
event of each path with callgrind: a ratio that the machine's noise does not move.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from _measure import instructions_per_event  # benchmarks/ is the script's own folder, first on sys.path

from segment_bridge import load_mapping, translate_record
from segment_bridge.samples import iter_call_events


def write_events(path: Path, count: int) -> int:
    size = 0
    with path.open("wb") as out:
        for event in iter_call_events(count):
            line = orjson.dumps(event) + b"\n"
            size += len(line)
            out.write(line)
    return size


def floor(lines: list[bytes]) -> int:
    """The fastest honest thing: decode, pick fields by hand, encode. No validation, no checks."""
    produced = 0
    for line in lines:
        event = orjson.loads(line)
        data = event["data"]
        params = data["request"]["parameters"]
        message = {
            "type": "track",
            "event": "Call " + event["type"].rpartition(".")[2].title(),
            "anonymousId": params.get("From") or data["sid"],
            "properties": {
                "call_sid": params.get("CallSid"),
                "account_sid": params.get("AccountSid"),
                "call_status": params.get("CallStatus"),
                "direction": params.get("Direction"),
                "from": params.get("From"),
                "to": params.get("To"),
                "sequence_number": int(params.get("SequenceNumber", "0")),
            },
            "timestamp": event.get("time"),
            "messageId": hashlib.sha256((event["source"] + event["id"] + event["type"]).encode()).hexdigest(),
        }
        produced += len(orjson.dumps(message)) > 0
    return produced


def validation_only(lines: list[bytes]) -> int:
    """Just the validating decode the translate path starts with (the rest of the gap is mapping and checks)."""
    decoder = load_mapping().decoder
    assert decoder is not None
    produced = 0
    for line in lines:
        produced += decoder.decode(line).data.sid != ""
    return produced


def bridge(lines: list[bytes]) -> int:
    mapping = load_mapping()
    produced = 0
    for line in lines:
        for translation in translate_record(line, mapping):
            produced += translation.track is not None
    return produced


def timed(fn, lines: list[bytes]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    produced = fn(lines)
    return time.perf_counter() - start, produced


def peak_rss_mb(path: Path) -> float:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from _measure import peak_rss_kb; "
        "from segment_bridge.cli import main; rc = main(['translate', '--quiet', sys.argv[1]]); "
        "sys.stderr.write('RSS=%d\\n' % peak_rss_kb())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    line = next(ln for ln in result.stderr.decode().splitlines() if ln.startswith("RSS="))
    return int(line[4:]) / 1024


PATHS = {"floor": floor, "validation": validation_only, "translate": bridge}


def run_only(name: str, path: Path) -> None:
    lines = path.read_bytes().splitlines()
    load_mapping()  # every mode pays start-up alike; "none" measures just that
    if name != "none":
        PATHS[name](lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--instruction-events", type=int, default=4_000, help="events per callgrind run (0: skip)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        run_only(args.only, Path(args.input))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        size = write_events(path, args.events)
        lines = path.read_bytes().splitlines()
        print(f"{args.events} events, {size / args.events:.0f} bytes each on average")
        best = dict.fromkeys(PATHS, float("inf"))
        for _ in range(args.repeats):
            for name, fn in PATHS.items():
                seconds, produced = timed(fn, lines)
                assert produced == args.events, (name, produced)
                best[name] = min(best[name], seconds)
        for name, seconds in best.items():
            print(f"{name:>10}: {args.events / seconds:>10,.0f} events/s  ({seconds * 1e6 / args.events:.1f} µs/event)")
        print(f"     ratio: {best['floor'] / best['translate']:.2f}x the floor's throughput (target >= 0.8x)")

        small = Path(tmp) / "small.jsonl"
        write_events(small, max(args.events // 10, 1))
        rss_small, rss_large = peak_rss_mb(small), peak_rss_mb(path)
        print(
            f"peak RSS of `segment-bridge translate`: {rss_small:.1f} MB for {max(args.events // 10, 1)} events, "
            f"{rss_large:.1f} MB for {args.events} events (+{rss_large - rss_small:.1f} MB)"
        )
        del lines

        if args.instruction_events:
            sample = Path(tmp) / "sample.jsonl"
            write_events(sample, args.instruction_events)
            per_event = instructions_per_event(__file__, PATHS, sample, args.instruction_events)
            if per_event is None:
                print("instructions: valgrind not available, skipped")
            else:
                for name, value in per_event.items():
                    print(f"{name:>10}: {value / 1000:>8.1f} K instructions/event (callgrind)")
                print(f"     ratio: {per_event['floor'] / per_event['translate']:.2f}x by instructions")


if __name__ == "__main__":
    main()
