"""Segment Unify identifiers in ``context.externalIds``, as the mapping's ``[[external_ids]]`` declare them.

Unify takes a phone number as an identity only from ``context.externalIds`` (or a ``phone`` property or trait), and
only when the space has ``phone`` enabled as an identifier. The compiled mapping reads each declared external id
like a property, under a name that starts with :data:`EXTERNAL_ID_PROPERTY` (see
:meth:`segment_bridge.mapping.MappingSpec.applied_properties`); :meth:`ExternalIds.take` then moves those values out
of the properties into the list Segment reads. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["EXTERNAL_ID_PROPERTY", "ExternalIdRule", "ExternalIds", "is_e164", "phone_external_id"]

#: The name prefix of the properties that carry external ids out of the compiled mapping. A control character: no
#: property a mapping file names can start with it by accident, and it never reaches a message.
EXTERNAL_ID_PROPERTY = "\x1fexternal_id:"

# ITU-T E.164: "+", a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def is_e164(value: object) -> bool:
    """Whether ``value`` is a phone number in E.164 form (``+14155550100``), not ``client:alice`` or ``sip:...``."""
    return isinstance(value, str) and _E164.fullmatch(value) is not None


class ExternalIdRule(NamedTuple):
    """What one declared external id becomes: its ``type``, ``collection``, ``encoding``, and checks."""

    type: str
    collection: str
    encoding: str
    #: Send the value only when it is an E.164 phone number.
    e164_only: bool
    #: HMAC the value with the mapping's hash key (``[hashing] phone_numbers`` on, and the value a phone number).
    hashed: bool


class ExternalIds:
    """Moves the external ids of one mapped event out of its properties into ``context.externalIds`` entries."""

    __slots__ = ("_hash", "_names", "_rules")

    def __init__(self, rules: tuple[ExternalIdRule, ...], hash_value: Callable[[Any], str]) -> None:
        self._rules = rules
        self._names = tuple(f"{EXTERNAL_ID_PROPERTY}{index}" for index in range(len(rules)))
        self._hash = hash_value

    def take(self, properties: dict[str, Any]) -> list[dict[str, str]]:
        """Remove the external-id values from ``properties``; return the entries to send (maybe none).

        A value that is absent, not a string or number, or (for an E.164 rule) not an E.164 number is left out.
        """
        entries = []
        for name, rule in zip(self._names, self._rules, strict=True):
            value = properties.pop(name, None)
            if type(value) not in (str, int) or value == "":
                continue
            if rule.e164_only and not is_e164(value):
                continue
            entries.append(
                {
                    "id": self._hash(value) if rule.hashed else str(value),
                    "type": rule.type,
                    "collection": rule.collection,
                    "encoding": rule.encoding,
                }
            )
        return entries


def phone_external_id(message: dict[str, Any]) -> str | None:
    """The ``id`` of the first ``phone`` entry in a track message's ``context.externalIds``, if any."""
    context = message.get("context")
    entries = context.get("externalIds") if isinstance(context, dict) else None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("type") == "phone" and isinstance(entry.get("id"), str):
            return str(entry["id"])
    return None
