"""expiry_weighted: weighted draw, weight = the rate at which the account's weekly credits must
be spent not to expire unused — credits left ÷ time to the weekly reset — times the 5-hour
window's headroom.

An account whose weekly window resets tomorrow with half its credits left weighs far more than
one that resets in six days; an account with no running window (never used, or reset) loses its
capacity for every hour it stays idle, and weighs capacity ÷ one week. The draw spreads
conversations instead of piling them on one account (whose 5-hour window would run out and
move them all), and the in-flight requests count as used quota, so a burst spreads too.
"""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.strategies._common import weighted_draw
from quotapool.routing.usage import primary_used, resets_at, secondary_used

WEEK_HOURS = 168.0
SOONEST_HOURS = 1.0
"""A reset closer than this counts as this far: an account about to reset must not take all
the traffic (its 5-hour window would run out first)."""


class ExpiryWeighted:
    name = "expiry_weighted"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        weighted = [(c, _weight(c, ctx)) for c in candidates]
        if all(weight <= 0 for _, weight in weighted):
            winner = min(candidates, key=lambda c: (primary_used(c, ctx), c.credential.id))
            return Pick(winner, "every candidate is spent; least used 5-hour window")
        winner, weight, total = weighted_draw(weighted, ctx.rng.random())
        scores = ("weight", {c.credential.name: round(w, 2) for c, w in weighted})
        share = round(100 * weight / total)
        return Pick(
            winner,
            f"weighted draw: {share}% of the weight (weekly credits left ÷ hours to reset)",
            scores=scores,
        )


def _weight(candidate: Candidate, ctx: Context) -> float:
    left = candidate.credential.capacity * max(0.0, 1.0 - secondary_used(candidate, ctx) / 100)
    reset = resets_at(candidate, ctx)
    hours = WEEK_HOURS if reset is None else max(SOONEST_HOURS, (reset - ctx.now) / 3600)
    headroom = max(0.0, 1.0 - primary_used(candidate, ctx) / 100)
    return left / hours * headroom
