"""Build examples/identity/customers.db: a small customer table for the README's "Linking calls to your customers".

    python examples/identity/customers.py            # writes customers.db next to this file

Four of the six callers in examples/events.jsonl are customers; the other two are not in the table, so their calls
go out without userId. Only the standard library is needed.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

CUSTOMERS = [
    ("+14154457450", "cus_0001"),
    ("+14152461971", "cus_0002"),
    ("+14155138241", "cus_0003"),
    ("+14153341341", "cus_0004"),
]


def build(path: Path) -> None:
    """(Re)create the table ``customers(phone_e164, user_id)`` in ``path``, with an index for the lookup."""
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (user_id TEXT PRIMARY KEY, phone_e164 TEXT NOT NULL)")
        connection.execute("CREATE INDEX customers_phone ON customers (phone_e164)")
        connection.executemany("INSERT INTO customers (phone_e164, user_id) VALUES (?, ?)", CUSTOMERS)
    connection.close()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("customers.db")
    build(target)
    print(f"{target}: {len(CUSTOMERS)} customers")  # noqa: T201
