"""Small helpers the strategies share."""

from __future__ import annotations

from quotapool.routing.base import Candidate, Context, Pick


def recency(candidate: Candidate) -> tuple[int, str]:
    """Tie-breaker: least recently selected first, then by id (deterministic)."""
    return candidate.state.last_selected, candidate.credential.id


def weighted_draw(
    candidates: list[tuple[Candidate, float]], roll: float
) -> tuple[Candidate, float, float]:
    """The candidate whose share of the total weight contains `roll` (in [0, 1)).

    Returns the winner, its weight and the total.
    """
    total = sum(weight for _, weight in candidates)
    point = roll * total
    for candidate, weight in candidates:
        point -= weight
        if point < 0:
            return candidate, weight, total
    return candidates[-1][0], candidates[-1][1], total


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


def percent(value: float) -> str:
    return f"{value:.0f}%"
