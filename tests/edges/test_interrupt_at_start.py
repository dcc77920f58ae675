"""A Ctrl-C while ``segment-bridge`` is still loading its libraries is one line and status 130, never a traceback.

Found by the pre-release audit: interrupting a replay in its first second (the imports take that long on a busy
machine) printed a KeyboardInterrupt traceback from inside urllib3, because the console script imported
``segment_bridge.cli`` before any of the command line's own handling ran.
"""

from __future__ import annotations

import builtins
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from segment_bridge import __main__ as entry

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_script_enters_where_an_interrupt_at_start_is_caught() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["segment-bridge"] == "segment_bridge.__main__:run"


def test_ctrl_c_while_the_command_line_loads_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def interrupted_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "segment_bridge.cli":
            raise KeyboardInterrupt  # as a Ctrl-C lands in the middle of loading a library
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    monkeypatch.setattr(sys, "argv", ["segment-bridge", "replay", "--dry-run", "-"])
    assert entry.run() == 130
    captured = capsys.readouterr()
    assert captured.err == "segment-bridge: interrupted\n"
    assert captured.out == ""


def test_ctrl_c_before_a_command_sets_its_handling_up_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from segment_bridge import cli

    def interrupted_parser() -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted_parser)
    monkeypatch.setattr(sys, "argv", ["segment-bridge", "translate", "-"])
    assert entry.run() == 130
    assert capsys.readouterr().err == "segment-bridge: interrupted\n"


def test_run_returns_what_the_command_returns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", ["segment-bridge", "check-mapping"])
    assert entry.run() == 0
