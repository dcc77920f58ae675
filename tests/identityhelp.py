"""Helpers of the identity tests: customer tables, track calls for given phone numbers, the PostgreSQL under test."""

from __future__ import annotations

import copy
import os
import sqlite3
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from eventfiles import load_event

from segment_bridge import TrackCall, load_mapping, translate
from segment_bridge.mapping import LookupSpec

#: Read when the module is imported, before the autouse fixture clears SEGMENT_* variables for each test.
POSTGRES_URL = os.environ.get("SEGMENT_BRIDGE_TEST_POSTGRES_URL", "")
POSTGRES_CTL = os.environ.get("SEGMENT_BRIDGE_TEST_POSTGRES_CTL", "")
HOW_TO_RUN_POSTGRES = (
    "PostgreSQL tests need a server: apt-get install -y --no-install-recommends postgresql, then "
    "bash .ci/postgres .venv/bin/python -m pytest tests/identity (it starts a throwaway cluster and sets "
    "SEGMENT_BRIDGE_TEST_POSTGRES_URL and SEGMENT_BRIDGE_TEST_POSTGRES_CTL)"
)
QUERY = "SELECT phone_e164 AS phone, user_id FROM customers WHERE phone_e164 IN :phones"
MAPPING = load_mapping()
_EVENT = load_event("real_inbound_answered.json")


def spec(query: str = QUERY, **options: Any) -> LookupSpec:
    return LookupSpec(query=query, **options)


def call_event(phone: str, index: int = 0) -> dict[str, Any]:
    """An inbound answered call event from ``phone``, its CloudEvent id made unique by ``index``."""
    event = copy.deepcopy(_EVENT)
    event["id"] = f"VW{index:032d}"
    event["data"]["request"]["parameters"]["From"] = phone
    return event


def call_for(phone: str, index: int = 0) -> TrackCall:
    """The track call of :func:`call_event`."""
    (translation,) = translate(orjson.dumps(call_event(phone, index)), MAPPING)
    assert translation.track is not None
    return translation.track


def calls_for(phones: Iterable[str]) -> list[TrackCall]:
    return [call_for(phone, index) for index, phone in enumerate(phones)]


def phone(number: int) -> str:
    return f"+1415{number:07d}"


def sqlite_customers(path: Path, rows: Sequence[tuple[str, str]]) -> str:
    """A real SQLite file with ``customers(phone_e164, user_id)``; its SQLAlchemy URL."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (phone_e164 TEXT NOT NULL, user_id TEXT NOT NULL)")
        connection.executemany("INSERT INTO customers VALUES (?, ?)", rows)
    connection.close()
    return f"sqlite:///{path}"


def postgres_ctl(action: str) -> None:
    subprocess.run([POSTGRES_CTL, action], check=True, timeout=60, capture_output=True)
