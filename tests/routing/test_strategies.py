"""Every strategy and modifier, as playbooks; and the properties the issue asks to prove."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotapool.domain.outcome import Served
from quotapool.domain.reducer import apply
from quotapool.domain.state import Status
from quotapool.routing.base import Decision, Rejection
from tests.routing.playbook import Playbook
from tests.routing.playbook import credential as c


def test_fill_first_keeps_one_until_it_leaves_the_pool() -> None:
    book = Playbook("fill_first", c("b"), c("a"), c("c"))
    book.expect("a", "a", "a")
    book.usage("a", primary=90).expect("a")  # usage alone does not move traffic
    book.limited("a", until=2_000).expect("b", "b")
    book.at(2_000).expect("a")  # back by itself at its reset


def test_round_robin_rotates_and_honours_weights() -> None:
    Playbook("round_robin", c("a"), c("b"), c("c")).expect("a", "b", "c", "a", "b", "c")
    weighted = Playbook("round_robin", c("a", weight=2), c("b"))
    assert Counter(weighted.serve() for _ in range(30)) == {"a": 20, "b": 10}
    # Smooth: the heavier credential never takes long runs.
    smooth = Playbook("round_robin", c("a", weight=2), c("b"))
    order = "".join(smooth.serve() for _ in range(9))
    assert "aaa" not in order


def test_round_robin_counts_per_model() -> None:
    book = Playbook("round_robin", c("a"), c("b"))
    assert book.serve() == "a"
    book.model = "other-model"
    assert book.serve() == "b"  # its own counters: both at 0, a was used more recently
    book.model = "gpt-5.5"
    assert book.serve() == "b"


def test_weighted_and_capacity_weighted_follow_their_weights() -> None:
    weighted = Playbook("weighted", c("a", weight=3), c("b", weight=1), seed=7)
    counts = Counter(weighted.serve() for _ in range(4_000))
    assert counts["a"] / 4_000 == pytest.approx(0.75, abs=0.03)
    capacity = Playbook("capacity_weighted", c("pro", plan="pro"), c("plus", plan="plus"), seed=3)
    capacity.usage("pro", secondary=50).usage("plus", secondary=0)
    counts = Counter(capacity.serve() for _ in range(4_000))
    expected = 50_400 * 0.5 / (50_400 * 0.5 + 7_560)
    assert counts["pro"] / 4_000 == pytest.approx(expected, abs=0.03)


def test_expiry_weighted_spends_first_what_would_expire() -> None:
    book = Playbook("expiry_weighted", c("soon"), c("late"), c("idle"), c("tight"), seed=5)
    now = book.now
    book.usage("soon", secondary=50, resets_at=now + 24 * 3600)  # 3,780 left in 24 h
    book.usage("late", secondary=50, resets_at=now + 144 * 3600)  # the same in 144 h
    book.usage("tight", primary=80, secondary=50, resets_at=now + 24 * 3600)  # 5 h nearly out
    # idle: no reading, no running window: its whole capacity over a week
    weights = {"soon": 3780 / 24, "late": 3780 / 144, "idle": 7560 / 168, "tight": 3780 / 24 * 0.2}
    counts = Counter(book.serve() for _ in range(6_000))
    total = sum(weights.values())
    for name, weight in weights.items():
        assert counts[name] / 6_000 == pytest.approx(weight / total, abs=0.03), (name, counts)
    decision = book.decide()
    assert isinstance(decision, Decision)
    assert "weekly credits left ÷ hours to reset" in decision.reason
    assert decision.scores is not None and decision.scores[1]["soon"] == pytest.approx(157.5)


def test_capacity_weighted_counts_in_flight() -> None:
    book = Playbook("capacity_weighted", c("a"), c("b"), seed=1)
    book.usage("a", secondary=0).usage("b", secondary=0)
    for _ in range(38):
        book.set_state("a", in_flight=book.pool.state("a").in_flight + 1)
    # 38 in flight × 2.5 % = 95 % effectively used: b takes nearly everything.
    counts = Counter(book.decide().credential.id for _ in range(500))  # type: ignore[union-attr]
    assert counts["b"] > 450


def test_usage_weighted_least_busy_and_failover() -> None:
    usage = Playbook("usage_weighted", c("a"), c("b"), c("c"))
    usage.usage("a", secondary=40).usage("b", secondary=10).usage("c", secondary=10, primary=5)
    assert usage.serve() == "b"
    busy = Playbook("least_busy", c("a"), c("b"))
    assert busy.start() == "a" and busy.start() == "b" and busy.start() == "a"
    busy.set_state("a", in_flight=5)
    assert busy.start() == "b"
    order = Playbook("failover", c("z"), c("y"), c("x"))
    order.expect("z", "z").limited("z", until=5_000).expect("y").failed("y", 3).expect("x")


def test_least_latency_explores_then_exploits_and_never_records_zero() -> None:
    book = Playbook("least_latency", c("fast"), c("slow"), latency_min_samples=2)
    for _ in range(2):
        for expected, ttfb in (("fast", 100.0), ("slow", 900.0)):
            decided = book.decide()
            assert isinstance(decided, Decision) and decided.reason.startswith("exploring")
            assert book.serve(ttfb_ms=ttfb) == expected
    decided = book.decide()
    assert isinstance(decided, Decision) and decided.credential.id == "fast"
    assert decided.reason == "lowest time to first byte: 100 ms over 2 requests"
    book.pool = apply(book.pool, Served("slow", book.now, None, "gpt-5.5", 0.0))
    assert book.pool.state("slow").latency["gpt-5.5"].samples == 2  # a 0 ms sample is ignored


def test_least_cost_prices_the_model_actually_sent() -> None:
    book = Playbook(
        "least_cost",
        c("openai", kind="openai"),
        c("mapped", kind="openai", model_map=(("gpt-4.1", "gpt-4.1-mini"),)),
        c("reseller", kind="openai", prices=(("gpt-4.1", 1.0),)),
        pricing={"gpt-4.1": 3.5, "gpt-4.1-mini": 0.7},
    )
    book.model = "gpt-4.1"
    decided = book.decide()
    assert isinstance(decided, Decision) and decided.credential.id == "mapped"
    assert decided.reason == "cheapest: gpt-4.1-mini at $0.7 per million tokens"


def test_reset_drain_spends_the_soonest_reset_first() -> None:
    book = Playbook("reset_drain", c("late"), c("soon"), c("unknown"))
    book.usage("late", resets_at=90_000).usage("soon", resets_at=50_000)
    assert book.serve() == "soon"
    book.limited("soon", until=10_000)
    assert book.serve() == "late"


def test_single_is_pinned_even_when_others_could_serve() -> None:
    book = Playbook("single", c("a", priority=5), c("b"), pinned="b")
    decided = book.decide()
    assert isinstance(decided, Decision) and decided.credential.id == "b"
    assert {e.credential for e in decided.excluded} == {"a"}
    book.limited("b", until=3_000)
    assert isinstance(book.decide(), Rejection)


def test_priority_tiers_and_policies() -> None:
    book = Playbook("round_robin", c("low"), c("high", priority=1), c("high2", priority=1))
    book.expect("high", "high2", "high")
    book.limited("high", until=9_000).limited("high2", until=9_000).expect("low")
    policies = Playbook(
        "round_robin", c("keep", policy="preserve"), c("normal"), c("burn", policy="burn_first")
    )
    policies.expect("burn", "burn").limited("burn", until=9_000).expect("normal").limited(
        "normal", until=9_000
    ).expect("keep")


def test_budget_safe_prefers_under_threshold_then_falls_back() -> None:
    book = Playbook("fill_first", c("a"), c("b"))
    book.usage("a", primary=96).usage("b", primary=50)
    decided = book.decide()
    assert isinstance(decided, Decision) and decided.credential.id == "b"
    assert any("over budget" in e.reason for e in decided.excluded)
    book.usage("b", primary=99)
    assert book.serve() == "b"  # none under the threshold: all are candidates, most used first
    off = Playbook("fill_first", c("a"), c("b"), budget_safe=False).usage("a", primary=99)
    assert off.serve() == "a"


def test_prefer_earlier_reset_keeps_the_earliest_bucket() -> None:
    book = Playbook("round_robin", c("a"), c("b"), c("c"), prefer_earlier_reset=True)
    book.usage("a", resets_at=100_000).usage("b", resets_at=20_500).usage("c", resets_at=20_100)
    assert {book.serve() for _ in range(4)} == {"b", "c"}


def test_gated_model_bypasses_quota_exceeded_but_not_cooldown_or_backoff() -> None:
    book = Playbook("usage_weighted", c("a"), c("b"), c("d"))
    book.usage("a", secondary=99, spark=10).usage("b", spark=90).usage("d", secondary=0, spark=80)
    book.limited("a", until=9_000, status=Status.QUOTA_EXCEEDED)
    book.limited("b", until=9_000, status=Status.QUOTA_EXCEEDED).failed("b", 1)
    book.model, book.gate = "gpt-5.3-codex-spark", "spark"
    decided = book.decide()
    # a's standard week is spent, but the gated model ranks by its own "spark" limit: a wins.
    assert isinstance(decided, Decision) and decided.credential.id == "a"
    assert any(
        e.credential == "b" and e.reason.startswith("error backoff") for e in decided.excluded
    )
    # A 429 on the gated model cools only that model on that credential.
    book.limited("a", until=5_000, model="gpt-5.3-codex-spark")
    assert book.serve(gated=True) == "d"
    assert book.pool.state("a").status is Status.QUOTA_EXCEEDED
    book.at(5_000)
    assert book.serve(gated=True) == "a"  # serving the gated model does not heal the standard week
    assert book.pool.state("a").status is Status.QUOTA_EXCEEDED
    book.gate, book.model = None, "gpt-5.5"
    assert book.serve() == "d"  # standard requests still skip quota_exceeded accounts


def test_last_resort_is_the_least_recently_failed() -> None:
    book = Playbook("round_robin", c("a"), c("b"))
    book.at(100).failed("a").at(100.1).failed("b").at(100.2)
    decided = book.decide()
    assert isinstance(decided, Decision) and decided.credential.id == "a"
    assert decided.reason.startswith("probe")
    book.start()  # one probe at a time: the next request is not sent to a failing upstream
    rejected = book.decide()
    assert isinstance(rejected, Rejection) and rejected.outage
    assert not isinstance(book.decide(frozenset({"b"})), Decision)  # nor after a failed attempt
    book.at(101)  # a's backoff is over, but its probe is still in flight: b is probed
    assert book.start() == "b"
    assert isinstance(book.decide(), Rejection)


@given(
    st.sampled_from(
        ["fill_first", "round_robin", "failover", "usage_weighted", "least_busy", "reset_drain"]
    ),
    st.integers(0, 2**32),
)
def test_deterministic_strategies_ignore_the_rng(strategy: str, seed: int) -> None:
    def run(s: int) -> list[str]:
        book = Playbook(strategy, c("a"), c("b"), c("c"), seed=s)
        book.usage("b", primary=10, secondary=5, resets_at=50_000)
        return [book.serve() for _ in range(6)]

    assert run(seed) == run(seed + 1)


@settings(max_examples=60)
@given(st.floats(1_001, 100_000), st.floats(0, 1))
def test_a_limited_credential_returns_at_its_reset(reset: float, fraction: float) -> None:
    book = Playbook("fill_first", c("a"), c("b")).limited("a", until=reset)
    before = book.at(1_000 + (reset - 1_000) * fraction * 0.999).decide()
    assert isinstance(before, Decision) and before.credential.id == "b"
    after = book.at(reset).decide()
    assert isinstance(after, Decision) and after.credential.id == "a"


@given(
    st.lists(st.floats(0, 100), min_size=1, max_size=8),
    st.sampled_from(["fill_first", "round_robin", "capacity_weighted", "weighted", "least_busy"]),
)
def test_budget_safe_never_picks_over_threshold_while_under_exists(
    uses: list[float], strategy: str
) -> None:
    book = Playbook(strategy, *(c(f"c{i}") for i in range(len(uses))))
    for i, used in enumerate(uses):
        book.usage(f"c{i}", primary=used)
    decided = book.decide()
    assert isinstance(decided, Decision)
    chosen = uses[int(decided.credential.id[1:])]
    if any(u < 95 for u in uses):
        assert chosen < 95


def test_fill_first_drains_the_most_used_account_first() -> None:
    book = Playbook("fill_first", c("a"), c("b"), c("c"), budget_safe=False)
    book.usage("b", primary=40, secondary=10).usage("c", primary=40, secondary=70)
    book.expect("c", "c")  # most used 5 h window; a tie broken by the weekly window
    book.usage("a", primary=80).expect("a")  # now a is the most saturated
    book.limited("a", until=5_000).expect("c")  # traffic moves only when it leaves the pool


def test_fill_first_breaks_ties_by_the_chatgpt_account_id() -> None:
    # Unknown usage counts as 0 %; imported ids are random, the account id is stable.
    book = Playbook(
        "fill_first", c("x9", account_id="acct-2"), c("x1", account_id="acct-1"), c("key")
    )
    book.expect("x1")
    assert "most used first" in book.decide().reason  # type: ignore[union-attr]


def test_sequential_uses_priority_then_configured_order() -> None:
    book = Playbook("sequential", c("z"), c("y", priority=1), c("x"))
    book.usage("z", primary=90).expect("y", "y")
    book.limited("y", until=2_000).expect("z", "z")  # configured order, not usage or name
    book.limited("z", until=2_000).expect("x")


def test_a_returning_credential_rejoins_without_a_burst() -> None:
    book = Playbook("round_robin", c("a"), c("b"), c("c"))
    book.expect("a", "b", "c")
    book.limited("c", until=1_003)
    book.expect(*["a", "b"] * 5)
    served = book.at(1_003).expect("c", "a", "b", "c")
    assert (
        served.pool.state("c").rotations["gpt-5.5"] == served.pool.state("a").rotations["gpt-5.5"]
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["limit", "return"]), st.integers(0, 3), st.integers(0, 12)),
        min_size=1,
        max_size=20,
    )
)
def test_round_robin_never_gives_more_than_weight_plus_one_in_a_row(
    steps: list[tuple[str, int, int]],
) -> None:
    names = ["a", "b", "c", "d"]
    book = Playbook("round_robin", *(c(n) for n in names))
    out: set[str] = set()
    run_of, run = "", 0
    for action, index, serves in steps:
        name = names[index]
        if action == "limit" and len(out) < len(names) - 1:
            out.add(name)
            book.limited(name, until=1e12)
            book.set_state(name, status=Status.RATE_LIMITED, until=1e12)
        elif action == "return" and name in out:
            out.discard(name)
            book.set_state(name, status=Status.ACTIVE, until=None, in_flight=0)
        for _ in range(serves):
            served = book.serve()
            if len(names) - len(out) < 2:
                run_of, run = "", 0  # only one eligible: it takes every request, rightly
                continue
            run = run + 1 if served == run_of else 1
            run_of = served
            assert run <= 2, f"{served} picked {run} times in a row"
