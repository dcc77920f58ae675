"""Segment Unify identifiers in ``context.externalIds``, as the mapping's ``[[external_ids]]`` declare them.

Unify takes a phone number as an identity only from ``context.externalIds`` (or a ``phone`` property or trait), and
only when the space has ``phone`` enabled as an identifier. The compiled mapping builds the entries (see
``mapping._external_ids_body``) and hands them over in its properties under :data:`EXTERNAL_IDS`, a key no mapping
file can name; ``translate`` moves them into the message's context. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXTERNAL_IDS", "is_e164", "phone_external_id"]

#: Where the compiled mapping puts the ``context.externalIds`` entries of an event among its properties. A control
#: character starts it: no property a mapping file names can, and it never reaches a message.
EXTERNAL_IDS = "\x1fexternalIds"


def is_e164(value: object) -> bool:
    """Whether ``value`` is a phone number in E.164 form (``+14155550100``), not ``client:alice`` or ``sip:...``.

    ITU-T E.164: "+", then a country code that does not start with 0, at most 15 digits in all. (The compiled
    mapping inlines the same test.)
    """
    return (
        type(value) is str
        and 2 < len(value) < 17
        and value[0] == "+"
        and value[1] != "0"
        and value[1:].isdigit()
        and value.isascii()
    )


def phone_external_id(message: dict[str, Any]) -> str | None:
    """The ``id`` of the first ``phone`` entry in a track message's ``context.externalIds``, if any."""
    try:  # the usual message, as translate builds it with the default mapping
        entry = message["context"]["externalIds"][0]
        if entry["type"] == "phone" and type(entry["id"]) is str:
            return str(entry["id"])
    except (KeyError, IndexError, TypeError):
        pass
    context = message.get("context")
    entries = context.get("externalIds") if isinstance(context, dict) else None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("type") == "phone" and isinstance(entry.get("id"), str):
            return str(entry["id"])
    return None
