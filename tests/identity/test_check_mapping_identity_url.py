"""check-mapping says so when SEGMENT_BRIDGE_IDENTITY_URL is set and the mapping has no [identity.lookup]."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check_mapping(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segment_bridge", "check-mapping"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
    )


def test_a_mapping_without_a_lookup_query_is_a_finding_when_the_url_is_set(tmp_path: Path) -> None:
    # translate, replay and serve exit 2 on this combination; check-mapping must not call it clean.
    result = _check_mapping({"SEGMENT_BRIDGE_IDENTITY_URL": f"sqlite:///{tmp_path / 'customers.db'}"})
    assert result.returncode == 1, result.stderr
    assert "SEGMENT_BRIDGE_IDENTITY_URL is set but this mapping has no [identity.lookup] query" in result.stderr


def test_the_same_mapping_is_clean_without_the_url() -> None:
    result = _check_mapping({})
    assert result.returncode == 0, result.stderr
