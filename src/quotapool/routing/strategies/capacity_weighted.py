"""capacity_weighted (codex-lb's default): weighted draw, weight = capacity × remaining weekly
share.

In-flight requests count as used quota, so a burst spreads instead of piling on one account.
"""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.strategies._common import weighted_draw
from quotapool.routing.usage import secondary_used


class CapacityWeighted:
    name = "capacity_weighted"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        weighted = [
            (c, c.credential.capacity * max(0.0, 1.0 - secondary_used(c, ctx) / 100.0))
            for c in candidates
        ]
        if all(weight <= 0 for _, weight in weighted):
            winner = min(candidates, key=lambda c: (secondary_used(c, ctx), c.credential.id))
            return Pick(winner, "every candidate is spent; least used weekly window")
        winner, weight, total = weighted_draw(weighted, ctx.rng.random())
        scores = ("weight", {c.credential.name: w for c, w in weighted})
        share = round(100 * weight / total)
        return Pick(
            winner, f"weighted draw: {share}% of the weight (capacity × weekly left)", scores=scores
        )
