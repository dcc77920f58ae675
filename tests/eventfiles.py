"""The event fixtures on disk (tests/ is on sys.path through pytest's ``pythonpath`` setting)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
EVENTS = FIXTURES / "events"
BROKEN = FIXTURES / "broken"
GOLDEN = FIXTURES / "golden"


def load_event(name: str) -> Any:
    """A fixture event (or array of events) from tests/fixtures/events, decoded."""
    return json.loads((EVENTS / name).read_text())


def event_bytes(name: str) -> bytes:
    """A fixture file's raw bytes, exactly as stored."""
    return (EVENTS / name).read_bytes()
