"""Measurement helpers shared by the benchmarks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB.

    Read from ``VmHWM`` rather than ``getrusage().ru_maxrss``: on Linux, ``ru_maxrss`` carries the high-water mark
    of the process that forked us across ``exec``, so a child would report at least its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource  # not Linux: the best there is

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def instructions_per_event(script: str, names: Iterable[str], path: Path, count: int) -> dict[str, float] | None:
    """Instructions per event of each named path of ``script`` under callgrind, or ``None`` without valgrind.

    ``script`` is run as ``script --only NAME --input PATH`` once per name and once with ``none`` (start-up and
    reading alone), which is subtracted. Instruction counts are repeatable whatever else the machine is doing.
    """
    if shutil.which("valgrind") is None:
        return None
    names = list(names)
    counts = {}
    for name in ("none", *names):
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script,
             "--only", name, "--input", str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        collected = [line for line in result.stderr.splitlines() if "Collected" in line]
        if not collected:
            return None
        counts[name] = int(collected[-1].split()[-1])
    return {name: (counts[name] - counts["none"]) / count for name in names}
