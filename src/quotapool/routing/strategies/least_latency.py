"""least_latency: lowest average time to first byte for this model.

A credential with fewer than `latency_min_samples` measurements is tried first (exploration),
so a new or unused credential gets measured instead of being ignored forever.
"""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.domain.columns import LAST_SELECTED, Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import recency


class LeastLatency:
    name = "least_latency"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        model, needed = ctx.request.model, ctx.policy.latency_min_samples
        unmeasured = [
            c for c in candidates if (s := c.state.latency.get(model)) is None or s.samples < needed
        ]
        if unmeasured:
            winner = min(unmeasured, key=recency)
            seen = winner.state.latency.get(model)
            samples = seen.samples if seen else 0
            return Pick(winner, f"exploring: {samples} of {needed} latency samples for {model}")
        averages = {c.credential.name: c.state.latency[model].ewma_ms for c in candidates}
        winner = min(candidates, key=lambda c: (averages[c.credential.name], *recency(c)))
        stat = winner.state.latency[model]
        return Pick(
            winner,
            f"lowest time to first byte: {stat.ewma_ms:.0f} ms over {stat.samples} requests",
            scores=("time to first byte, ms", averages),
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        model, needed = view.ctx.request.model, view.ctx.policy.latency_min_samples
        columns, states = view.columns, view.ctx.snapshot.states
        samples = columns.by_key("latency_samples", model, states)[rows]  # -1: none
        last = columns.state[LAST_SELECTED, rows]
        unmeasured = (samples < 0) | (samples < needed)
        if unmeasured.any():
            winner = view.first(rows[unmeasured], last[unmeasured])
            seen = view.candidate(winner).state.latency.get(model)
            count = seen.samples if seen else 0
            return RowPick(winner, f"exploring: {count} of {needed} latency samples for {model}")
        averages = columns.by_key("latency_ms", model, states)[rows]
        winner = view.first(rows, averages, last)
        stat = view.candidate(winner).state.latency[model]
        return RowPick(
            winner,
            f"lowest time to first byte: {stat.ewma_ms:.0f} ms over {stat.samples} requests",
            scores=("time to first byte, ms", rows, averages),
        )
