"""select(): eligibility, tiers, strategies, rejections, and properties over random pools."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.outcome import Failed, Limited, Started
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.reducer import apply
from quotapool.domain.request import Route, RouteRequest
from quotapool.domain.state import CredentialState, Status
from quotapool.routing.base import Decision, Rejection, RoutingPolicy
from quotapool.routing.engine import select
from quotapool.routing.filters import exclusion, mismatch
from quotapool.routing.registry import STRATEGIES, build_strategy, get_strategy

RNG = random.Random(0)
RR = get_strategy("round_robin")
RESPONSES = RouteRequest(Route.RESPONSES, "gpt-5.5")


def cred(
    cid: str, kind: Kind = Kind.CODEX, models: tuple[str, ...] = (), priority: int = 0
) -> Credential:
    return Credential(cid, cid, kind, "http://x", frozenset(models), priority=priority)


def pick(
    pool: PoolSnapshot,
    request: RouteRequest = RESPONSES,
    now: float = 0.0,
    strategy: str = "round_robin",
) -> Decision | Rejection:
    return select(request, pool, strategy=get_strategy(strategy), now=now, rng=RNG)


def test_round_robin_rotates_through_the_pool() -> None:
    pool = PoolSnapshot((cred("a"), cred("b"), cred("c")))
    order = []
    for _ in range(6):
        decision = pick(pool)
        assert isinstance(decision, Decision)
        order.append(decision.credential.id)
        pool = apply(pool, Started(decision.credential.id, 0.0))
    assert order == ["a", "b", "c", "a", "b", "c"]


def test_fill_first_sticks_to_one_until_it_leaves() -> None:
    pool = PoolSnapshot((cred("b"), cred("a"), cred("c")))
    assert pick(pool, strategy="fill_first").credential.id == "a"  # type: ignore[union-attr]
    pool = apply(pool, Limited("a", 0.0, Status.RATE_LIMITED, 100.0, "429"))
    assert pick(pool, now=50.0, strategy="fill_first").credential.id == "b"  # type: ignore[union-attr]
    assert pick(pool, now=100.0, strategy="fill_first").credential.id == "a"  # type: ignore[union-attr]


def test_exclusions_explain_themselves() -> None:
    pool = PoolSnapshot(
        (
            cred("limited"),
            cred("failing"),
            cred("paused"),
            cred("anthropic", Kind.ANTHROPIC),
            cred("other-model", models=("gpt-4.1",)),
            cred("tried"),
            cred("ok"),
        ),
        {
            "limited": CredentialState(
                Status.RATE_LIMITED, until=60.0, reason="429 usage_limit_reached"
            ),
            "failing": CredentialState(
                consecutive_failures=2, backoff_until=30.0, reason="upstream 502"
            ),
            "paused": CredentialState(Status.PAUSED),
        },
    )
    request = RouteRequest(Route.RESPONSES, "gpt-5.5", frozenset({"tried"}))
    decision = pick(pool, request, now=10.0)
    assert isinstance(decision, Decision) and decision.credential.id == "ok"
    reasons = {e.credential: e.reason for e in decision.excluded}
    assert reasons == {
        "limited": "rate_limited: 429 usage_limit_reached",
        "failing": "error backoff after 2 failure(s): upstream 502",
        "paused": "paused",
        "anthropic": "an Anthropic key serves Claude models on the responses API (or the "
        "models it lists)",
        "other-model": "model gpt-5.5 not served",
        "tried": "already tried for this request",
    }
    assert decision.explain()["selected"] == "ok"
    assert decision.route_header == "round_robin; credential=ok"


def test_only_the_best_priority_tier_is_used() -> None:
    pool = PoolSnapshot((cred("low", priority=0), cred("high", priority=5)))
    decision = pick(pool)
    assert isinstance(decision, Decision) and decision.credential.id == "high"
    pool = apply(pool, Failed("high", 0.0, "x"))
    assert pick(pool, now=0.2).credential.id == "low"  # type: ignore[union-attr]
    assert pick(pool, now=1.0).credential.id == "high"  # type: ignore[union-attr]  # probed


def test_rejection_carries_the_soonest_comeback() -> None:
    pool = PoolSnapshot(
        (cred("a"), cred("b"), cred("p")),
        {
            "a": CredentialState(Status.QUOTA_EXCEEDED, until=500.0),
            "b": CredentialState(Status.RATE_LIMITED, until=200.0),
            "p": CredentialState(Status.PAUSED),
        },
    )
    rejection = pick(pool, now=100.0)
    assert isinstance(rejection, Rejection)
    assert rejection.retry_at == 200.0 and not rejection.no_match
    none_serve = pick(pool, RouteRequest(Route.COUNT_TOKENS, "claude"))
    assert isinstance(none_serve, Rejection) and none_serve.no_match and none_serve.retry_at is None


def test_unknown_strategy_names_the_known_ones() -> None:
    try:
        get_strategy("nope")
    except ValueError as exc:
        assert "fill_first" in str(exc) and "round_robin" in str(exc)
    else:
        raise AssertionError("expected ValueError")


states = st.builds(
    CredentialState,
    status=st.sampled_from(list(Status)),
    until=st.one_of(st.none(), st.floats(0, 1000)),
    backoff_until=st.floats(0, 1000),
    in_flight=st.integers(0, 5),
    last_selected=st.integers(0, 50),
)


@given(
    entries=st.lists(
        st.tuples(st.sampled_from(list(Kind)), st.booleans(), st.integers(0, 2), states),
        max_size=12,
    ),
    now=st.floats(0, 1000),
    strategy=st.sampled_from(sorted(STRATEGIES)),
)
def test_never_picks_an_ineligible_credential(
    entries: list[tuple[Kind, bool, int, CredentialState]], now: float, strategy: str
) -> None:
    credentials = tuple(
        cred(f"c{i}", kind, ("gpt-5.5",) if serves else ("other",), priority)
        for i, (kind, serves, priority, _) in enumerate(entries)
    )
    pool = PoolSnapshot(credentials, {f"c{i}": e[3] for i, e in enumerate(entries)})
    policy = RoutingPolicy(pinned="c0")
    choice = select(
        RESPONSES, pool, strategy=build_strategy(strategy), now=now, rng=RNG, policy=policy
    )
    reasons = {c.id: exclusion(c, pool.state(c.id), RESPONSES, now) for c in credentials}
    eligible = [c for c in credentials if reasons[c.id] is None]
    if isinstance(choice, Decision) and choice.reason.startswith("probe"):
        # Only when every matching credential is merely backing off, one request at a time.
        matching = [c for c in credentials if mismatch(c, RESPONSES) is None]
        assert not eligible and matching and pool.state(choice.credential.id).in_flight == 0
        assert all(reasons[c.id].reason.startswith("error backoff") for c in matching)  # type: ignore[union-attr]
    elif isinstance(choice, Decision):
        assert choice.credential in eligible
        if strategy != "single":
            assert choice.credential.priority == max(c.priority for c in eligible)
    else:
        assert not eligible or strategy == "single"
        if choice.retry_at is not None:
            assert choice.retry_at > now


def test_a_claude_model_goes_to_an_anthropic_key_before_a_stand_in() -> None:
    pool = PoolSnapshot((cred("codex", Kind.CODEX), cred("claude", Kind.ANTHROPIC)))
    request = RouteRequest(Route.MESSAGES, "claude-sonnet-5-5", stand_in="gpt-5.5")
    decision = pick(pool, request)
    assert isinstance(decision, Decision) and decision.credential.id == "claude"
    assert {e.credential: e.reason for e in decision.excluded} == {
        "codex": "serves a stand-in for claude-sonnet-5-5; an Anthropic key serves it itself"
    }
    limited = apply(pool, Limited("claude", 0.0, Status.RATE_LIMITED, 600.0, "429"))
    fallback = pick(limited, request)
    assert isinstance(fallback, Decision) and fallback.credential.id == "codex"
    other = pick(pool, RouteRequest(Route.RESPONSES, "gpt-5.5"))
    assert isinstance(other, Decision) and other.credential.id == "codex"
