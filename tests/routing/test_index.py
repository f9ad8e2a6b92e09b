"""The routing index decides as the engine's loop does: same pick, same reason, same
explanation, same random draws, over random pools, outcomes, requests and clocks."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotapool.domain.columns import KEYED, Columns, Fixed
from quotapool.domain.credential import Credential, Kind, Policy
from quotapool.domain.outcome import (
    BusyElsewhere,
    Failed,
    Limited,
    Outcome,
    Served,
    Started,
    StatusSet,
)
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaReading, QuotaWindow
from quotapool.domain.reducer import apply, apply_elsewhere
from quotapool.domain.request import CLAUDE_CODE, Route, RouteRequest, Unfit
from quotapool.domain.state import Status
from quotapool.routing import index
from quotapool.routing.base import Candidate, Context, Decision, Pick, Rejection, RoutingPolicy
from quotapool.routing.engine import select
from quotapool.routing.modifiers import Sticky
from quotapool.routing.registry import STRATEGIES, build_strategy

NOW = 1_800_000_000.0
INDEXED = sorted(name for name, s in STRATEGIES.items() if hasattr(s, "pick_rows"))
MODELS = ("gpt-5.5", "gpt-5.4", "claude-sonnet-4-5")


def test_every_strategy_has_an_indexed_form() -> None:
    assert sorted(STRATEGIES) == INDEXED


def _pool(rng: random.Random, size: int) -> PoolSnapshot:
    kinds = (Kind.CODEX, Kind.CODEX, Kind.OPENAI, Kind.ANTHROPIC, Kind.CLAUDE)
    credentials = tuple(
        Credential(
            f"id{i:03d}-{rng.randrange(1000)}",
            f"c{i}",
            rng.choice(kinds),
            "http://x",
            models=frozenset(rng.sample(MODELS, rng.randint(1, 3)))
            if rng.random() < 0.3
            else frozenset(),
            weight=rng.choice((1.0, 1.0, 2.0, 0.5)),
            priority=rng.choice((0, 0, 0, 1)) if rng.random() < 0.5 else 0,
            plan=rng.choice(("plus", "pro", None)),
            policy=rng.choice(list(Policy)) if rng.random() < 0.4 else Policy.NORMAL,
            account_id=f"acct-{rng.randrange(10_000)}" if rng.random() < 0.5 else None,
            serve_any_client=rng.random() < 0.3,
            prices=((rng.choice(MODELS), rng.choice((0.5, 2.0))),) if rng.random() < 0.3 else (),
        )
        for i in range(size)
    )
    return PoolSnapshot(credentials)


def _window(rng: random.Random, now: float, hours: float) -> QuotaWindow | None:
    if rng.random() < 0.15:
        return None
    resets = None if rng.random() < 0.1 else now + rng.uniform(-2, hours) * 3600
    return QuotaWindow(rng.choice((0.0, 50.0, 95.0, 100.0, rng.uniform(0, 100))), resets, 300)


def _outcome(rng: random.Random, credential_id: str, now: float) -> Outcome:
    roll = rng.random()
    if roll < 0.35:
        return Started(credential_id, now, rotation=rng.choice(("gpt-5.5", None, "team/gpt-5.5")))
    if roll < 0.6:
        quota = QuotaReading(_window(rng, now, 5), _window(rng, now, 168))
        return Served(credential_id, now, quota, "gpt-5.5", rng.uniform(50, 900))
    if roll < 0.7:
        status = rng.choice((Status.RATE_LIMITED, Status.QUOTA_EXCEEDED))
        model = rng.choice((None, None, "gpt-5.5"))
        return Limited(credential_id, now, status, now + rng.uniform(-60, 600), "429", model=model)
    if roll < 0.8:
        return Failed(credential_id, now - rng.uniform(0, 10), "502 bad gateway")
    if roll < 0.9:
        return BusyElsewhere(credential_id, now, rng.randint(0, 4))
    status = rng.choice((Status.PAUSED, Status.ACTIVE, Status.ACTIVE, Status.REAUTH_REQUIRED))
    return StatusSet(credential_id, now, status, "operator")


def _history(rng: random.Random, pool: PoolSnapshot, steps: int) -> PoolSnapshot:
    if rng.random() < 0.7:
        pool.indexed()  # the reducer then carries the columns through every outcome
    for _ in range(steps):
        credential = rng.choice(pool.credentials)
        outcome = _outcome(rng, credential.id, NOW + rng.uniform(-30, 0))
        pool = apply(pool, outcome) if rng.random() < 0.8 else apply_elsewhere(pool, outcome)
    return pool


def _request(rng: random.Random, pool: PoolSnapshot) -> RouteRequest:
    ids = [c.id for c in pool.credentials]
    unfit = {
        i: Unfit(("temperature",), "temperature")
        for i in rng.sample(ids, rng.randint(0, min(2, len(ids))))
    }
    return RouteRequest(
        rng.choice((Route.RESPONSES, Route.RESPONSES, Route.CHAT, Route.MESSAGES)),
        rng.choice(MODELS),
        exclude=frozenset(rng.sample(ids, rng.randint(0, min(3, len(ids))))),
        affinity=rng.choice(ids) if rng.random() < 0.3 else None,
        profile=rng.choice(("default", "team")),
        unfit=unfit,
        agent=CLAUDE_CODE if rng.random() < 0.3 else None,
    )


def _decide(
    plain: bool,
    request: RouteRequest,
    pool: PoolSnapshot,
    chain: Any,
    seed: int,
    now: float,
    policy: RoutingPolicy,
) -> tuple[Decision | Rejection, float]:
    rng = random.Random(seed)
    saved = index.INDEX_FROM
    index.INDEX_FROM = 10**9 if plain else 1
    try:
        decided = select(request, pool, strategy=chain, now=now, rng=rng, policy=policy)
    finally:
        index.INDEX_FROM = saved
    return decided, rng.random()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(1, 60),
    strategy=st.sampled_from(INDEXED),
    budget_safe=st.booleans(),
    earlier=st.booleans(),
)
def test_the_indexed_decision_is_the_loops(
    seed: int, size: int, strategy: str, budget_safe: bool, earlier: bool
) -> None:
    rng = random.Random(seed)
    pool = _history(rng, _pool(rng, size), rng.randint(0, 4 * size))
    chain = build_strategy(strategy, budget_safe=budget_safe, prefer_earlier_reset=earlier)
    policy = RoutingPolicy(
        budget_threshold=rng.choice((95.0, 50.0)),
        pinned=rng.choice(pool.credentials).name if rng.random() < 0.9 else "nobody",
        pricing=rng.choice(({"gpt-5.5": 1.25, "gpt-5.4": 0.5}, {"gpt-5.5": 1.25}, {})),
        latency_min_samples=rng.choice((0, 1, 3)),
    )
    for _ in range(5):
        request, now = _request(rng, pool), NOW + rng.uniform(-3600, 8 * 3600)
        draw = rng.randrange(2**32)
        plain, after_plain = _decide(True, request, pool, chain, draw, now, policy)
        indexed, after_indexed = _decide(False, request, pool, chain, draw, now, policy)
        assert after_indexed == after_plain  # the same random draws were taken
        assert type(indexed) is type(plain)
        limit = rng.randint(1, 8)  # bounded first: built from the index alone, as logged
        assert indexed.explain(limit) == plain.explain(limit)
        assert indexed.explain() == plain.explain()
        if isinstance(plain, Decision):
            assert isinstance(indexed, Decision)
            assert (indexed.credential, indexed.rotation, indexed.catch_up) == (
                plain.credential,
                plain.rotation,
                plain.catch_up,
            )


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 40))
def test_the_reducer_carries_the_columns_as_a_rebuild_would_make_them(seed: int, size: int) -> None:
    rng = random.Random(seed)
    pool = _pool(rng, size)
    pool.indexed()
    for name in KEYED:
        pool.indexed().by_key(name, "gpt-5.5", pool.states)  # carried from now on
    pool = _history(rng, pool, 3 * size)
    carried = pool.columns
    assert carried is not None
    rebuilt = Columns.of(pool.credentials, pool.states)
    np.testing.assert_array_equal(carried.state, rebuilt.state)
    assert carried.cooled == rebuilt.cooled
    for name in KEYED:
        np.testing.assert_array_equal(
            carried.by_key(name, "gpt-5.5", pool.states),
            rebuilt.by_key(name, "gpt-5.5", pool.states),
        )


def test_an_earlier_snapshot_keeps_its_own_columns() -> None:
    """Each snapshot keeps its own (copied on write; a keyed column an outcome did not change
    is shared)."""
    pool = _pool(random.Random(1), 30)
    before = pool.indexed().state.copy()
    key = f"default:{pool.credentials[0].id}"
    rotation = pool.indexed().by_key("rotation", key, pool.states).copy()
    later = apply(pool, Started(pool.credentials[0].id, NOW, rotation=key))
    assert later.columns is not None and later.columns is not pool.columns
    np.testing.assert_array_equal(pool.indexed().state, before)
    np.testing.assert_array_equal(pool.indexed().by_key("rotation", key, pool.states), rotation)
    carried = later.indexed().by_key("rotation", key, later.states)
    assert not np.array_equal(carried, rotation)  # the started one took its turn
    unchanged = apply(later, Started(pool.credentials[1].id, NOW))  # no rotation: shared
    assert unchanged.indexed().by_key("rotation", key, unchanged.states) is carried


def test_a_credential_is_found_by_id_with_or_without_columns() -> None:
    pool = _pool(random.Random(3), 30)
    plain = [pool.by_id(c.id) for c in pool.credentials] + [pool.by_id("nobody")]
    pool.indexed()
    assert [pool.by_id(c.id) for c in pool.credentials] + [pool.by_id("nobody")] == plain
    assert plain[:-1] == list(pool.credentials) and plain[-1] is None


class First:
    """A strategy of a plugin's making, without an indexed form."""

    name = "first"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        return Pick(candidates[0], "the first eligible")


def test_a_strategy_without_an_indexed_form_is_decided_by_the_loop() -> None:
    pool = _pool(random.Random(2), 40)
    request = RouteRequest(Route.RESPONSES, "gpt-5.5")
    chain = Sticky(First())
    assert not index.indexable(chain) and index.indexable(build_strategy("weighted"))
    decided = select(request, pool, strategy=chain, now=NOW, rng=random.Random(0))
    assert pool.columns is None  # nothing built for it
    assert isinstance(decided, Decision) and decided.reason == "the first eligible"


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), strategy=st.sampled_from(INDEXED))
def test_a_profiles_view_decides_from_its_rows_of_the_pools_columns(
    seed: int, strategy: str
) -> None:
    """A profile (some members, some weights of its own) reads its rows of the pool's columns:
    the same as columns built for its view, and the same decisions as the loop."""
    rng = random.Random(seed)
    base = _history(rng, _pool(rng, rng.randint(30, 60)), 80)
    rows = sorted(rng.sample(range(len(base.credentials)), rng.randint(1, len(base.credentials))))
    mine = tuple(
        replace(base.credentials[i], weight=2.0) if rng.random() < 0.3 else base.credentials[i]
        for i in rows
    )
    columns = base.indexed().subset(np.array(rows, np.intp), Fixed.of(mine))
    rebuilt = Columns.of(mine, base.states)
    np.testing.assert_array_equal(columns.state, rebuilt.state)
    assert columns.cooled == rebuilt.cooled
    view = PoolSnapshot(mine, base.states, base.sequence, columns)
    chain, policy = build_strategy(strategy), RoutingPolicy(pinned=mine[0].name)
    for _ in range(3):
        request, now, draw = (
            _request(rng, view),
            NOW + rng.uniform(-3600, 3600),
            rng.randrange(2**32),
        )
        plain, after_plain = _decide(True, request, view, chain, draw, now, policy)
        indexed, after_indexed = _decide(False, request, view, chain, draw, now, policy)
        assert after_indexed == after_plain
        assert indexed.explain(4) == plain.explain(4) and indexed.explain() == plain.explain()
