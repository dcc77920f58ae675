"""What happened to one event: translated, acknowledged, or refused with a reason.

Refusals are values, not exceptions, so every caller (CLI, replay, server, Lambda) can count, log and dead-letter
them the same way. The dead-letter record shape is shared by every command and is what ``replay`` reads back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from segment_bridge.events import decode_json
from segment_bridge.track import TrackCall

__all__ = ["Outcome", "Refusal", "RefusalReason", "Translation"]


class Outcome(StrEnum):
    """The fate of one event."""

    TRANSLATED = "translated"
    ACKNOWLEDGED = "acknowledged"
    REFUSED = "refused"


class RefusalReason(StrEnum):
    """Why an event is not (or was not) delivered to Segment. Each is documented in the README."""

    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    DEPRECATED_EVENT_TYPE = "deprecated_event_type"
    NOT_SEGMENT_COMPATIBLE = "not_segment_compatible"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_TIMESTAMP = "missing_timestamp"
    MISSING_IDENTITY = "missing_identity"
    MISSING_EVENT_NAME = "missing_event_name"
    MESSAGE_TOO_LARGE = "message_too_large"
    MESSAGE_ID_TOO_LONG = "message_id_too_long"
    DELIVERY_FAILED = "delivery_failed"
    TRANSLATION_ERROR = "translation_error"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reasoned refusal of one event: what went wrong and what to do about it."""

    reason: RefusalReason
    message: str
    hint: str = ""
    event_id: str | None = None
    event_type: str | None = None

    def describe(self) -> str:
        """One readable line for a terminal or a log."""
        who = " ".join(part for part in (self.event_type, self.event_id) if part) or "event"
        # Segment not taking a message is a failure to deliver, not a judgement on the event.
        verb = "failed" if self.reason is RefusalReason.DELIVERY_FAILED else "refused"
        line = f"{verb} {who}: {self.reason}: {self.message}"
        return f"{line}. Hint: {self.hint}" if self.hint else line

    def dead_letter_record(self, event: Any) -> dict[str, Any]:
        """The JSON Lines record kept for a refused event; ``event`` is the original CloudEvent or raw line."""
        return {
            "reason": str(self.reason),
            "id": self.event_id,
            "type": self.event_type,
            "message": self.message,
            "hint": self.hint,
            "event": event,
        }


class Translation(msgspec.Struct, frozen=True, gc=False, eq=False):
    """The result of translating one CloudEvent.

    Exactly one of ``track`` (translated) or ``refusal`` (refused) is set, or neither (acknowledged, e.g. the sink
    test event, with ``note`` saying why). ``event`` is the original element as decoded (or the raw text when it
    was not JSON), kept for dead-letter records; it is decoded from the original bytes, ``raw``, only when someone
    asks for it.

    Built as ``Translation(outcome, event, event_id, event_type, track, refusal, note, raw=...)``.
    """

    # A msgspec struct: one is made per event, and a struct is built in C rather than by a Python __init__.
    outcome: Outcome
    _event: Any = None
    event_id: str | None = None
    event_type: str | None = None
    track: TrackCall | None = None
    refusal: Refusal | None = None
    note: str = ""
    #: The original JSON bytes, when ``event`` is decoded from them on demand.
    raw: bytes | None = None

    @property
    def event(self) -> Any:
        """The original CloudEvent (decoded JSON), or the raw text when it was not JSON."""
        if self._event is None and self.raw is not None:
            msgspec.structs.force_setattr(self, "_event", decode_json(self.raw))
        return self._event

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own would show the event and its raw bytes: only what __repr__ shows.
        return [("outcome", self.outcome), ("event_type", self.event_type), ("event_id", self.event_id)]

    def __repr__(self) -> str:
        detail = self.refusal.reason if self.refusal is not None else (self.note or "")
        return f"Translation({self.outcome}, {self.event_type!r}, {self.event_id!r}{', ' if detail else ''}{detail})"
