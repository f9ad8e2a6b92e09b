"""A scenario harness that reads like a playbook: request → decision; outcome → next decision."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from quotapool.domain.credential import Credential, Kind, Policy
from quotapool.domain.outcome import Failed, Limited, Served, Started
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import AdditionalQuota, QuotaReading, QuotaWindow
from quotapool.domain.reducer import apply
from quotapool.domain.request import Route, RouteRequest
from quotapool.domain.state import Status
from quotapool.routing.base import Decision, Rejection, RoutingPolicy
from quotapool.routing.engine import select
from quotapool.routing.registry import build_strategy


def credential(name: str, **fields: Any) -> Credential:
    fields.setdefault("kind", Kind.CODEX)
    if "policy" in fields:
        fields["policy"] = Policy(fields["policy"])
    return Credential(name, name, base_url="http://upstream", **fields)


class Playbook:
    def __init__(
        self, strategy: str, *credentials: Credential, seed: int = 0, **policy: Any
    ) -> None:
        self.strategy = build_strategy(
            strategy,
            prefer_earlier_reset=policy.pop("prefer_earlier_reset", False),
            budget_safe=policy.pop("budget_safe", True),
        )
        self.policy = RoutingPolicy(**policy)
        self.pool = PoolSnapshot(credentials)
        self.rng = random.Random(seed)
        self.now = 1_000.0
        self.model = "gpt-5.5"
        self.gate: str | None = None

    def at(self, now: float) -> Playbook:
        self.now = now
        return self

    def decide(
        self,
        exclude: frozenset[str] = frozenset(),
        *,
        affinity: str | None = None,
        owner: str | None = None,
    ) -> Decision | Rejection:
        request = RouteRequest(Route.RESPONSES, self.model, exclude, self.gate, affinity, owner)
        return select(
            request,
            self.pool,
            strategy=self.strategy,
            now=self.now,
            rng=self.rng,
            policy=self.policy,
        )

    def serve(self, ttfb_ms: float | None = None, gated: bool = False) -> str:
        """Decide, then play Started + Served; returns who served."""
        decision = self.decide()
        assert isinstance(decision, Decision), decision
        cid = decision.credential.id
        started = Started(cid, self.now, decision.rotation, decision.catch_up)
        self.pool = apply(self.pool, started)
        self.pool = apply(self.pool, Served(cid, self.now, None, self.model, ttfb_ms, gated))
        return cid

    def start(self) -> str:
        """Decide and leave the request in flight."""
        decision = self.decide()
        assert isinstance(decision, Decision), decision
        started = Started(decision.credential.id, self.now, decision.rotation, decision.catch_up)
        self.pool = apply(self.pool, started)
        return decision.credential.id

    def expect(self, *names: str) -> Playbook:
        served = [self.serve() for _ in names]
        assert served == list(names), f"expected {list(names)}, got {served}"
        return self

    def limited(
        self,
        name: str,
        until: float,
        status: Status = Status.RATE_LIMITED,
        model: str | None = None,
    ) -> Playbook:
        self.pool = apply(self.pool, Started(name, self.now))
        self.pool = apply(self.pool, Limited(name, self.now, status, until, "429", model=model))
        return self

    def failed(self, name: str, times: int = 1) -> Playbook:
        for _ in range(times):
            self.pool = apply(self.pool, Failed(name, self.now, "upstream 502"))
        return self

    def usage(
        self,
        name: str,
        primary: float = 0.0,
        secondary: float = 0.0,
        resets_at: float | None = None,
        **additional: float,
    ) -> Playbook:
        reading = QuotaReading(
            QuotaWindow(primary, None, 300),
            QuotaWindow(secondary, resets_at, 10080),
            {k: AdditionalQuota(k, QuotaWindow(v)) for k, v in additional.items()},
        )
        self.pool = apply(self.pool, Served(name, self.now, reading))
        return self

    def set_state(self, name: str, **fields: Any) -> Playbook:
        states = dict(self.pool.states)
        states[name] = replace(self.pool.state(name), **fields)
        self.pool = PoolSnapshot(self.pool.credentials, states, self.pool.sequence)
        return self
