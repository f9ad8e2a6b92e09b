"""capacity_weighted (codex-lb's default): weighted draw, weight = capacity × remaining weekly
share.

In-flight requests count as used quota, so a burst spreads instead of piling on one account.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quotapool.domain.columns import Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import draw_by_weight, draw_rows
from quotapool.routing.usage import secondary_used


class CapacityWeighted:
    name = "capacity_weighted"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        weighted = [
            (c, c.credential.capacity * max(0.0, 1.0 - secondary_used(c, ctx) / 100.0))
            for c in candidates
        ]
        drawn = draw_by_weight(weighted, ctx, "capacity × weekly left")
        if drawn is not None:
            return drawn
        winner = min(candidates, key=lambda c: (secondary_used(c, ctx), c.credential.id))
        return Pick(winner, "every candidate is spent; least used weekly window")

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        used = view.week_used(rows)
        weights = view.columns.fixed.capacity[rows] * np.maximum(0.0, 1.0 - used / 100.0)
        drawn = draw_rows(rows, weights, view, "capacity × weekly left")
        if drawn is not None:
            return drawn
        return RowPick(view.first(rows, used), "every candidate is spent; least used weekly window")
