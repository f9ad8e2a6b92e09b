"""fill_first: one credential at a time, deterministic; traffic moves only when it leaves."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Pick


class FillFirst:
    name = "fill_first"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        winner = min(candidates, key=lambda c: c.credential.id)
        return Pick(winner, "first eligible credential by id")
