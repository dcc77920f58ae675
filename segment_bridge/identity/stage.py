"""The lookup as the delivery engine's batch stage: run on each batch right before it is sent.

A call whose lookup failed under ``on_error = "retry"`` becomes a :class:`~segment_bridge.delivery.StageFailure`
with a retryable error of kind ``identity_lookup_failed``: the engine settles it without sending it, and each caller
does what it does with a retryable failure (``serve`` answers 503 so Twilio redelivers, ``replay`` dead-letters the
event with the reason, the Lambda handler lists its record in ``batchItemFailures``).
"""

from __future__ import annotations

from collections.abc import Sequence

from segment_bridge.delivery import StageFailure, StageResult
from segment_bridge.exceptions import RetryableDeliveryError
from segment_bridge.identity.lookup import LookupFailure, UserIdLookup
from segment_bridge.track import TrackCall

__all__ = ["LOOKUP_FAILED", "LookupStage", "lookup_stage"]

#: The reason (and error kind) of a message the lookup kept back.
LOOKUP_FAILED = "identity_lookup_failed"


class LookupStage:
    """A synchronous batch stage (the engine runs it on the batch's worker thread) that enriches with a lookup."""

    __slots__ = ("lookup",)

    def __init__(self, lookup: UserIdLookup) -> None:
        self.lookup = lookup

    def __repr__(self) -> str:
        return f"LookupStage({self.lookup!r})"

    def __call__(self, calls: Sequence[TrackCall]) -> list[StageResult]:
        """One result per call: the call to send (with ``userId`` when found), or why it is kept back."""
        return [
            StageFailure(RetryableDeliveryError(item.reason, kind=LOOKUP_FAILED, count=1), LOOKUP_FAILED)
            if isinstance(item, LookupFailure)
            else item
            for item in self.lookup.enrich(calls)
        ]


def lookup_stage(lookup: UserIdLookup) -> LookupStage:
    """The batch stage of ``lookup``."""
    return LookupStage(lookup)
