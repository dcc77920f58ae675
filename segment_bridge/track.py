"""Segment ``track`` messages: the value that leaves the core, its id and Segment's size limits.

A :class:`TrackCall` holds the exact JSON object that goes into a ``/v1/batch`` request's ``batch[]`` together with
its serialized bytes, so size checks, batching and output never serialize a message twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
import orjson

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_ID_LENGTH",
    "TrackCall",
    "batch_growth",
    "message_id_for",
]

#: Segment drops (400) a message over 32 KB once serialized; the SDK counts 32 << 10 bytes.
MAX_MESSAGE_BYTES = 32 * 1024
#: Segment answers 400 above 500 KB per request; like the SDK we keep the batch's messages at or below 475,000
#: bytes, which leaves room for the envelope (``sentAt``, ``writeKey``, brackets and commas).
MAX_BATCH_BYTES = 475_000
#: Above 2,500 messages Segment answers 200 and drops the events.
MAX_BATCH_MESSAGES = 2_500
#: Segment keeps at most 100 characters of ``messageId`` for deduplication.
MAX_MESSAGE_ID_LENGTH = 100


def _wire_size(message: dict[str, Any], body: bytes) -> int:
    if body.isascii():
        # json.dumps adds one space after each separator; counting ',' and ':' inside strings too only overestimates.
        return len(body) + body.count(b",") + body.count(b":")
    # Escaped non-ASCII can triple a character's bytes: measure the real thing (rare for call events).
    return len(json.dumps(message).encode())


def message_id_for(source: str, event_id: str, event_type: str, prefix: str) -> str:
    """Return the deterministic ``messageId`` of a CloudEvent.

    CloudEvents are unique by ``source`` + ``id``; the type is hashed too because Twilio's documentation examples
    share one placeholder id across types, and Segment deduplicates across sources. The fields are joined with a
    separator that cannot occur in them unescaped, so ``("a", "bc")`` and ``("ab", "c")`` differ.
    """
    key = "\x1f".join((source, event_id, event_type)).encode()
    return f"{prefix}:{hashlib.sha256(key).hexdigest()[:40]}"


class TrackCall(msgspec.Struct, frozen=True, gc=False, eq=False):
    """One Segment ``track`` message, ready for ``batch[]``.

    Attributes:
        message: the JSON object as Segment receives it (``type``, ``event``, ids, ``properties``,
            ``timestamp``, ``context``, ``messageId``).
        body: ``message`` serialized as compact UTF-8 JSON (our output, and the dry-run and file batches).
        event_id: the CloudEvent ``id`` it came from, for outcomes and logs.
        event_type: the CloudEvent ``type`` it came from.
        size: bytes the message takes in a request *as sent*: segment-analytics-python serializes with
            ``json.dumps`` defaults (``", "`` and ``": "`` separators, non-ASCII escaped), which is larger than
            ``body``; Segment's 32 KB and 500 KB limits count what it receives. An upper bound for ASCII messages,
            exact otherwise.
    """

    # A frozen msgspec struct rather than a frozen dataclass: it is made once per event, and a struct is built in C
    # where a dataclass runs a Python __init__ that sets each field through object.__setattr__.
    message: dict[str, Any]
    body: bytes
    event_id: str
    event_type: str
    #: -1 until measured; see ``size``. Not part of the value: __eq__ leaves it out.
    _size: int = -1

    def __repr__(self) -> str:
        return f"TrackCall(event_id={self.event_id!r}, event_type={self.event_type!r})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own would show the message and body, which hold phone numbers: only the ids, as __repr__.
        return [("event_id", self.event_id), ("event_type", self.event_type)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrackCall):
            return NotImplemented
        return (self.message, self.body, self.event_id, self.event_type) == (
            other.message,
            other.body,
            other.event_id,
            other.event_type,
        )

    __hash__ = None  # type: ignore[assignment]  # the message is a dict

    @property
    def size(self) -> int:
        """Bytes as sent (see the class docstring); measured on first use, since only batching needs it."""
        if self._size < 0:
            msgspec.structs.force_setattr(self, "_size", _wire_size(self.message, self.body))
        return self._size

    def within(self, limit: int) -> bool:
        """Whether the message as sent is at most ``limit`` bytes, measuring only when it could be close."""
        # As sent, an ASCII message grows by at most half: one space per separator, and a separator takes at
        # least two bytes of compact JSON (`0,`). Non-ASCII escapes can triple it, so those are measured.
        if self.body.isascii() and len(self.body) * 3 // 2 <= limit:
            return True
        return self.size <= limit

    @classmethod
    def from_message(cls, message: dict[str, Any], event_id: str, event_type: str) -> TrackCall:
        """Build a call from a message, serializing it once."""
        return cls(message, orjson.dumps(message), event_id, event_type)

    @property
    def message_id(self) -> str:
        """Segment's deduplication key for this message."""
        return str(self.message["messageId"])

    @property
    def event(self) -> str:
        """The Segment event name, e.g. ``Call Answered``."""
        return str(self.message.get("event", ""))


def batch_growth(count: int, size: int, call: TrackCall, max_messages: int, max_bytes: int) -> int | None:
    """The bytes ``call`` adds to a batch of ``count`` messages and ``size`` bytes, or ``None`` when it must wait.

    The one batching rule every sender shares (replay, the webhook server, ``delivery.iter_batches``): at most
    ``max_messages`` messages and ``max_bytes`` bytes, counting the comma between messages. An empty batch always
    takes the call, so a single message over ``max_bytes`` still gets a batch of its own.
    """
    if not count:
        return call.size
    added = call.size + 1
    if count >= max_messages or size + added > max_bytes:
        return None
    return added
