"""single: always the pinned credential (`routing.pinned`), never another."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Exclusion, Pick


class Single:
    name = "single"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        pinned = ctx.policy.pinned
        for candidate in candidates:
            if candidate.credential.name == pinned:
                others = tuple(
                    Exclusion(c.credential.name, f"not the pinned credential ({pinned})")
                    for c in candidates
                    if c is not candidate
                )
                return Pick(candidate, "pinned", others)
        return None
