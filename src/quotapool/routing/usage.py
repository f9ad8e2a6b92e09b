"""How used a candidate is, seen from one request. Pure.

A gated model (served from an additional quota) is measured by that quota alone, never by the
standard windows: a missing reading of its own counts as unused, not as the standard one.
"""

from __future__ import annotations

from quotapool.domain.quota import QuotaWindow
from quotapool.routing.base import Candidate, Context


def _window(candidate: Candidate, ctx: Context, short: bool) -> QuotaWindow | None:
    state = candidate.state
    if (limit := ctx.request.additional_limit) is not None:
        quota = state.additional.get(limit)
        if quota is None:
            return None
        return quota.primary if short else quota.secondary
    return state.primary if short else state.secondary


def _used(window: QuotaWindow | None, now: float) -> float:
    if window is None or (window.resets_at is not None and now >= window.resets_at):
        return 0.0  # never trust a reading past the reset it announced
    return window.used_percent


def primary_used(candidate: Candidate, ctx: Context, *, in_flight: bool = True) -> float:
    """Percent of the short window used; by default counting requests in flight as used."""
    used = _used(_window(candidate, ctx, True), ctx.now)
    if not in_flight:
        return used
    return used + ctx.policy.in_flight_penalty * candidate.state.busy


def secondary_used(candidate: Candidate, ctx: Context, *, in_flight: bool = True) -> float:
    """Percent of the long (weekly) window used; by default counting requests in flight."""
    used = _used(_window(candidate, ctx, False), ctx.now)
    if not in_flight:
        return used
    return used + ctx.policy.in_flight_penalty * candidate.state.busy


def resets_at(candidate: Candidate, ctx: Context) -> float | None:
    """When the long window resets (the quota that expires unused if not spent)."""
    window = _window(candidate, ctx, False)
    if window is None or window.resets_at is None or window.resets_at <= ctx.now:
        return None
    return window.resets_at
