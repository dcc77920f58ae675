"""The cache of recently delivered ``messageId`` s that answers Twilio's redeliveries without calling Segment.

Segment's own ``messageId`` deduplication stays the backstop for what the cache has forgotten.
"""

from __future__ import annotations

from collections import OrderedDict


class _RecentIds:
    """A bounded set with least-recently-used eviction (an ``OrderedDict`` used as a set)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        if key in self._ids:
            self._ids.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, key: str) -> None:
        if self.capacity <= 0:
            return
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
