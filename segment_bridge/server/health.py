"""What ``GET /healthz`` reports: when Segment last answered, failed, or rejected a batch for good."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: How long a Segment answer counts as "recent" for /healthz.
_HEALTH_WINDOW = 300.0


@dataclass(slots=True)
class _Health:
    """When Segment last answered, for /healthz."""

    last_success: float | None = None
    last_failure: float | None = None
    last_failure_status: str | None = None
    #: Segment's latest batch answer was a rejection for good (set and cleared on the event loop).
    rejecting: bool = False
    last_rejection: float | None = None
    last_rejection_status: int | None = None

    def snapshot(self, now: float) -> dict[str, Any]:
        def age(moment: float | None) -> float | None:
            return None if moment is None else round(now - moment, 3)

        recent_ok = self.last_success is not None and now - self.last_success <= _HEALTH_WINDOW
        failing = self.last_failure is not None and (self.last_success is None or self.last_failure > self.last_success)
        return {
            "answered_recently": recent_ok,
            "failing": failing,
            "last_success_seconds_ago": age(self.last_success),
            "last_failure_seconds_ago": age(self.last_failure),
            "last_failure_status": self.last_failure_status,
            "rejecting": self.rejecting,
            "last_rejection_seconds_ago": age(self.last_rejection),
            "last_rejection_status": self.last_rejection_status,
        }
