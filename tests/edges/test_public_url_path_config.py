"""A public URL whose path ``serve`` cannot route is refused with the configuration, before any worker starts.

``serve --workers N`` checks the configuration in the parent and builds the app in each worker: a check made only
while building the app showed a traceback per worker, and uvicorn restarted the dying workers without end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.server import ServerConfig

TOKEN = "tw_path_config_T0ken-0123456789abcdef"
MESSAGE = "the path of the public URL must not contain '{' or '}'"


@pytest.mark.parametrize(
    "public_url",
    ["https://bridge.example.com/a{b}", "https://bridge.example.com/hook/{id}", "https://bridge.example.com/a%7Bb%7D"],
)
def test_a_path_with_braces_is_a_configuration_error(public_url: str) -> None:
    with pytest.raises(ConfigurationError, match=MESSAGE):
        ServerConfig(public_url=public_url, auth_token=TOKEN)


def test_serve_with_workers_exits_2_with_one_line_before_starting_workers(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(f"{TOKEN}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SEGMENT_", "TWILIO_"))}
    args = ["--port", "0", "--workers", "2", "--dry-run", "--no-dead-letter"]
    args += ["--public-url", "https://bridge.example.com/a{b}", "--auth-token-file", str(tmp_path / "token")]
    # Before the fix the parent never exits (uvicorn restarts the workers): the timeout makes that a failure.
    done = subprocess.run(
        [sys.executable, "-m", "segment_bridge", "serve", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2
    # serve writes one JSON object per line, its start-up errors included.
    (line,) = done.stderr.strip().splitlines()
    record = json.loads(line)
    assert (record["level"], record["event"], record["message"]) == ("error", "configuration_error", MESSAGE)
    assert "Traceback" not in done.stderr
