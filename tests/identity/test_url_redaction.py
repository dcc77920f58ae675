"""A credential in the database URL's query string (libpq reads ``?password=``) is hidden like the user's password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from identityhelp import spec

from segment_bridge.identity import UserIdLookup

ROOT = Path(__file__).resolve().parents[2]


def test_repr_hides_a_password_in_the_query_string() -> None:
    lookup = UserIdLookup("postgresql+psycopg://bridge@127.0.0.1:1/db?password=s3cr3t-pw&sslmode=disable", spec())
    try:
        assert "s3cr3t-pw" not in repr(lookup)
        assert "s3cr3t-pw" not in lookup.url
        assert "password=***" in lookup.url
        assert "sslmode=disable" in lookup.url
    finally:
        lookup.close()


def test_the_error_line_hides_a_password_in_the_query_string() -> None:
    # Nothing listens on port 1: the check at start fails, and its one line names the URL.
    url = "postgresql+psycopg://bridge@127.0.0.1:1/db?password=s3cr3t-pw&connect_timeout=2"
    result = subprocess.run(
        [sys.executable, "-m", "segment_bridge", "translate", "--mapping", "examples/identity/mapping.toml"],
        input=b"",
        capture_output=True,
        cwd=ROOT,
        env={"SEGMENT_BRIDGE_IDENTITY_URL": url, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2
    assert b"s3cr3t-pw" not in result.stderr + result.stdout
    assert b"password=***" in result.stderr
