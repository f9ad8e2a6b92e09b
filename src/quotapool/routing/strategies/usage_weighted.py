"""usage_weighted: the least used first (weekly, then 5-hour window)."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.domain.columns import LAST_SELECTED, Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
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

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        weekly, five = view.week_used(rows), view.short_used(rows)
        last = view.columns.state[LAST_SELECTED, rows]
        at = view.first_at(rows, weekly, five, last)
        return RowPick(
            int(rows[at]),
            f"least used: weekly {percent(float(weekly[at]))}, 5 h {percent(float(five[at]))}",
            scores=("weekly used %", rows, weekly),
        )
