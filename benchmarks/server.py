"""Benchmark of ``segment-bridge serve`` against a bare Starlette endpoint, in the same run.

Everything runs on 127.0.0.1 in separate processes:

* the stand-in Segment (``tests/standin.py``) answering every batch after ``--latency`` (default 50 ms);
* ``serve`` under uvicorn, verifying signatures and delivering to the stand-in (INFO logging, as in production);
* a bare Starlette endpoint under uvicorn with the same settings, answering 200 at once: the ceiling;
* this process: a load generator with one keep-alive HTTP/1.1 connection per concurrent client, sending requests
  signed beforehand (one distinct Voice event per request, as a sink without ``batch_events`` does).

For each concurrency (default 1, 10, 100) and target: requests/s, p50 and p99 latency, Segment requests per event,
and CPU per request (user + system time of the server process over the measured window). Usage::

    python benchmarks/server.py                      # ~2 minutes
    python benchmarks/server.py --duration 5 --concurrency 100
    python benchmarks/server.py --json results.json

To compare versions or batcher settings in one run, give ``--variant NAME=PATH[,key=value...]`` (repeatable): each
is ``serve`` importing ``segment_bridge`` from the directory ``PATH`` (for example an extracted
``git archive HEAD segment_bridge``), with ``ServerConfig`` fields overridden (``quiet=0.001,max_in_flight=8``).
``--rounds N`` measures every target N times, interleaved, and reports medians. Run it from a directory other than
the checkout (``cd /tmp``) so that ``python -m`` in the subprocesses imports what ``PYTHONPATH`` names and not the
current directory's package by accident::

    cd /tmp && python /work/main/benchmarks/server.py --concurrency 100 --duration 5 --rounds 3 \
        --variant before=/tmp/old --variant after=/tmp/new --variant after-q1=/tmp/new,quiet=0.001

What the dead-letter ``fsync`` costs (every request refused and recorded; ``fsync`` on, then off)::

    cd /tmp && python /work/main/benchmarks/server.py --concurrency 1 10 100 --refused 1 \
        --variant fsync=/work/main --variant nofsync=/work/main,dead_letter_fsync=0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segment_bridge.samples import call_events  # noqa: E402
from segment_bridge.signature import sign  # noqa: E402

TOKEN = "benchmark-auth-token-0123456789abcdef"  # noqa: S105 - a test value, not a secret
WRITE_KEY = "benchmark-write-key"
PUBLIC_URL = "https://bridge.example.com/events"
_RUNNING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------------------------
# The bare endpoint (run in a subprocess: ``python benchmarks/server.py --bare-app PORT``)
# ----------------------------------------------------------------------------------------------------------------


def run_bare_app() -> None:
    """A Starlette app that reads the body and answers 200, under uvicorn with the settings ``serve`` uses."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def events(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    app = Starlette(routes=[Route("/events", events, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=0, log_level="info", access_log=False)


#: Runs ``serve`` as ``serve_main`` does, with ``ServerConfig`` overrides (a variant); its argv: JSON overrides.
_VARIANT_LAUNCHER = """
import dataclasses, json, logging, math, os, sys
import uvicorn
try:  # the layout since the server became a package; a variant may be older code
    from segment_bridge.cli.serve import _config_from_args, add_serve_arguments
except ImportError:
    from segment_bridge.server import _config_from_args, add_serve_arguments
from segment_bridge.server import create_app
import argparse
parser = argparse.ArgumentParser()
add_serve_arguments(parser)
args = parser.parse_args(["--port", "0", "--public-url", os.environ["SEGMENT_BRIDGE_PUBLIC_URL"]])
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
logging.getLogger("segment_bridge").setLevel(logging.INFO)
settings, config = _config_from_args(args, os.environ)
config = dataclasses.replace(config, **json.loads(sys.argv[1]))
print("variant config:", {k: getattr(config, k) for k in json.loads(sys.argv[1])}, file=sys.stderr)
app = create_app(settings, config)
import segment_bridge.server as server
http = server.uvicorn_http_protocol(config) if hasattr(server, "uvicorn_http_protocol") else "auto"
uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="info", access_log=False, http=http,
    timeout_graceful_shutdown=max(10, math.ceil(config.delivery_budget) + 5), lifespan="on")).run()
"""


def parse_variant(text: str) -> tuple[str, str, dict[str, float | int]]:
    """``NAME=PATH[,key=value...]`` -> (name, path, overrides)."""
    name, _, rest = text.partition("=")
    path, *pairs = rest.split(",")
    overrides: dict[str, float | int] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        overrides[key] = int(value) if value.isdigit() else float(value)
    return name, path, overrides


# ----------------------------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    url: str
    log: IO[bytes]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of /proc/PID/stat (1-based); the split drops the first two.
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_uvicorn(args: Sequence[str], env: dict[str, str]) -> Process:
    """Start a uvicorn-based subprocess with stderr in a temporary file; wait for its port."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller's ExitStack
    popen = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=tempfile.gettempdir())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log.seek(0)
        match = _RUNNING.search(log.read())
        if match:
            return Process(popen, f"127.0.0.1:{match.group(1).decode()}", log)
        if popen.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    popen.kill()
    raise RuntimeError("server did not start:\n" + log.read().decode(errors="replace"))


@contextlib.contextmanager
def standin(latency: float) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The stand-in Segment in its own process; it serves until its stdin closes."""
    # TCP_NODELAY on the stand-in's sockets: it writes headers and body in two sends, and Nagle's algorithm
    # against the client's delayed ACK would add ~40 ms to every kept-alive answer, which real Segment does not.
    launcher = (
        "import sys, http.server; http.server.BaseHTTPRequestHandler.disable_nagle_algorithm = True; "
        f"sys.path.insert(0, {str(ROOT / 'tests')!r}); import standin; sys.exit(standin.main(sys.argv[1:]))"
    )
    popen = subprocess.Popen(
        [sys.executable, "-c", launcher, "--latency", str(latency), "--write-key", WRITE_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert popen.stdout is not None
    url = popen.stdout.readline().strip()
    try:
        yield url, popen
    finally:
        assert popen.stdin is not None
        popen.stdin.close()
        try:
            popen.wait(10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def standin_stats(url: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/__standin/stats", timeout=5) as response:  # noqa: S310 - 127.0.0.1
        return dict(json.loads(response.read()))


# ----------------------------------------------------------------------------------------------------------------
# Load
# ----------------------------------------------------------------------------------------------------------------


#: A deprecated type: refused, recorded in the dead-letter file, answered 200 (``--refused``).
REFUSED_TYPE = "com.twilio.voice.webhook.status-callback.call.answered"


def signed_requests(count: int, host: str, start: int = 0, refused: float = 0.0) -> tuple[list[bytes], int]:
    """``count`` complete HTTP/1.1 requests, each one distinct call event, signed as Twilio would.

    A share ``refused`` of them, evenly spread, carry an event of a deprecated type instead (dead-lettered).
    Returns the requests and the next unused call number.
    """
    requests: list[bytes] = []
    call = start
    while len(requests) < count:
        for event in call_events(call, seed=7):
            index = len(requests)
            if int((index + 1) * refused) > int(index * refused):
                event = {**event, "type": REFUSED_TYPE}
            body = orjson.dumps(event)
            url, signature = sign(PUBLIC_URL, body, TOKEN)
            query = url.partition("?")[2]
            head = (
                f"POST /events?{query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            requests.append(head.encode() + body)
        call += 1
    return requests[:count], call


async def _client(
    host: str, port: int, requests: list[bytes], cursor: list[int], stop_at: float, latencies: list[float]
) -> dict[int, int]:
    reader, writer = await asyncio.open_connection(host, port)
    statuses: dict[int, int] = {}
    try:
        while time.monotonic() < stop_at and cursor[0] < len(requests):
            request = requests[cursor[0]]
            cursor[0] += 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return statuses


@dataclass
class Result:
    target: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    segment_requests_per_event: float | None
    non_200: int


async def _load(
    address: str, requests: list[bytes], concurrency: int, duration: float
) -> tuple[list[float], dict[int, int]]:
    host, port = address.split(":")
    cursor = [0]
    latencies: list[float] = []
    stop_at = time.monotonic() + duration
    per_client = await asyncio.gather(
        *(_client(host, int(port), requests, cursor, stop_at, latencies) for _ in range(concurrency))
    )
    statuses: dict[int, int] = {}
    for part in per_client:
        for status, count in part.items():
            statuses[status] = statuses.get(status, 0) + count
    return latencies, statuses


def measure(
    target: str, server: Process, requests: list[bytes], concurrency: int, duration: float, segment: str | None
) -> Result:
    """Warm up briefly, then run the load for ``duration`` seconds."""
    warmup = requests[: min(len(requests) // 10, 200 * concurrency)]
    asyncio.run(_load(server.url, warmup, concurrency, 1.0))
    measured = requests[len(warmup) :]
    before_stats = standin_stats(segment) if segment else None
    cpu_before = server.cpu_seconds()
    started = time.monotonic()
    latencies, statuses = asyncio.run(_load(server.url, measured, concurrency, duration))
    seconds = time.monotonic() - started
    cpu = server.cpu_seconds() - cpu_before
    done = len(latencies)
    if done >= len(measured):
        print(f"  warning: {target} c={concurrency} ran out of prepared requests", file=sys.stderr)
    per_event = None
    if segment and before_stats is not None:
        after = standin_stats(segment)
        events = after["accepted"] - before_stats["accepted"]
        per_event = (after["requests"] - before_stats["requests"]) / events if events else None
    ordered = sorted(latencies)
    return Result(
        target=target,
        concurrency=concurrency,
        requests=done,
        seconds=round(seconds, 2),
        rps=round(done / seconds, 1),
        p50_ms=round(statistics.median(ordered) * 1000, 2),
        p99_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        cpu_us_per_request=round(cpu / done * 1e6, 1) if done else 0.0,
        segment_requests_per_event=None if per_event is None else round(per_event, 4),
        non_200=sum(count for status, count in statuses.items() if status != 200),
    )


def median_result(runs: list[Result]) -> Result:
    """Per field, the median of several rounds of one target (requests and non-200s: summed)."""
    first = runs[0]

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    per_event = [r.segment_requests_per_event for r in runs if r.segment_requests_per_event is not None]
    return Result(
        target=first.target,
        concurrency=first.concurrency,
        requests=sum(r.requests for r in runs),
        seconds=round(sum(r.seconds for r in runs), 2),
        rps=med([r.rps for r in runs]),
        p50_ms=med([r.p50_ms for r in runs]),
        p99_ms=med([r.p99_ms for r in runs]),
        cpu_us_per_request=med([r.cpu_us_per_request for r in runs]),
        segment_requests_per_event=med(per_event) if per_event else None,
        non_200=sum(r.non_200 for r in runs),
    )


# ----------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run (default: 8)")
    parser.add_argument("--latency", type=float, default=0.05, help="stand-in answer delay (default: 0.05 s)")
    parser.add_argument("--rate", type=float, default=3000.0, help="most requests/s expected, to size the pool")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PATH[,key=value...]",
        help="serve importing segment_bridge from PATH with ServerConfig overrides (repeatable); replaces 'serve'",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per target; medians reported")
    parser.add_argument(
        "--refused",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of requests (0-1) whose event is refused and dead-lettered, e.g. to measure the fsync",
    )
    parser.add_argument("--bare-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_app:
        run_bare_app()
        return 0

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMENT_", "TWILIO_"))}
    results: list[Result] = []
    with contextlib.ExitStack() as stack, standin(args.latency) as (segment_url, _):
        bridge_env = dict(env, SEGMENT_WRITE_KEY=WRITE_KEY, TWILIO_AUTH_TOKEN=TOKEN, SEGMENT_HOST=segment_url)
        servers: list[tuple[str, Process]] = []
        if not args.variant:
            command = [sys.executable, "-m", "segment_bridge.server", "--port", "0", "--public-url", PUBLIC_URL]
            servers.append(("serve", start_uvicorn(command, bridge_env)))
        for text in args.variant:
            name, path, overrides = parse_variant(text)
            variant_env = dict(bridge_env, PYTHONPATH=path, SEGMENT_BRIDGE_PUBLIC_URL=PUBLIC_URL)
            command = [sys.executable, "-c", _VARIANT_LAUNCHER, json.dumps(overrides)]
            servers.append((name, start_uvicorn(command, variant_env)))
        for _, server in servers:
            stack.callback(server.log.close)
            stack.callback(server.stop)
        bare = start_uvicorn([sys.executable, str(Path(__file__).resolve()), "--bare-app"], env)
        stack.callback(bare.log.close)
        stack.callback(bare.stop)

        prepared = 0
        for concurrency in args.concurrency:
            pool = int(args.rate * (args.duration + 1.5)) + 200 * concurrency
            rounds: dict[str, list[Result]] = {}
            for round_number in range(args.rounds):
                print(f"c={concurrency} round {round_number + 1}/{args.rounds}", file=sys.stderr)
                # Each run gets events never sent before, so no redelivery is answered from the cache.
                bare_requests, prepared = signed_requests(pool, bare.url, start=prepared, refused=args.refused)
                targets: list[tuple[str, Process, list[bytes], str | None]] = [("bare", bare, bare_requests, None)]
                for name, server in servers:
                    requests, prepared = signed_requests(pool, server.url, start=prepared, refused=args.refused)
                    targets.append((name, server, requests, segment_url))
                for target, server, requests, segment in targets:
                    result = measure(target, server, requests, concurrency, args.duration, segment)
                    rounds.setdefault(target, []).append(result)
                    print(f"  {result}", file=sys.stderr)
            results.extend(median_result(runs) for runs in rounds.values())

    print()
    header = (
        f"{'target':<6} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>10} "
        f"{'Seg req/ev':>10} {'non-200':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        per_event = "-" if r.segment_requests_per_event is None else f"{r.segment_requests_per_event:.4f}"
        print(
            f"{r.target:<6} {r.concurrency:>4} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
            f"{r.cpu_us_per_request:>10.0f} {per_event:>10} {r.non_200:>7}"
        )
    print()
    names = [name for name, _ in servers]
    for concurrency in args.concurrency:
        bare_rps = next(r.rps for r in results if r.target == "bare" and r.concurrency == concurrency)
        for name in names:
            serve_result = next(r for r in results if r.target == name and r.concurrency == concurrency)
            print(f"c={concurrency}: {name}/bare requests/s = {serve_result.rps / bare_rps:.2f}")
    if 100 in args.concurrency:
        bare_rps = next(r.rps for r in results if r.target == "bare" and r.concurrency == 100)
        for name in names:
            s = next(r for r in results if r.target == name and r.concurrency == 100)
            checks = {
                ">= 0.5x bare requests/s": s.rps >= 0.5 * bare_rps,
                "p99 < 500 ms": s.p99_ms < 500,
                "<= 0.05 Segment requests per event": (s.segment_requests_per_event or 0) <= 0.05,
                "every answer 200": s.non_200 == 0,
            }
            verdicts = ", ".join(f"{check}: {'met' if ok else 'MISSED'}" for check, ok in checks.items())
            print(f"{name} targets at c=100: {verdicts}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
