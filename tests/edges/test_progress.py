"""replay's progress line: bytes of each input read (compressed for .gz), events/s, outcomes and an ETA."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from segment_bridge.cli.progress import InputMeter, ReplayProgress
from segment_bridge.sources import iter_records

EVENT = b'{"specversion":"1.0","id":"EV%06d","type":"com.twilio.voice.status-callback.call.ringing","data":{}}\n'


@dataclass
class Counts:
    events: int = 0
    delivered: int = 0
    refused_total: int = 0
    failed: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def archive(path: Path, count: int, *, compress: bool = False) -> Path:
    data = b"".join(EVENT % i for i in range(count))
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def test_the_meter_follows_the_bytes_on_disk_of_plain_and_gzip_inputs(tmp_path: Path) -> None:
    plain = archive(tmp_path / "a.jsonl", 20_000)
    packed = archive(tmp_path / "b.jsonl.gz", 200_000, compress=True)
    meter = InputMeter([str(plain), str(packed)])
    total = plain.stat().st_size + packed.stat().st_size
    assert meter.total == total
    seen: list[int] = []
    for record in iter_records([str(plain), str(packed)], on_open=meter.opened):
        if record.file_index == 1 and record.line % 50_000 == 0:
            seen.append(meter.read())
    # Inside the gzip file the share grows with its compressed bytes, and never past them.
    assert plain.stat().st_size < seen[0] < seen[-1] <= total
    assert seen == sorted(seen)
    assert meter.read() == total  # read to the end: every file closed counts whole


def test_standard_input_has_no_total() -> None:
    assert InputMeter(["-"]).total is None


def test_the_line_shows_share_read_events_per_second_outcomes_and_eta(tmp_path: Path) -> None:
    plain = archive(tmp_path / "a.jsonl", 1_000)
    meter = InputMeter([str(plain)])
    clock = Clock()
    screen = io.StringIO()
    progress = ReplayProgress(screen, enabled=True, meter=meter, clock=clock)
    records = iter(iter_records([str(plain)], on_open=meter.opened))
    for _ in range(500):
        next(records)
    clock.now = 10.0
    progress(Counts(events=5_000, delivered=4_990, refused_total=7, failed=3))
    drawn = screen.getvalue()
    assert "\r" in drawn  # redrawn in place
    assert "500 events/s · delivered 4,990 · refused 7 · failed 3" in drawn
    share = int(drawn.rsplit("%|", 1)[0].rsplit(" ", 1)[-1])
    assert 30 <= share <= 100  # what the reader took of the file (it reads ahead in blocks)
    assert "<" in drawn.rsplit("[", 1)[-1]  # elapsed<remaining
    progress.done()


def test_a_redraw_waits_a_fifth_of_a_second() -> None:
    clock = Clock()
    screen = io.StringIO()
    progress = ReplayProgress(screen, enabled=True, clock=clock)
    progress(Counts(events=1))
    before = screen.getvalue()
    clock.now = 0.1
    progress(Counts(events=2))
    assert screen.getvalue() == before
    clock.now = 0.3
    progress(Counts(events=3))
    assert screen.getvalue() != before
    progress.done()


def test_disabled_draws_nothing(tmp_path: Path) -> None:
    screen = io.StringIO()
    progress = ReplayProgress(screen, enabled=False, meter=InputMeter([str(archive(tmp_path / "a", 10))]))
    progress(Counts(events=10))
    progress.clear()
    progress.done()
    assert screen.getvalue() == ""


def test_without_sizes_the_line_shows_bytes_read_and_counts_without_a_share() -> None:
    clock = Clock()
    screen = io.StringIO()
    progress = ReplayProgress(screen, enabled=True, meter=InputMeter(["-"]), verb="written", clock=clock)
    clock.now = 2.0
    progress(Counts(events=100, delivered=100))
    drawn = screen.getvalue()
    assert "%" not in drawn
    assert "read [" in drawn
    assert "50 events/s · written 100" in drawn
    progress.done()


def test_with_several_inputs_the_line_says_which_one_is_being_read(tmp_path: Path) -> None:
    names = [str(archive(tmp_path / f"{i}.jsonl", 100)) for i in range(3)]
    meter = InputMeter(names)
    clock = Clock()
    screen = io.StringIO()
    progress = ReplayProgress(screen, enabled=True, meter=meter, clock=clock)
    for record in iter_records(names, on_open=meter.opened):
        if record.file_index == 1:
            break
    clock.now = 1.0
    progress(Counts(events=150))
    assert "segment-bridge: file 2/3" in screen.getvalue().rsplit("\r", 1)[-1]
    progress.done()
