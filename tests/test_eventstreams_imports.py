"""Only segment_bridge/eventstreams/api.py (and what imports it when a command runs) loads the twilio package."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_the_server_and_the_planning_modules_import_without_twilio() -> None:
    code = (
        "import sys; import segment_bridge, segment_bridge.cli, segment_bridge.server, "
        "segment_bridge.eventstreams.check, segment_bridge.eventstreams.migrate; "
        "print('twilio' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


def test_twilio_help_works_without_the_extra() -> None:
    code = "import sys; sys.modules['twilio'] = None; from segment_bridge.cli import main; main(['twilio', '--help'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert "segment-bridge twilio migrate --apply" in result.stdout
