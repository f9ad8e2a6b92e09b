"""`apply(snapshot, outcome) -> snapshot`: the one place pool state changes. Pure."""

from __future__ import annotations

from dataclasses import replace

from quotapool.domain.outcome import Abandoned, Failed, Limited, Outcome, Served, Started
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaReading
from quotapool.domain.state import LIMITED, CredentialState, Status

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0


def backoff_seconds(consecutive_failures: int) -> float:
    """5 s after the first failure, doubling, at most 5 minutes."""
    exponent = min(consecutive_failures - 1, 16)
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0**exponent)


def _with_quota(state: CredentialState, quota: QuotaReading | None) -> CredentialState:
    if quota is None:
        return state
    return replace(
        state,
        primary=quota.primary or state.primary,
        secondary=quota.secondary or state.secondary,
    )


def _release(state: CredentialState) -> int:
    return max(0, state.in_flight - 1)


def _next_state(snapshot: PoolSnapshot, outcome: Outcome) -> CredentialState:
    state = snapshot.state(outcome.credential_id)
    match outcome:
        case Started():
            return replace(
                state, in_flight=state.in_flight + 1, last_selected=snapshot.sequence + 1
            )
        case Served(quota=quota):
            healed = state.status in LIMITED
            return _with_quota(
                replace(
                    state,
                    in_flight=_release(state),
                    served=state.served + 1,
                    consecutive_failures=0,
                    backoff_until=0.0,
                    status=Status.ACTIVE if healed else state.status,
                    until=None if healed else state.until,
                    reason="" if healed else state.reason,
                ),
                quota,
            )
        case Limited(at=at, status=status, until=until, reason=reason, quota=quota):
            return _with_quota(
                replace(
                    state,
                    in_flight=_release(state),
                    status=status,
                    until=max(until, at),
                    reason=reason,
                ),
                quota,
            )
        case Failed(at=at, reason=reason):
            failures = state.consecutive_failures + 1
            return replace(
                state,
                in_flight=_release(state),
                consecutive_failures=failures,
                last_failure_at=at,
                backoff_until=at + backoff_seconds(failures),
                reason=reason,
            )
        case Abandoned():
            return replace(state, in_flight=_release(state))


def apply(snapshot: PoolSnapshot, outcome: Outcome) -> PoolSnapshot:
    """Return the snapshot after `outcome`.

    >>> from quotapool.domain.credential import Credential, Kind
    >>> pool = PoolSnapshot((Credential("a", "a", Kind.OPENAI, "http://x"),))
    >>> apply(pool, Started("a", at=0.0)).state("a").in_flight
    1
    """
    states = dict(snapshot.states)
    states[outcome.credential_id] = _next_state(snapshot, outcome)
    sequence = snapshot.sequence + 1 if isinstance(outcome, Started) else snapshot.sequence
    return PoolSnapshot(snapshot.credentials, states, sequence)
