"""Small helpers the strategies share."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

import numpy as np

from quotapool.domain.columns import Floats, Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View


def recency(candidate: Candidate) -> tuple[int, str]:
    """Tie-breaker: least recently selected first, then by id (deterministic)."""
    return candidate.state.last_selected, candidate.credential.id


def drawn(cumulative: Sequence[float], roll: float) -> int:
    """The index whose share of the total weight contains `roll` (in [0, 1)), given the
    running sums of the weights (the last is the total). Zero weights are never drawn.

    >>> drawn([1.0, 1.0, 4.0], 0.5)
    2
    """
    index = bisect_right(cumulative, roll * cumulative[-1])
    return min(index, len(cumulative) - 1)


def weighted_draw(
    candidates: list[tuple[Candidate, float]], roll: float
) -> tuple[Candidate, float, float]:
    """The candidate whose share of the total weight contains `roll` (in [0, 1)).

    Returns the winner, its weight and the total. The sums run left to right, as the routing
    index's (`numpy.cumsum`) do: both draw the same candidate from the same roll.
    """
    cumulative = list(accumulate(weight for _, weight in candidates))
    winner, weight = candidates[drawn(cumulative, roll)]
    return winner, weight, cumulative[-1]


def draw_by_weight(
    weighted: list[tuple[Candidate, float]], ctx: Context, weight_is: str
) -> Pick | None:
    """A weighted draw, explained with each candidate's weight (`weight_is` says what it is);
    None when every weight is 0 (the strategy's own fallback decides)."""
    if all(weight <= 0 for _, weight in weighted):
        return None
    winner, weight, total = weighted_draw(weighted, ctx.rng.random())
    share = round(100 * weight / total)
    scores = ("weight", {c.credential.name: w for c, w in weighted})
    return Pick(winner, f"weighted draw: {share}% of the weight ({weight_is})", scores=scores)


def roll_rows(weights: Floats, view: View) -> tuple[int, float]:
    """`weighted_draw` over an array: the drawn index and the total (the same draw from the
    same roll)."""
    cumulative = np.cumsum(weights)
    total = float(cumulative[-1])
    index = int(np.searchsorted(cumulative, view.ctx.rng.random() * total, "right"))
    return min(index, weights.size - 1), total


def draw_rows(rows: Rows, weights: Floats, view: View, weight_is: str) -> RowPick | None:
    """`draw_by_weight` by row."""
    if not (weights > 0).any():
        return None
    index, total = roll_rows(weights, view)
    share = round(100 * float(weights[index]) / total)
    return RowPick(
        int(rows[index]),
        f"weighted draw: {share}% of the weight ({weight_is})",
        scores=("weight", rows, weights),
    )


def percent(value: float) -> str:
    return f"{value:.0f}%"
