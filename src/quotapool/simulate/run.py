"""One simulated run: a workload against the simulated pool, routed by the real engine
(`routing.engine.select` with the real strategy chain), the pool state changed only by the real
reducer (`domain.reducer.apply`) from what quotapool's own parsers read in the upstream's
answers, conversations kept by the real affinity store. Requests in flight end in time order
on the virtual clock; a 429 or a 502 fails over to another credential (at most `max_attempts`),
as the proxy does before the client's first byte."""

from __future__ import annotations

import heapq
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quotapool.config import WarmupConfig
from quotapool.domain.credential import Kind
from quotapool.domain.outcome import Served, Started
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaReading
from quotapool.domain.reducer import apply
from quotapool.domain.request import Route, RouteRequest
from quotapool.routing.base import Rejection, RoutingPolicy
from quotapool.routing.engine import select
from quotapool.routing.filters import exclusion
from quotapool.routing.profiles import FILL_STRATEGIES
from quotapool.routing.registry import build_strategy, get_strategy
from quotapool.simulate.pool import OK, Answer, PoolSpec, Upstream
from quotapool.simulate.workload import DAY, Request, Workload
from quotapool.store.affinity import MemoryAffinityStore
from quotapool.upstream.signals import classify_error, parse_codex_headers, parse_openai_headers

START = 1_795_996_800.0
"""Monday 2026-11-30 00:00 UTC: the virtual clock's first second (workloads know weekdays)."""
MODEL = "gpt-5.5"
SAMPLE_SECONDS = 3600.0
"""How often each account's window usage is sampled for the chart."""
MODIFIERS = ("no_budget_safe", "prefer_earlier_reset", "warmup", "fallback")
WARMUP_CREDITS = 0.05
"""What one warmup request costs (one word out)."""
_PARSERS: dict[Kind, Callable[[Mapping[str, str], float], QuotaReading | None]] = {
    Kind.CODEX: parse_codex_headers,
    Kind.OPENAI: parse_openai_headers,
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the comparison: a strategy and its modifiers, written
    `capacity_weighted+prefer_earlier_reset`, `fill_first+no_budget_safe` or
    `sequential+warmup` (warmup of every other account, as `[routing.warmup]` does for a fill
    strategy); `+fallback` sends a request no credential can take to the pool's fallback
    models, in order (as `[routing.fallback]` does)."""

    strategy: str
    budget_safe: bool = True
    prefer_earlier_reset: bool = False
    warmup: bool = False
    fallback: bool = False

    @classmethod
    def parse(cls, text: str) -> Setting:
        name, *options = text.strip().split("+")
        get_strategy(name)  # unknown names say which exist
        if unknown := set(options) - set(MODIFIERS):
            known = ", ".join(MODIFIERS)
            raise ValueError(f"unknown modifier {sorted(unknown)[0]!r}; use {known}")
        if "warmup" in options and name not in FILL_STRATEGIES:
            fills = " or ".join(sorted(FILL_STRATEGIES))
            raise ValueError(f"warmup is for strategies that fill one account at a time ({fills})")
        return cls(
            name,
            "no_budget_safe" not in options,
            "prefer_earlier_reset" in options,
            "warmup" in options,
            "fallback" in options,
        )

    @property
    def label(self) -> str:
        chosen = (not self.budget_safe, self.prefer_earlier_reset, self.warmup, self.fallback)
        return "+".join(
            [self.strategy, *(m for m, on in zip(MODIFIERS, chosen, strict=True) if on)]
        )


@dataclass(slots=True)
class Result:
    """What one setting did with one workload."""

    setting: str
    workload: str
    requests: int = 0
    served: int = 0
    blocked_requests: int = 0
    """Client-visible 429s: no credential could take the request."""
    blocked_seconds: float = 0.0
    """Total time during which requests were refused (the union of the waits announced)."""
    failovers: int = 0
    """Attempts that met a limit or an outage and went on to another credential unseen."""
    affinity_breaks: int = 0
    """Turns of a conversation sent to another account than its previous turn (a cold cache)."""
    fell_back: int = 0
    """Requests served by a fallback model (`+fallback`), none able to serve the one asked."""
    warmups: int = 0
    expired_weekly_pct: float = 0.0
    expired_five_hour_pct: float = 0.0
    spread_pct: float = 0.0
    """Standard deviation across accounts of the share of their weekly credits used."""
    requests_per_account: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[float, dict[str, tuple[float, float, float | None]]]] = field(
        default_factory=list
    )
    """Hourly: (hours into the run, account → (5-hour used %, weekly used %, when the weekly
    window resets))."""
    first_blocked_at: float | None = None
    """Hours into the run of the first request no credential could take."""
    wall_seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        """The JSON row: `expired_quota_pct` is the weekly credits that expired unused."""
        return {
            "strategy": self.setting,
            "workload": self.workload,
            "expired_quota_pct": round(self.expired_weekly_pct, 2),
            "expired_five_hour_pct": round(self.expired_five_hour_pct, 2),
            "blocked_requests": self.blocked_requests,
            "blocked_seconds": round(self.blocked_seconds, 1),
            "affinity_breaks": self.affinity_breaks,
            "failovers": self.failovers,
            "warmups": self.warmups,
            "fell_back": self.fell_back,
            "requests": self.requests,
            "served": self.served,
            "spread_pct": round(self.spread_pct, 2),
            "requests_per_account": self.requests_per_account,
        }


def simulate(
    pool: PoolSpec,
    workload: Workload,
    setting: Setting,
    *,
    seed: int,
    days: float,
    max_attempts: int = 3,
    affinity_ttl: float = 1800.0,
    progress: Callable[[int], object] | None = None,
) -> Result:
    """Run `workload` against `pool` routed by `setting`. The pool starts the same for every
    setting of a seed (its windows' phases and usage), and the routing's random draws are
    seeded: a run is deterministic."""
    began = time.perf_counter()
    run = _Run(pool, setting, workload, seed, max_attempts, affinity_ttl)
    result = run.result
    step = max(1, len(workload.requests) // 100)
    for n, request in enumerate(workload.requests):
        run.serve(n, request)
        if progress is not None and n % step == 0:
            progress(n)
    run.end_until(math.inf)
    end = START + days * DAY
    run.upstream.close(end)
    result.timeline.append(((end - START) / 3600.0, run.upstream.usage(end)))
    _account(result, run.upstream, days)
    result.wall_seconds = time.perf_counter() - began
    return result


class _Run:
    """The state of one run: the pool as quotapool sees it (`snapshot`) and as it is
    (`upstream`), conversations, requests in flight."""

    def __init__(
        self,
        pool: PoolSpec,
        setting: Setting,
        workload: Workload,
        seed: int,
        max_attempts: int,
        affinity_ttl: float,
    ) -> None:
        credentials = pool.credentials()
        self.parsers = {c.id: _PARSERS[c.kind] for c in credentials}
        self.snapshot = PoolSnapshot(credentials)
        self.strategy = build_strategy(
            setting.strategy,
            budget_safe=setting.budget_safe,
            prefer_earlier_reset=setting.prefer_earlier_reset,
        )
        self.policy, self.rng = RoutingPolicy(), random.Random(f"{seed}:routing")
        self.upstream = Upstream(pool, START, random.Random(f"{seed}:pool"))
        self.max_attempts = max_attempts
        self.warmup = setting.warmup
        self.models = (MODEL, *pool.fallback) if setting.fallback else (MODEL,)
        self.warm_until: dict[str, float] = {}
        """Credential → end of its warmup TTL (`WarmupConfig.ttl_seconds`)."""
        self.warmup_ttl = float(WarmupConfig.model_fields["ttl_seconds"].default)
        self.conversations = MemoryAffinityStore(ttl=affinity_ttl, max_bindings=10_000_000)
        self.last_on: dict[int, str] = {}
        self.in_flight: list[tuple[float, int, str, float, dict[str, str]]] = []
        self.result = Result(setting.label, workload.name, requests=len(workload.requests))
        self.blocked_until = self.sampled = 0.0

    def end_until(self, now: float) -> None:
        """Requests in flight that end by `now` are charged and answered, in time order."""
        in_flight = self.in_flight
        while in_flight and in_flight[0][0] <= now:
            ends, _, cid, credits, said = heapq.heappop(in_flight)
            headers = self.upstream.finish(cid, ends, credits) or said
            quota = self.parsers[cid](headers, ends)
            self.snapshot = apply(self.snapshot, Served(cid, ends, quota, MODEL, 800.0))

    def serve(self, n: int, request: Request) -> None:
        now = START + request.at
        self.end_until(now)
        while now - START >= self.sampled:  # every hour, those without requests too
            at = START + self.sampled
            self.result.timeline.append((self.sampled / 3600.0, self.upstream.usage(at)))
            self.sampled += SAMPLE_SECONDS
        key = f"c{request.conversation}"
        served_by, retry_at = self._attempts(n, request, now, self.conversations.bound(key, now))
        result = self.result
        if served_by is None:
            if not result.blocked_requests:
                result.first_blocked_at = request.at / 3600.0
            result.blocked_requests += 1
            until = max(retry_at or now + 1.0, now)
            result.blocked_seconds += max(0.0, until - max(now, self.blocked_until))
            self.blocked_until = max(self.blocked_until, until)
            return
        result.served += 1
        self.conversations.bind(key, served_by, now)
        if self.last_on.get(request.conversation, served_by) != served_by:
            result.affinity_breaks += 1
        self.last_on[request.conversation] = served_by

    def _attempts(
        self, n: int, request: Request, now: float, bound: str | None
    ) -> tuple[str | None, float | None]:
        """Route and send until an attempt is taken, falling back to the next model when none
        of the credentials of one can take it: the credential that took it, or None and when
        one comes back (as the client's 429 says: of the model asked for)."""
        retry_at = None
        for model in self.models:
            served_by, back = self._attempts_on(model, n, request, now, bound)
            if served_by is not None:
                if model != MODEL:
                    self.result.fell_back += 1
                return served_by, None
            if model == MODEL:
                retry_at = back
        return None, retry_at

    def _attempts_on(
        self, model: str, n: int, request: Request, now: float, bound: str | None
    ) -> tuple[str | None, float | None]:
        tried: frozenset[str] = frozenset()
        for _ in range(self.max_attempts):
            asked = RouteRequest(Route.RESPONSES, model, exclude=tried, affinity=bound)
            decision = select(
                asked, self.snapshot, strategy=self.strategy, now=now, rng=self.rng,
                policy=self.policy,
            )  # fmt: skip
            if isinstance(decision, Rejection):
                return None, decision.retry_at
            cid = decision.credential.id
            started = Started(cid, now, decision.rotation, decision.catch_up)
            self.snapshot = apply(self.snapshot, started)
            answer = self.upstream.attempt(cid, now)
            if answer.status == OK:
                ends = now + request.seconds
                heapq.heappush(self.in_flight, (ends, n, cid, request.credits, answer.headers))
                if self.warmup and decision.rotation is not None:
                    self._warm_others(n, cid, now)
                return cid, None
            self._refused(cid, answer, now)
            self.result.failovers += 1
            tried |= {cid}
        return None, None

    def _warm_others(self, n: int, chosen: str, now: float) -> None:
        """The rules of `proxy.warmup.Warmups.after`: every other credential that is eligible
        and out of its TTL gets one tiny request, which counts toward no rotation."""
        probe = RouteRequest(Route.RESPONSES, MODEL)
        for credential in self.snapshot.credentials:
            cid = credential.id
            if cid == chosen or self.warm_until.get(cid, 0.0) > now:
                continue
            if exclusion(credential, self.snapshot.state(cid), probe, now) is not None:
                continue
            self.warm_until[cid] = now + self.warmup_ttl
            self.snapshot = apply(self.snapshot, Started(cid, now, None))
            answer = self.upstream.attempt(cid, now)
            if answer.status == OK:
                heapq.heappush(self.in_flight, (now + 2.0, n, cid, WARMUP_CREDITS, answer.headers))
                self.result.warmups += 1
            else:
                self._refused(cid, answer, now)
                self.warm_until.pop(cid, None)

    def _refused(self, cid: str, answer: Answer, now: float) -> None:
        """What the pool learns from an error answer, as the proxy learns it: a limit until
        the reset it announces, or a failure that backs the credential off."""
        verdict = classify_error(answer.status, answer.headers, answer.body, now)
        quota = self.parsers[cid](answer.headers, now)
        self.snapshot = apply(self.snapshot, verdict.outcome(cid, now, quota))


def _account(result: Result, upstream: Upstream, days: float) -> None:
    accounts = upstream.accounts.values()
    for kind in ("weekly", "five_hour"):
        offered = sum(getattr(a, kind).offered for a in accounts)
        expired = sum(getattr(a, kind).expired for a in accounts)
        setattr(result, f"expired_{kind}_pct", 100.0 * expired / offered if offered else 0.0)
    shares = [100.0 * a.weekly.spent / (a.weekly.capacity * days / 7) for a in accounts]
    result.spread_pct = statistics.pstdev(shares) if len(shares) > 1 else 0.0
    result.requests_per_account = {a.spec.name: a.requests for a in accounts} | {
        k.spec.name: k.requests for k in upstream.keys.values()
    }
