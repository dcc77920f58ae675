"""Measurement helpers shared by the benchmarks."""

from __future__ import annotations

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
