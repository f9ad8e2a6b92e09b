"""reset_drain: spend first the quota that resets soonest, so less of it expires unused."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from quotapool.domain.columns import LAST_SELECTED, WEEK_RESET, Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import recency
from quotapool.routing.usage import resets_at


class ResetDrain:
    name = "reset_drain"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        resets = {c.credential.name: resets_at(c, ctx) for c in candidates}
        winner = min(candidates, key=lambda c: (resets[c.credential.name] or math.inf, *recency(c)))
        reset = resets[winner.credential.name]
        if reset is None:
            return Pick(winner, "no reset time known; least recently selected")
        when = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M UTC")
        known = {name: r for name, r in resets.items() if r is not None}
        return Pick(
            winner, f"its weekly quota resets soonest ({when})", scores=("resets at", known)
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        state = view.columns.state
        resets = state[WEEK_RESET, rows]
        known = resets > view.ctx.now  # (false for a NaN reset: none announced)
        soonest = np.where(known, resets, math.inf)
        winner = view.first(rows, soonest, state[LAST_SELECTED, rows])
        reset = resets_at(view.candidate(winner), view.ctx)
        if reset is None:
            return RowPick(winner, "no reset time known; least recently selected")
        when = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return RowPick(
            winner,
            f"its weekly quota resets soonest ({when})",
            scores=("resets at", rows[known], resets[known]),
        )
