"""Store contracts: the live pool state and the request log."""

from __future__ import annotations

from typing import Protocol

from quotapool.domain.outcome import Outcome
from quotapool.domain.pool import PoolSnapshot


class PoolStore(Protocol):
    """Holds the live pool snapshot; every change goes through `apply` (atomic per outcome)."""

    def snapshot(self) -> PoolSnapshot: ...

    def apply(self, outcome: Outcome) -> PoolSnapshot:
        """Fold `outcome` into the state with the pure reducer; return the new snapshot."""
        ...
