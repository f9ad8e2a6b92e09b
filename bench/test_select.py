"""One routing decision at 4, 100 and 1,000 credentials: the decision alone (its explanation
built when read), and as the request log keeps it (explained, bounded to `EXPLAINED` entries).

.venv/bin/pytest bench/test_select.py --benchmark-only -p no:randomly
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaWindow
from quotapool.domain.request import CLAUDE_CODE, Route, RouteRequest
from quotapool.domain.state import CredentialState, Status
from quotapool.proxy.record import EXPLAINED
from quotapool.routing.base import Decision, Rejection, RoutingPolicy
from quotapool.routing.engine import select
from quotapool.routing.registry import STRATEGIES, build_strategy

NOW = 1_800_000_000.0


def pool(size: int, kind: Kind = Kind.CODEX) -> PoolSnapshot:
    """A realistic pool: usage spread over the windows, a tenth rate limited."""
    rng = random.Random(size)
    plan = "claude_max_5x" if kind is Kind.CLAUDE else "plus"
    credentials = tuple(
        Credential(f"c{i}", f"c{i}", kind, "http://x", plan=plan) for i in range(size)
    )
    states = {}
    for i in range(size):
        state = CredentialState(
            primary=QuotaWindow(rng.uniform(0, 100), NOW + 3600, 300),
            secondary=QuotaWindow(rng.uniform(0, 100), NOW + 86400, 10080),
            in_flight=rng.randint(0, 3),
            last_selected=rng.randint(0, 1000),
        )
        if i % 10 == 0:
            state = CredentialState(
                Status.RATE_LIMITED, until=NOW + 600, reason="429 usage_limit_reached"
            )
        states[f"c{i}"] = state
    return PoolSnapshot(credentials, states, 1000)


@pytest.mark.parametrize("size", [4, 100, 1000])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_select(benchmark: Any, size: int, strategy: str) -> None:
    """Every strategy with its modifiers (budget-safe, tiers, affinity)."""
    snapshot, chain, rng = pool(size), build_strategy(strategy), random.Random(0)
    request = RouteRequest(Route.RESPONSES, "gpt-5.5")
    policy = RoutingPolicy(pinned="c1", pricing={"gpt-5.5": 1.25})

    def decide() -> Decision | Rejection:
        return select(request, snapshot, strategy=chain, now=NOW, rng=rng, policy=policy)

    assert isinstance(benchmark(decide), Decision)


@pytest.mark.parametrize("size", [4, 100, 1000])
@pytest.mark.parametrize(
    "strategy", ["expiry_weighted", "capacity_weighted", "round_robin", "fill_first"]
)
def test_select_as_logged(benchmark: Any, size: int, strategy: str) -> None:
    snapshot, chain, rng = pool(size), build_strategy(strategy), random.Random(0)
    request = RouteRequest(Route.RESPONSES, "gpt-5.5")

    def decide() -> dict[str, Any]:
        return select(request, snapshot, strategy=chain, now=NOW, rng=rng).explain(EXPLAINED)

    assert benchmark(decide)["selected"]


@pytest.mark.parametrize("size", [4, 100, 1000])
@pytest.mark.parametrize("kind", [Kind.CODEX, Kind.CLAUDE])
def test_select_codex_accounts_vs_claude_subscriptions(
    benchmark: Any, size: int, kind: Kind
) -> None:
    """The default strategy on a pool of ChatGPT accounts (a Codex request) and on one of
    Claude subscriptions (a Claude Code request): the same cost."""
    snapshot, chain, rng = pool(size, kind), build_strategy("expiry_weighted"), random.Random(0)
    if kind is Kind.CLAUDE:
        request = RouteRequest(Route.MESSAGES, "claude-sonnet-5-5", agent=CLAUDE_CODE)
    else:
        request = RouteRequest(Route.RESPONSES, "gpt-5.5")

    def decide() -> dict[str, Any]:
        return select(request, snapshot, strategy=chain, now=NOW, rng=rng).explain(EXPLAINED)

    assert benchmark(decide)["selected"]
