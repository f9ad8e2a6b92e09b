"""round_robin: the least recently selected candidate; ties by pool order."""

from __future__ import annotations

import random
from collections.abc import Sequence

from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import RouteRequest
from quotapool.routing.base import Candidate


class RoundRobin:
    name = "round_robin"

    def pick(
        self,
        request: RouteRequest,
        candidates: Sequence[Candidate],
        snapshot: PoolSnapshot,
        rng: random.Random,
    ) -> tuple[Candidate, str]:
        best = min(candidates, key=lambda c: c.state.last_selected)
        last = best.state.last_selected
        when = (
            "never selected" if last == 0 else f"selected {snapshot.sequence - last + 1} picks ago"
        )
        return best, f"least recently selected ({when})"
