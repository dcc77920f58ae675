"""Shared fixtures: environment isolation and the event fixture loader."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SEGMENT_* or TWILIO_* setting leaks in from the developer's shell or between tests."""
    for name in list(os.environ):
        if name.startswith(("SEGMENT_", "TWILIO_")):
            monkeypatch.delenv(name)
