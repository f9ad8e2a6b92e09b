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

import numpy as np

from quotapool.domain.columns import WEEK_RESET, Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View
from quotapool.routing.strategies._common import draw_by_weight, draw_rows
from quotapool.routing.usage import primary_used

WEEK_HOURS = 168.0
SOONEST_HOURS = 1.0
"""A reset closer than this counts as this far: an account about to reset must not take all
the traffic (its 5-hour window would run out first)."""


class ExpiryWeighted:
    name = "expiry_weighted"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        weighted = [(c, _weight(c, ctx)) for c in candidates]
        drawn = draw_by_weight(weighted, ctx, "weekly credits left ÷ hours to reset")
        if drawn is not None:
            return drawn
        winner = min(candidates, key=lambda c: (primary_used(c, ctx), c.credential.id))
        return Pick(winner, "every candidate is spent; least used 5-hour window")

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        state, now = view.columns.state, view.ctx.now
        week_reset = state[WEEK_RESET]
        known = now < week_reset  # (false for a NaN reset: none announced)
        hours = np.where(known, np.maximum(SOONEST_HOURS, (week_reset - now) / 3600), WEEK_HOURS)
        left = view.columns.fixed.capacity * np.maximum(0.0, 1.0 - view.whole("week_busy") / 100)
        short_left = np.maximum(0.0, 1.0 - view.whole("short_busy") / 100)
        weights = (left / hours * short_left)[rows]
        drawn = draw_rows(rows, weights, view, "weekly credits left ÷ hours to reset")
        if drawn is not None:
            return drawn
        winner = view.first(rows, view.short_used(rows))
        return RowPick(winner, "every candidate is spent; least used 5-hour window")


def _weight(candidate: Candidate, ctx: Context) -> float:
    """`usage.secondary_used`, `usage.resets_at` and `usage.primary_used` in one pass (this
    runs for every candidate of every decision)."""
    state, now = candidate.state, ctx.now
    if (limit := ctx.request.additional_limit) is None:
        short, week = state.primary, state.secondary
    elif (quota := state.additional.get(limit)) is not None:
        short, week = quota.primary, quota.secondary
    else:
        short = week = None
    busy = ctx.policy.in_flight_penalty * state.busy
    hours, week_used = WEEK_HOURS, busy
    if week is not None and (week.resets_at is None or now < week.resets_at):
        week_used += week.used_percent
        if week.resets_at is not None:
            hours = max(SOONEST_HOURS, (week.resets_at - now) / 3600)
    short_used = busy
    if short is not None and (short.resets_at is None or now < short.resets_at):
        short_used += short.used_percent
    left = candidate.credential.capacity * max(0.0, 1.0 - week_used / 100)
    return left / hours * max(0.0, 1.0 - short_used / 100)
