"""Genuine signed requests to ``segment-bridge serve`` while 1,000 slow unsigned connections are held open.

Everything runs on 127.0.0.1: the stand-in Segment (its own process, answering after ``--latency``), ``serve``
(``python -m segment_bridge.server``, signatures checked, INFO logging, default bounds unless given), and this
process, which

* keeps ``--slow`` connections open (default 1,000) that send complete unsigned headers (every other one with a
  forged ``X-Twilio-Signature``) and then a body, one byte every ``--interval`` seconds (0.5): the attack that
  shut Twilio out before (each held a concurrency slot); and ``--slow-headers`` more (default 0) that send their
  request line and headers one byte at a time. A connection the server closes is opened again at once, so the
  attack holds its strength for the whole run;
* sends ``--requests`` genuine requests (default 300), each a distinct call event signed as Twilio signs, each on a
  new connection (the costlier case: the connection must be accepted too), ``--clients`` at a time (10), at most
  ``--rate`` a second (10: the attack runs through several ``--read-timeout`` periods);
* and, first, the same signed requests with no attack, as the baseline of the same run.

Reported: the share of signed requests answered 200 within Twilio's 5 s (target: at least 99%), their latency
(p50, p99, max), the answers that were not 200, and how many slow connections the server closed. Usage::

    python benchmarks/slow_clients.py
    python benchmarks/slow_clients.py --slow 1000 --requests 300 --serve-arg=--read-timeout=5
    cd /tmp && PYTHONPATH=/tmp/old python /work/main/benchmarks/slow_clients.py   # another version of the package

The file-descriptor soft limit is raised to the hard limit for this process and its children.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import PUBLIC_URL, TOKEN, WRITE_KEY, signed_requests, standin, start_uvicorn

TWILIO_WAIT = 5.0


@dataclass
class Attack:
    """The slow connections' counters."""

    opened: int = 0
    closed_by_server: int = 0
    connect_errors: int = 0
    open_now: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _slow_connection(host: str, port: int, number: int, body: bool, interval: float, attack: Attack) -> None:
    """One slow client, opened again whenever the server closes it, until the attack stops."""
    if body:
        forged = f"X-Twilio-Signature: forged{number}=\r\n" if number % 2 else ""
        head = (
            f"POST /events?bodySHA256={number:064x} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"{forged}Content-Length: 1000000\r\n\r\n"
        ).encode()
        drip = b" "
    else:
        head, drip = f"POST /events HTTP/1.1\r\nHost: {host}\r\nX-Pad: ".encode(), b"a"
    while not attack.stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            attack.connect_errors += 1
            await asyncio.sleep(interval)
            continue
        attack.opened += 1
        attack.open_now += 1
        closed = asyncio.ensure_future(reader.read())
        try:
            writer.write(head[:1])
            rest = b"" if body else head[1:]
            if body:
                writer.write(head[1:])
            while not attack.stop.is_set():
                done, _ = await asyncio.wait({closed}, timeout=interval)
                if done:
                    attack.closed_by_server += 1
                    break
                writer.write(rest[:1] or drip)
                rest = rest[1:]
        except OSError:
            attack.closed_by_server += 1
        finally:
            attack.open_now -= 1
            closed.cancel()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass
class Outcome:
    latencies: list[float]
    statuses: dict[str, int]


async def _signed(host: str, port: int, requests: list[bytes], clients: int, rate: float) -> Outcome:
    """Each request on a new connection, ``clients`` at a time, ``rate`` per second at most; latency from connecting
    to the whole answer."""
    cursor = iter(enumerate(requests))
    outcome = Outcome([], {})
    begin = time.monotonic()

    async def client() -> None:
        for number, request in cursor:
            await asyncio.sleep(max(0.0, begin + number / rate - time.monotonic()))
            started = time.monotonic()
            status = "error"
            writer = None
            try:
                async with asyncio.timeout(30):
                    reader, writer = await asyncio.open_connection(host, port)
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = head[9:12].decode()
                    match = re.search(rb"(?i)content-length: *(\d+)", head)
                    await reader.readexactly(int(match.group(1)) if match else 0)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                status = type(error).__name__
            finally:
                if writer is not None:
                    writer.close()
            outcome.latencies.append(time.monotonic() - started)
            outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
            if status == "200" and outcome.latencies[-1] > TWILIO_WAIT:
                outcome.statuses["200 after 5 s"] = outcome.statuses.get("200 after 5 s", 0) + 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return outcome


async def _run(address: str, args: argparse.Namespace, baseline: list[bytes], attacked: list[bytes]) -> None:
    host, port_text = address.split(":")
    port = int(port_text)
    before = await _signed(host, port, baseline, args.clients, args.rate)
    report("no attack", before)

    attack = Attack()
    total = args.slow + args.slow_headers
    slow = [
        asyncio.ensure_future(_slow_connection(host, port, n, n < args.slow, args.interval, attack))
        for n in range(total)
    ]
    # Let the attack reach full strength (every slow connection open and holding) before the signed requests.
    deadline = time.monotonic() + 30
    while attack.open_now < total and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(args.interval * 2)
    print(f"slow connections open: {attack.open_now} of {total}", file=sys.stderr)
    started = time.monotonic()
    during = await _signed(host, port, attacked, args.clients, args.rate)
    seconds = time.monotonic() - started
    held = attack.open_now
    attack.stop.set()
    await asyncio.gather(*slow)
    report(f"{args.slow} slow bodies + {args.slow_headers} slow headers", during)
    print(
        f"  attack: {held} slow connections open at the end, {attack.opened} opened in all, "
        f"{attack.closed_by_server} closed by the server, {attack.connect_errors} failed to connect; "
        f"signed requests took {seconds:.1f} s"
    )


def report(label: str, outcome: Outcome) -> None:
    latencies = sorted(outcome.latencies)
    in_time = outcome.statuses.get("200", 0) - outcome.statuses.get("200 after 5 s", 0)
    total = len(latencies)
    p99 = latencies[min(total - 1, int(total * 0.99))]
    print(
        f"{label}: {in_time}/{total} signed requests answered 200 within {TWILIO_WAIT:.0f} s "
        f"({100 * in_time / total:.1f}%); p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; answers {dict(sorted(outcome.statuses.items()))}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--slow", type=int, default=1000, help="slow bodies held open (default: 1000)")
    parser.add_argument("--slow-headers", type=int, default=0, help="slow headers held open too (default: 0)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between a slow client's bytes")
    parser.add_argument("--requests", type=int, default=300, help="signed requests per phase (default: 300)")
    parser.add_argument("--clients", type=int, default=10, help="signed requests at a time (default: 10)")
    parser.add_argument("--rate", type=float, default=10.0, help="signed requests per second (default: 10)")
    parser.add_argument("--latency", type=float, default=0.05, help="stand-in answer delay (default: 0.05 s)")
    parser.add_argument("--serve-arg", action="append", default=[], help="an extra `serve` option (repeatable)")
    args = parser.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * (args.slow + args.slow_headers) + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard == resource.RLIM_INFINITY else max(soft, hard), hard))
    print(f"file-descriptor limit: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}", file=sys.stderr)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMENT_", "TWILIO_"))}
    with contextlib.ExitStack() as stack, standin(args.latency) as (segment_url, _):
        bridge_env = dict(env, SEGMENT_WRITE_KEY=WRITE_KEY, TWILIO_AUTH_TOKEN=TOKEN, SEGMENT_HOST=segment_url)
        command = [
            sys.executable, "-m", "segment_bridge.server", "--port", "0", "--public-url", PUBLIC_URL,
            *args.serve_arg,
        ]  # fmt: skip
        server = start_uvicorn(command, bridge_env)
        stack.callback(server.log.close)
        stack.callback(server.stop)
        baseline, after = signed_requests(args.requests, server.url)
        attacked, _ = signed_requests(args.requests, server.url, start=after)
        asyncio.run(_run(server.url, args, baseline, attacked))
        server.log.seek(0)
        warnings = [line for line in server.log.read().decode(errors="replace").splitlines() if "WARNING" in line]
        if warnings:
            print(f"  serve's last warning line: {warnings[-1][:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
