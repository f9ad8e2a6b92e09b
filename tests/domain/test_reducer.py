"""The reducer, table by table."""

from __future__ import annotations

import pytest

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.outcome import Abandoned, Failed, Limited, Outcome, Served, Started
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaReading, QuotaWindow
from quotapool.domain.reducer import apply, backoff_seconds
from quotapool.domain.state import CredentialState, Status

POOL = PoolSnapshot((Credential("a", "a", Kind.CODEX, "http://x"),))


def run(*outcomes: Outcome, pool: PoolSnapshot = POOL) -> PoolSnapshot:
    for outcome in outcomes:
        pool = apply(pool, outcome)
    return pool


def test_started_counts_in_flight_and_selection() -> None:
    pool = run(Started("a", 1.0), Started("a", 2.0))
    assert pool.state("a").in_flight == 2
    assert pool.sequence == 2 and pool.state("a").last_selected == 2


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Served("a", 5.0), {"in_flight": 0, "served": 1, "status": Status.ACTIVE}),
        (Abandoned("a", 5.0), {"in_flight": 0, "served": 0, "status": Status.ACTIVE}),
        (
            Limited("a", 5.0, Status.RATE_LIMITED, 65.0, "429 usage_limit_reached"),
            {"in_flight": 0, "status": Status.RATE_LIMITED, "until": 65.0},
        ),
        (
            Failed("a", 5.0, "upstream 502"),
            {"in_flight": 0, "consecutive_failures": 1, "backoff_until": 5.5},
        ),
    ],
)
def test_terminal_outcomes(outcome: Outcome, expected: dict[str, object]) -> None:
    state = run(Started("a", 0.0), outcome).state("a")
    for field, value in expected.items():
        assert getattr(state, field) == value


def test_in_flight_never_negative() -> None:
    assert run(Served("a", 1.0), Abandoned("a", 1.0)).state("a").in_flight == 0


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3, 4, 6, 50)] == [0.5, 1, 2, 4, 5, 5]
    pool = run(*(Failed("a", 100.0, "x") for _ in range(3)))
    assert pool.state("a").backoff_until == 102.0


def test_success_heals_failures_and_limits() -> None:
    pool = run(
        Failed("a", 1.0, "x"),
        Limited("a", 2.0, Status.QUOTA_EXCEEDED, 10.0, "quota"),
        Served("a", 20.0),
    )
    assert pool.state("a") == CredentialState(
        status=Status.ACTIVE, served=1, last_failure_at=1.0, reason=""
    )


def test_quota_readings_are_kept() -> None:
    reading = QuotaReading(primary=QuotaWindow(42.0, 500.0, 300))
    pool = run(
        Served("a", 1.0, reading), Served("a", 2.0, QuotaReading(secondary=QuotaWindow(9.0)))
    )
    state = pool.state("a")
    assert state.primary == QuotaWindow(42.0, 500.0, 300) and state.secondary == QuotaWindow(9.0)
    assert state.primary.used_at(499.0) == 42.0 and state.primary.used_at(500.0) == 0.0


def test_apply_does_not_mutate_its_input() -> None:
    before = run(Started("a", 0.0))
    apply(before, Served("a", 1.0))
    assert before.state("a").in_flight == 1
