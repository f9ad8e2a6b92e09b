"""least_cost: the cheapest price for the model each credential would actually send."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from quotapool.domain.columns import LAST_SELECTED, Rows
from quotapool.domain.credential import Credential
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import recency


def price(candidate: Candidate, ctx: Context) -> float:
    return price_of(candidate.credential, ctx.request.model, ctx.policy.pricing)


def price_of(credential: Credential, model: str, pricing: Mapping[str, float]) -> float:
    """USD per million tokens of what `credential` sends for `model` (+inf: not known)."""
    sent = credential.sent_model(model)
    own = credential.price(sent)
    if own is not None:
        return own
    return pricing.get(sent, math.inf)


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

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        model, pricing = view.ctx.request.model, view.ctx.policy.pricing
        key = ("price", model, tuple(sorted(pricing.items())))
        every = view.columns.fixed.per_credential(
            key, lambda c: price_of(c, model, pricing), np.float64
        )
        prices = every[rows]
        winner = view.first(rows, prices, view.columns.state[LAST_SELECTED, rows])
        credential = view.credential(winner)
        usd, sent = float(every[winner]), credential.sent_model(model)
        if math.isinf(usd):
            return RowPick(winner, f"no price known for {sent}; least recently selected")
        known = ~np.isinf(prices)
        return RowPick(
            winner,
            f"cheapest: {sent} at ${usd:g} per million tokens",
            scores=("USD per million tokens", rows[known], prices[known]),
        )
