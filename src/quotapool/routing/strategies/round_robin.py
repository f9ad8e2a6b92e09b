"""round_robin: smooth weighted rotation, counters per profile (one profile per model).

Stride scheduling: the candidate with the fewest selections per unit of weight goes next, so
weights 2:1 give A, B, A, A, B, A… and equal weights a plain rotation.
"""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Pick


class RoundRobin:
    name = "round_robin"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        profile = ctx.request.profile
        turns = {
            c.credential.name: c.state.rotations.get(profile, 0) / c.credential.weight
            for c in candidates
        }
        winner = min(
            candidates,
            key=lambda c: (turns[c.credential.name], c.state.last_selected, c.credential.id),
        )
        count = winner.state.rotations.get(profile, 0)
        return Pick(
            winner,
            f"its turn: {count} selection(s) for {profile} at weight {winner.credential.weight:g}",
            scores=("selections per weight", turns),
        )
