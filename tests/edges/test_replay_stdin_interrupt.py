"""Ctrl-C stops ``tail -f archive.jsonl | segment-bridge replay -`` cleanly, however long the pipe stays open.

Found by the pre-release audit: with its standard input still open (the usual case: ``tail -f`` keeps writing),
an interrupted replay printed its summary, then Python aborted at exit ("Fatal Python error:
_enter_buffered_busy ... daemon threads", status 134), because the reader thread was blocked in a read of the
interpreter's own ``sys.stdin`` buffer, which interpreter shutdown then tries to close.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import orjson

from segment_bridge.samples import iter_call_events


def _lines(count: int) -> bytes:
    return b"".join(orjson.dumps(event) + b"\n" for event in iter_call_events(count))


def test_ctrl_c_with_stdin_still_open_exits_130_with_the_summary_and_no_abort() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "segment_bridge", "replay", "--dry-run", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        errors: list[bytes] = []

        def read_stderr() -> None:
            assert process.stderr is not None
            errors.append(process.stderr.read())

        stderr_reader = threading.Thread(target=read_stderr)
        stderr_reader.start()
        try:
            process.stdin.write(_lines(2))
            process.stdin.flush()  # and left open, as `tail -f` leaves it
            # The batch goes after 1 s without new input: once it is on stdout, the reader waits on the pipe.
            assert len(json.loads(process.stdout.readline())["batch"]) == 2
            process.send_signal(signal.SIGINT)
            status = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            process.stdin.close()
            stderr_reader.join(timeout=30)
    err = errors[0].decode()
    assert "Fatal Python error" not in err and "Traceback" not in err
    assert status == 130
    assert err.splitlines()[-2:] == [
        "segment-bridge: interrupted",
        "segment-bridge: shown 2, acknowledged 0, refused 0, failed 0",
    ]
