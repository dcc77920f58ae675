"""The README's example: examples/identity/customers.py builds customers.db, examples/identity/mapping.toml looks
up userId in it, and the example events' customers get theirs."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

from segment_bridge import load_mapping, translate
from segment_bridge.identity import LookupFailure, UserIdLookup

EXAMPLE = Path(__file__).parents[2] / "examples"


def test_the_example_mapping_is_the_default_with_the_lookup_on() -> None:
    example = load_mapping(EXAMPLE / "identity" / "mapping.toml")
    default = load_mapping()
    assert example.warnings == ()
    lookup = example.spec.identity.lookup
    assert lookup is not None
    assert example.spec.model_copy(update={"identity": default.spec.identity}) == default.spec
    assert lookup.query == "SELECT phone_e164 AS phone, user_id FROM customers WHERE phone_e164 IN :phones"


def test_the_example_database_gives_the_example_customers_their_user_ids(tmp_path: Path) -> None:
    database = tmp_path / "customers.db"
    script = EXAMPLE / "identity" / "customers.py"
    result = subprocess.run([sys.executable, str(script), str(database)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{database}: 4 customers\n"
    customers = dict((phone, user) for phone, user in runpy.run_path(str(script))["CUSTOMERS"])
    mapping = load_mapping(EXAMPLE / "identity" / "mapping.toml")
    assert mapping.spec.identity.lookup is not None
    calls = [
        translation.track
        for line in (EXAMPLE / "events.jsonl").read_bytes().splitlines()
        for translation in translate(line, mapping)
        if translation.track is not None
    ]
    lookup = UserIdLookup(f"sqlite:///{database}", mapping.spec.identity.lookup)
    try:
        lookup.check()
        out = lookup.enrich(calls)
    finally:
        lookup.close()
    assert len(out) == 21
    for call in out:
        assert not isinstance(call, LookupFailure)
        message = call.message
        assert message.get("userId") == customers.get(message["anonymousId"])
    assert lookup.counters.hits == 15
    assert lookup.counters.misses == 6
    assert lookup.counters.queries == 1
