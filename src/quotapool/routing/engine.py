"""`select(request, snapshot, *, now, rng) -> Decision | Rejection`. Pure."""

from __future__ import annotations

import random

from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import RouteRequest
from quotapool.routing.base import Candidate, Decision, Exclusion, Rejection, Strategy
from quotapool.routing.filters import comes_back_at, exclusion, mismatch


def select(
    request: RouteRequest,
    snapshot: PoolSnapshot,
    *,
    strategy: Strategy,
    now: float,
    rng: random.Random,
) -> Decision | Rejection:
    """Choose the credential for `request`, or say why none can serve it.

    Only the highest priority tier with an eligible credential is considered.
    """
    candidates: list[Candidate] = []
    excluded: list[Exclusion] = []
    for credential in snapshot.credentials:
        state = snapshot.state(credential.id)
        why = exclusion(credential, state, request, now)
        if why is None:
            candidates.append(Candidate(credential, state))
        else:
            excluded.append(why)
    if not candidates:
        return _reject(request, snapshot, strategy.name, tuple(excluded), now)
    top = max(c.credential.priority for c in candidates)
    tier = [c for c in candidates if c.credential.priority == top]
    excluded.extend(
        Exclusion(c.credential.name, f"lower priority tier ({c.credential.priority} < {top})")
        for c in candidates
        if c.credential.priority != top
    )
    winner, reason = strategy.pick(request, tier, snapshot, rng)
    return Decision(
        credential=winner.credential,
        strategy=strategy.name,
        reason=reason,
        candidates=tuple(c.credential.name for c in tier),
        excluded=tuple(excluded),
    )


def _reject(
    request: RouteRequest,
    snapshot: PoolSnapshot,
    strategy: str,
    excluded: tuple[Exclusion, ...],
    now: float,
) -> Rejection:
    matching = [c for c in snapshot.credentials if mismatch(c, request) is None]
    if not matching:
        return Rejection(
            strategy,
            f"no credential in the pool serves model {request.model!r} on the {request.route} API",
            excluded,
            retry_at=None,
            no_match=True,
        )
    resets = [t for c in matching if (t := comes_back_at(snapshot.state(c.id), now)) is not None]
    retry_at = min(resets) if resets else None
    return Rejection(
        strategy,
        "every credential that serves this model is unavailable",
        excluded,
        retry_at=retry_at,
        no_match=False,
    )
