"""usage_weighted: the least used first (weekly, then 5-hour window)."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.strategies._common import percent, recency
from quotapool.routing.usage import primary_used, secondary_used


class UsageWeighted:
    name = "usage_weighted"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        weekly = {c.credential.id: secondary_used(c, ctx) for c in candidates}
        winner = min(
            candidates, key=lambda c: (weekly[c.credential.id], primary_used(c, ctx), *recency(c))
        )
        return Pick(
            winner,
            f"least used: weekly {percent(weekly[winner.credential.id])}, "
            f"5 h {percent(primary_used(winner, ctx))}",
            scores=(
                "weekly used %",
                {c.credential.name: weekly[c.credential.id] for c in candidates},
            ),
        )
