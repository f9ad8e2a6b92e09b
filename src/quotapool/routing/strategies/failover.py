"""failover / sequential: the configured order; the next credential only when the earlier
ones are out (within the highest priority tier, which a modifier keeps)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quotapool.domain.columns import Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View


class Failover:
    name = "failover"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        order = {c.id: i + 1 for i, c in enumerate(ctx.snapshot.credentials)}
        winner = min(candidates, key=lambda c: order[c.credential.id])
        return Pick(
            winner,
            f"first available in configured order (#{order[winner.credential.id]})",
            scores=(
                "order",
                {c.credential.name: float(order[c.credential.id]) for c in candidates},
            ),
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        winner = int(rows[0])  # rows are in pool order
        return RowPick(
            winner,
            f"first available in configured order (#{winner + 1})",
            scores=("order", rows, rows.astype(np.float64) + 1.0),
        )


class Sequential(Failover):
    """CLIProxyAPI's "fill-first": use the first credential until it leaves the pool (by
    priority, then configured order). GoZen calls the same rule failover."""

    name = "sequential"
