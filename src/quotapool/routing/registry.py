"""Strategies by name."""

from __future__ import annotations

from quotapool.routing.base import Strategy
from quotapool.routing.strategies.fill_first import FillFirst
from quotapool.routing.strategies.round_robin import RoundRobin

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (RoundRobin(), FillFirst())}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown routing strategy {name!r}; choose one of: {known}") from None
