"""least_cost: the cheapest price for the model each credential would actually send."""

from __future__ import annotations

import math
from collections.abc import Sequence

from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.strategies._common import recency


def price(candidate: Candidate, ctx: Context) -> float:
    sent = candidate.credential.sent_model(ctx.request.model)
    own = candidate.credential.price(sent)
    if own is not None:
        return own
    return ctx.policy.pricing.get(sent, math.inf)


class LeastCost:
    name = "least_cost"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        prices = {c.credential.name: price(c, ctx) for c in candidates}
        winner = min(candidates, key=lambda c: (prices[c.credential.name], *recency(c)))
        usd = prices[winner.credential.name]
        sent = winner.credential.sent_model(ctx.request.model)
        if math.isinf(usd):
            return Pick(winner, f"no price known for {sent}; least recently selected")
        known = {name: p for name, p in prices.items() if not math.isinf(p)}
        return Pick(
            winner,
            f"cheapest: {sent} at ${usd:g} per million tokens",
            scores=("USD per million tokens", known),
        )
