"""weighted: a random draw by configured weight."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.strategies._common import percent, weighted_draw


class Weighted:
    name = "weighted"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        winner, weight, total = weighted_draw(
            [(c, c.credential.weight) for c in candidates], ctx.rng.random()
        )
        return Pick(
            winner,
            f"weighted draw: weight {weight:g} of {total:g} ({percent(100 * weight / total)})",
            scores=("weight", {c.credential.name: c.credential.weight for c in candidates}),
        )
