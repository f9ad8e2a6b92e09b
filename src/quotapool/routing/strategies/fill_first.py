"""fill_first: drain the most used account first, so one account at a time carries the traffic.

The eligible credential with the highest 5-hour use wins, then the highest weekly use, then the
lowest stable id (ChatGPT account id, or name); unknown use counts as 0 %. Once an account is
used it stays the most used, so traffic moves only when it leaves the pool (rate limited, out
of quota, or over the budget threshold while budget-safe is on).
"""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.domain.columns import Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import percent
from quotapool.routing.usage import primary_used, secondary_used


class FillFirst:
    name = "fill_first"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        if len(candidates) == 1:
            return Pick(candidates[0], "the only eligible credential")
        used = {
            c.credential.name: (
                primary_used(c, ctx, in_flight=False),
                secondary_used(c, ctx, in_flight=False),
            )
            for c in candidates
        }
        winner = min(
            candidates,
            key=lambda c: (
                -used[c.credential.name][0],
                -used[c.credential.name][1],
                c.credential.stable_id,
            ),
        )
        five, weekly = used[winner.credential.name]
        return Pick(
            winner,
            f"most used first: 5 h {percent(five)}, weekly {percent(weekly)}",
            scores=("5 h used %", {name: u[0] for name, u in used.items()}),
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        if rows.size == 1:
            return RowPick(int(rows[0]), "the only eligible credential")
        five, weekly = view.short_used(rows, in_flight=False), view.week_used(rows, in_flight=False)
        at = view.first_at(rows, -five, -weekly, then=view.columns.fixed.stable_rank[rows])
        return RowPick(
            int(rows[at]),
            f"most used first: 5 h {percent(float(five[at]))}, weekly {percent(float(weekly[at]))}",
            scores=("5 h used %", rows, five),
        )
