"""least_busy: the fewest requests in flight."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.domain.columns import BUSY, LAST_SELECTED, Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import recency


class LeastBusy:
    name = "least_busy"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        winner = min(candidates, key=lambda c: (c.state.busy, *recency(c)))
        scores = ("in flight", {c.credential.name: float(c.state.busy) for c in candidates})
        return Pick(winner, f"fewest in flight ({winner.state.busy})", scores=scores)

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        state = view.columns.state
        busy = state[BUSY, rows]
        winner = view.first(rows, busy, state[LAST_SELECTED, rows])
        reason = f"fewest in flight ({view.candidate(winner).state.busy})"
        return RowPick(winner, reason, scores=("in flight", rows, busy))
