"""weighted: a random draw by configured weight."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.domain.columns import Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import percent, roll_rows, weighted_draw


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

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        weights = view.columns.fixed.weight[rows]
        at, total = roll_rows(weights, view)
        weight = float(weights[at])
        return RowPick(
            int(rows[at]),
            f"weighted draw: weight {weight:g} of {total:g} ({percent(100 * weight / total)})",
            scores=("weight", rows, weights),
        )
