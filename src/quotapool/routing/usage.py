"""How used a candidate is, seen from one request. Pure.

A gated model (served from an additional quota) is measured by that quota alone, never by the
standard windows (seed 004).
"""

from __future__ import annotations

from quotapool.domain.quota import QuotaWindow
from quotapool.routing.base import Candidate, Context


def _windows(candidate: Candidate, ctx: Context) -> tuple[QuotaWindow | None, QuotaWindow | None]:
    state = candidate.state
    if (limit := ctx.request.additional_limit) is not None:
        window = state.additional.get(limit)
        return window, window
    return state.primary, state.secondary


def primary_used(candidate: Candidate, ctx: Context, *, in_flight: bool = True) -> float:
    """Percent of the short window used; by default counting requests in flight as used."""
    window = _windows(candidate, ctx)[0]
    used = window.used_at(ctx.now) if window else 0.0
    if not in_flight:
        return used
    return used + ctx.policy.in_flight_penalty * candidate.state.in_flight


def secondary_used(candidate: Candidate, ctx: Context) -> float:
    """Percent of the long (weekly) window used, counting requests in flight."""
    window = _windows(candidate, ctx)[1]
    used = window.used_at(ctx.now) if window else 0.0
    return used + ctx.policy.in_flight_penalty * candidate.state.in_flight


def resets_at(candidate: Candidate, ctx: Context) -> float | None:
    """When the long window resets (the quota that expires unused if not spent)."""
    window = _windows(candidate, ctx)[1]
    if window is None or window.resets_at is None or window.resets_at <= ctx.now:
        return None
    return window.resets_at
