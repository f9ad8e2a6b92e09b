"""Strategies by name, and the modifier chain built around the configured one."""

from __future__ import annotations

from quotapool.routing.base import Strategy
from quotapool.routing.modifiers import (
    BudgetSafe,
    PolicyTiers,
    PreferEarlierReset,
    PriorityTiers,
    Sticky,
)
from quotapool.routing.strategies.capacity_weighted import CapacityWeighted
from quotapool.routing.strategies.expiry_weighted import ExpiryWeighted
from quotapool.routing.strategies.failover import Failover, Sequential
from quotapool.routing.strategies.fill_first import FillFirst
from quotapool.routing.strategies.least_busy import LeastBusy
from quotapool.routing.strategies.least_cost import LeastCost
from quotapool.routing.strategies.least_latency import LeastLatency
from quotapool.routing.strategies.reset_drain import ResetDrain
from quotapool.routing.strategies.round_robin import RoundRobin
from quotapool.routing.strategies.single import Single
from quotapool.routing.strategies.usage_weighted import UsageWeighted
from quotapool.routing.strategies.weighted import Weighted

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        CapacityWeighted(),
        ExpiryWeighted(),
        FillFirst(),
        RoundRobin(),
        Weighted(),
        UsageWeighted(),
        LeastBusy(),
        LeastLatency(),
        LeastCost(),
        Failover(),
        Sequential(),
        ResetDrain(),
        Single(),
    )
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown routing strategy {name!r}; choose one of: {known}") from None


def build_strategy(
    name: str, *, budget_safe: bool = True, prefer_earlier_reset: bool = False
) -> Strategy:
    """The named strategy wrapped in its modifiers, outermost first: session affinity →
    priority tiers → policy tiers → budget-safe → prefer-earlier-reset → strategy."""
    strategy = get_strategy(name)
    if name == Single.name:  # pinned means pinned: no tier or budget may move it
        return strategy
    if prefer_earlier_reset:
        strategy = PreferEarlierReset(strategy)
    if budget_safe:
        strategy = BudgetSafe(strategy)
    return Sticky(PriorityTiers(PolicyTiers(strategy)))
