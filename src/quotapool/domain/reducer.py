"""`apply(snapshot, outcome) -> snapshot`: the one place pool state changes. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

from quotapool.domain.outcome import (
    Abandoned,
    BusyElsewhere,
    Failed,
    Limited,
    Observed,
    Outcome,
    Refreshed,
    Served,
    Started,
    StatusSet,
)
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaReading
from quotapool.domain.state import LIMITED, CredentialState, Latency, Status

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0
"""A failing credential is probed (one request at a time) after this backoff; a success
restores it at once. Short, so a pool is back within seconds of an upstream's recovery."""
LATENCY_ALPHA = 0.3
"""Weight of the newest sample in the latency average."""

V = TypeVar("V")


def backoff_seconds(consecutive_failures: int) -> float:
    """0.5 s after the first failure, doubling, at most 5 s."""
    exponent = min(consecutive_failures - 1, 16)
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0**exponent)


def _set(mapping: Mapping[str, V], key: str, value: V) -> Mapping[str, V]:
    return {**mapping, key: value}


_new_state = object.__new__


def _evolve(state: CredentialState, changes: dict[str, Any]) -> CredentialState:
    """`dataclasses.replace` at a quarter of its cost (this runs twice a request): the frozen
    instance's dict is copied and updated, skipping `__init__` and the frozen `__setattr__`."""
    new = _new_state(CredentialState)
    values = new.__dict__
    values.update(state.__dict__)
    values.update(changes)
    return new


def _quota_changes(state: CredentialState, quota: QuotaReading) -> dict[str, Any]:
    additional = state.additional
    if quota.additional:
        additional = {
            **additional,
            **{
                key: seen.merged(new) if (seen := additional.get(key)) else new
                for key, new in quota.additional.items()
            },
        }
    return {
        "primary": quota.primary or state.primary,
        "secondary": quota.secondary or state.secondary,
        "credits": quota.credits or state.credits,
        "additional": additional,
    }


def _with_quota(state: CredentialState, quota: QuotaReading | None) -> CredentialState:
    if quota is None:
        return state
    return _evolve(state, _quota_changes(state, quota))


def _latency(state: CredentialState, model: str, ttfb_ms: float | None) -> Mapping[str, Latency]:
    if ttfb_ms is None or ttfb_ms <= 0:
        return state.latency
    seen = state.latency.get(model)
    if seen is None:
        return _set(state.latency, model, Latency(ttfb_ms, 1))
    ewma = seen.ewma_ms + LATENCY_ALPHA * (ttfb_ms - seen.ewma_ms)
    return _set(state.latency, model, Latency(ewma, seen.samples + 1))


def _release(state: CredentialState) -> int:
    return max(0, state.in_flight - 1)


def _served(state: CredentialState, outcome: Served) -> CredentialState:
    changes: dict[str, Any] = {
        "in_flight": _release(state),
        "served": state.served + 1,
        "latency": _latency(state, outcome.model, outcome.ttfb_ms),
    }
    if state.consecutive_failures or state.backoff_until:
        changes.update(consecutive_failures=0, backoff_until=0.0)
    if state.status in LIMITED and not outcome.gated:
        changes.update(status=Status.ACTIVE, until=None, reason="")
    if (quota := outcome.quota) is not None:
        changes.update(_quota_changes(state, quota))
    return _evolve(state, changes)


def _limited(state: CredentialState, outcome: Limited) -> CredentialState:
    until = max(outcome.until, outcome.at)
    in_flight = _release(state) if outcome.ends else state.in_flight
    if outcome.model is not None:  # only this model's own quota is out
        cooldowns = _set(state.model_cooldowns, outcome.model, until)
        return _with_quota(
            replace(state, in_flight=in_flight, model_cooldowns=cooldowns), outcome.quota
        )
    return _with_quota(
        replace(
            state,
            in_flight=in_flight,
            status=outcome.status,
            until=until,
            reason=outcome.reason,
        ),
        outcome.quota,
    )


def _next_state(snapshot: PoolSnapshot, outcome: Outcome) -> CredentialState:
    state = snapshot.state(outcome.credential_id)
    match outcome:
        case Started(rotation=rotation, catch_up=catch_up):
            if rotation is None:
                return _evolve(state, {"in_flight": state.in_flight + 1})
            count = max(state.rotations.get(rotation, 0.0), catch_up) + 1
            return _evolve(
                state,
                {
                    "in_flight": state.in_flight + 1,
                    "last_selected": snapshot.sequence + 1,
                    "rotations": _set(state.rotations, rotation, count),
                },
            )
        case Served():
            return _served(state, outcome)
        case Limited():
            return _limited(state, outcome)
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
        case StatusSet(status=status, reason=reason):
            return replace(state, status=status, until=None, reason=reason)
        case Observed(quota=quota):
            return _with_quota(state, quota)
        case BusyElsewhere(count=count):
            return replace(state, busy_elsewhere=count)
        case Refreshed():
            back = state.status is Status.REAUTH_REQUIRED
            return replace(
                state,
                consecutive_failures=0,
                backoff_until=0.0,
                status=Status.ACTIVE if back else state.status,
                reason="" if back else state.reason,
            )


def apply(snapshot: PoolSnapshot, outcome: Outcome) -> PoolSnapshot:
    """Return the snapshot after `outcome`.

    >>> from quotapool.domain.credential import Credential, Kind
    >>> pool = PoolSnapshot((Credential("a", "a", Kind.OPENAI, "http://x"),))
    >>> apply(pool, Started("a", at=0.0)).state("a").in_flight
    1
    """
    return _with(snapshot, outcome, _next_state(snapshot, outcome))


def _with(snapshot: PoolSnapshot, outcome: Outcome, state: CredentialState) -> PoolSnapshot:
    """The snapshot with `state` as the state `outcome` left its credential in."""
    states = dict(snapshot.states)
    states[outcome.credential_id] = state
    counted = isinstance(outcome, Started) and outcome.rotation is not None
    sequence = snapshot.sequence + 1 if counted else snapshot.sequence
    columns = snapshot.columns
    if columns is not None:
        columns = columns.updated(outcome.credential_id, state)
    return PoolSnapshot(snapshot.credentials, states, sequence, columns)


def apply_elsewhere(snapshot: PoolSnapshot, outcome: Outcome) -> PoolSnapshot:
    """The snapshot after an outcome another replica observed: the same change, except the
    in-flight count, which is each replica's own (the request was in flight there).

    >>> from quotapool.domain.credential import Credential, Kind
    >>> pool = PoolSnapshot((Credential("a", "a", Kind.OPENAI, "http://x"),))
    >>> after = apply_elsewhere(apply(pool, Started("a", 0.0)), Failed("a", 1.0, "502"))
    >>> after.state("a").in_flight, after.state("a").consecutive_failures
    (1, 1)
    """
    held = snapshot.state(outcome.credential_id).in_flight
    state = _next_state(snapshot, outcome)
    if state.in_flight != held:
        state = _evolve(state, {"in_flight": held})
    return _with(snapshot, outcome, state)
