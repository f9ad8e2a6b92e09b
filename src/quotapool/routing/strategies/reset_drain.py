"""reset_drain: spend first the quota that resets soonest, so less of it expires unused."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from quotapool.routing.base import Candidate, Context, Pick
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
