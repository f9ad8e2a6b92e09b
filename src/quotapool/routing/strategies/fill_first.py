"""fill_first: one credential at a time, deterministic; traffic moves only when it leaves."""

from __future__ import annotations

import random
from collections.abc import Sequence

from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import RouteRequest
from quotapool.routing.base import Candidate


class FillFirst:
    name = "fill_first"

    def pick(
        self,
        request: RouteRequest,
        candidates: Sequence[Candidate],
        snapshot: PoolSnapshot,
        rng: random.Random,
    ) -> tuple[Candidate, str]:
        best = min(candidates, key=lambda c: c.credential.id)
        return best, "first eligible credential by id"
