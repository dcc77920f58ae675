"""Mutation testing with a list of hand-written mutants (benchmarks/mutants.toml): does the suite notice?

Each mutant is one behaviour-changing edit (a flipped comparison, a dropped condition, a changed constant, a
skipped check): a file, an exact snippet of it and its replacement, and the tests that should catch it. For each
mutant this script plants the edit in a private copy of the checkout, runs those tests (stopping at the first
failure), and reports the mutant **killed** (a test failed: it names the test) or **survived** (all passed: a
regression the suite would let through). Your working tree is never modified, so an interrupted run leaves
nothing behind.

Run it on the modules a change touched, before sending the change::

    .venv/bin/python benchmarks/mutants.py translate events     # mutants of these modules (file stems)
    .venv/bin/python benchmarks/mutants.py --changed main       # mutants of the files changed since main
    .venv/bin/python benchmarks/mutants.py --core               # the core modules (the score in the README)
    .venv/bin/python benchmarks/mutants.py --list               # what is in the list

A mutant whose snippet no longer occurs exactly once is reported **stale**: update its entry with the code.
Exit status: 0 all killed, 1 some survived, 2 stale entries or a baseline that is not green.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIST = Path(__file__).with_name("mutants.toml")
CORE = ("events", "translate", "track", "mapping", "catalog", "outcomes", "signature", "deadletter")
# Everything a test run needs; the copy is made once per run.
_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache", ".pytest_cache", "dist", "build"
)


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    first: tuple[str, ...]  # run alone first: the tests known to kill it, so a killed mutant costs seconds
    what: str
    origin: str

    @property
    def module(self) -> str:
        return Path(self.file).stem


@dataclass
class Result:
    mutant: Mutant
    status: str  # killed, survived, stale, timeout
    killer: str
    seconds: float


def load(path: Path = LIST) -> list[Mutant]:
    data = tomllib.loads(path.read_text())
    defaults: dict[str, list[str]] = data.get("tests", {})
    mutants = []
    for entry in data["mutant"]:
        module = Path(entry["file"]).stem
        tests = entry.get("tests") or defaults.get(module) or ["tests"]
        mutants.append(
            Mutant(
                entry["id"],
                entry["file"],
                entry["original"],
                entry["replacement"],
                tuple(tests),
                tuple(entry.get("first", ())),
                entry.get("what", ""),
                entry.get("origin", ""),
            )
        )
    ids = [m.id for m in mutants]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise SystemExit(f"{path}: duplicate mutant ids {sorted(duplicated)}")
    return mutants


def changed_files(base: str) -> set[str]:
    out = subprocess.run(
        ["git", "diff", "--name-only", base, "--"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split()) | set(untracked.split())


def pytest(copy: Path, selection: list[str], timeout: float) -> tuple[int | None, str, float]:
    """Run pytest in the copy; returns (exit code or None on timeout, output, seconds)."""
    env = dict(os.environ)
    # The copy's package first, ahead of the editable install's path entry; no bytecode, so a mutated file is
    # never shadowed by a cached compilation of the original (same size, same second).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *selection]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        return None, output, time.monotonic() - started
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def first_failure(output: str) -> str:
    """The first failed test of pytest's short summary (``-rfE``), not a captured log line."""
    for line in output.splitlines():
        match = re.match(r"(?:FAILED|ERROR) (tests/.+?)(?: - |$)", line)
        if match:
            return match.group(1)
    return ""


def run_one(copy: Path, mutant: Mutant, timeout: float, override: list[str] | None) -> Result:
    target = copy / mutant.file
    source = target.read_text()
    if source.count(mutant.original) != 1:
        return Result(mutant, "stale", f"snippet found {source.count(mutant.original)} times", 0.0)
    target.write_text(source.replace(mutant.original, mutant.replacement))
    try:
        code: int | None = 0
        output, seconds = "", 0.0
        if mutant.first and not override:
            code, output, seconds = pytest(copy, list(mutant.first), timeout)
        if code == 0 or (code is not None and code > 1):
            code, output, more = pytest(copy, override or list(mutant.tests), timeout)
            seconds += more
    finally:
        target.write_text(source)
    if code is None:
        return Result(mutant, "killed", "(timeout)", seconds)
    if code == 0:
        return Result(mutant, "survived", "", seconds)
    if code == 1:
        return Result(mutant, "killed", first_failure(output) or "(failed)", seconds)
    # 2: interrupted (a collection error), 3: internal error, 4: usage, 5: no tests: not a verdict on the mutant.
    return Result(mutant, "error", f"pytest exit {code}: {output.strip().splitlines()[-1:]}", seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module file stems (translate, events...); default: all")
    parser.add_argument("--core", action="store_true", help="the core modules: " + ", ".join(CORE))
    parser.add_argument("--changed", metavar="BASE", help="mutants of the files changed since git BASE")
    parser.add_argument("--id", action="append", default=[], help="only this mutant (repeatable)")
    parser.add_argument("--tests", nargs="+", help="run these pytest arguments for every mutant instead")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant (a hang counts as killed)")
    parser.add_argument("--list", action="store_true", help="list the selected mutants and exit")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selected tests")
    args = parser.parse_args(argv)

    mutants = load()
    modules = set(args.modules) | (set(CORE) if args.core else set())
    if modules:
        unknown = modules - {m.module for m in mutants}
        if unknown:
            parser.error(f"no mutants for {sorted(unknown)}")
        mutants = [m for m in mutants if m.module in modules]
    if args.changed:
        changed = changed_files(args.changed)
        mutants = [m for m in mutants if m.file in changed]
    if args.id:
        mutants = [m for m in mutants if m.id in set(args.id)]
    if args.list:
        stale = 0
        for m in mutants:
            found = (ROOT / m.file).read_text().count(m.original) if (ROOT / m.file).exists() else 0
            stale += found != 1
            print(f"{m.id:38} {m.file:30} {'' if found == 1 else 'STALE '}{m.what}")
        return 2 if stale else 0
    if not mutants:
        print("no mutants selected")
        return 0

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="segment-bridge-mutants-") as tmp:
        copy = Path(tmp) / "checkout"
        shutil.copytree(ROOT, copy, ignore=_IGNORE)
        if not args.no_baseline:
            selection = args.tests or sorted({t for m in mutants for t in m.tests})
            code, output, seconds = pytest(copy, selection, args.timeout * 2)
            if code != 0:
                print(f"baseline is not green ({first_failure(output) or code}); fix the suite first", file=sys.stderr)
                return 2
            print(f"baseline green in {seconds:.0f} s: {' '.join(selection)}", flush=True)
        results = []
        for index, mutant in enumerate(mutants, 1):
            result = run_one(copy, mutant, args.timeout, args.tests)
            results.append(result)
            print(f"[{index}/{len(mutants)}] {result.status:8} {mutant.id:38} {result.seconds:5.1f} s  {result.killer}")
            sys.stdout.flush()
    elapsed = time.monotonic() - started

    by_module: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_module[result.mutant.module].append(result)
    print(f"\n{'module':12} killed / mutants")
    for module, group in sorted(by_module.items()):
        killed = sum(r.status == "killed" for r in group)
        print(f"{module:12} {killed:3} / {len(group)}")
    killed = sum(r.status == "killed" for r in results)
    print(f"{'all':12} {killed:3} / {len(results)}  ({100 * killed / len(results):.0f}%) in {elapsed:.0f} s")
    for result in results:
        if result.status != "killed":
            print(f"{result.status.upper()}: {result.mutant.id} ({result.mutant.file}): {result.mutant.what}")
    if args.json:
        rows = [
            {"id": r.mutant.id, "file": r.mutant.file, "status": r.status, "killer": r.killer, "seconds": r.seconds}
            for r in results
        ]
        args.json.write_text(json.dumps({"elapsed": elapsed, "results": rows}, indent=1) + "\n")
    if any(r.status in ("stale", "error") for r in results):
        return 2
    return 1 if any(r.status == "survived" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
