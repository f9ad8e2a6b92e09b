"""In-process pool state (one replica)."""

from __future__ import annotations

from quotapool.domain import reducer
from quotapool.domain.outcome import Outcome
from quotapool.domain.pool import PoolSnapshot


class MemoryPoolStore:
    """The snapshot lives in this process; `apply` runs on the event loop, so it is atomic."""

    def __init__(self, initial: PoolSnapshot) -> None:
        self._snapshot = initial

    def snapshot(self) -> PoolSnapshot:
        return self._snapshot

    def apply(self, outcome: Outcome) -> PoolSnapshot:
        self._snapshot = reducer.apply(self._snapshot, outcome)
        return self._snapshot
