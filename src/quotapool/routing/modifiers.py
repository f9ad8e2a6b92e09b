"""Modifiers: strategies that narrow the candidates, then delegate to the one they wrap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from quotapool.domain.credential import POLICY_RANK, Credential
from quotapool.routing.base import Candidate, Context, Exclusion, Pick, Strategy
from quotapool.routing.usage import primary_used, resets_at


def _narrowed(
    inner: Strategy,
    candidates: Sequence[Candidate],
    ctx: Context,
    keep: Sequence[bool],
    why: Callable[[int], str],
) -> Pick | None:
    """Delegate with the candidates `keep` marks (all of them if it marks none); the others
    are explained by `why(their index)`."""
    kept = [c for c, wanted in zip(candidates, keep, strict=True) if wanted]
    if not kept or len(kept) == len(candidates):
        return inner.pick(candidates, ctx)
    pick = inner.pick(kept, ctx)
    if pick is None:
        return None
    dropped = tuple(
        Exclusion(c.credential.name, why(i))
        for i, (c, wanted) in enumerate(zip(candidates, keep, strict=True))
        if not wanted
    )
    return pick._replace(excluded=dropped + pick.excluded)


@lru_cache(maxsize=16)
def _uniform(credentials: tuple[Credential, ...]) -> tuple[bool, bool]:
    """Whether every credential shares one priority, and one policy (then tiers are no-ops)."""
    return (
        len({c.priority for c in credentials}) <= 1,
        len({c.policy for c in credentials}) <= 1,
    )


class Sticky:
    """Keep a conversation on the account that holds its prompt cache while that account is
    eligible and within budget (or nothing better is); otherwise let the strategy re-bind it."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        bound = ctx.request.affinity
        if bound is not None:
            threshold = ctx.policy.budget_threshold
            for candidate in candidates:
                if candidate.credential.id != bound:
                    continue
                if primary_used(candidate, ctx, in_flight=False) < threshold or all(
                    primary_used(c, ctx, in_flight=False) >= threshold for c in candidates
                ):
                    return Pick(
                        candidate, "session affinity: the conversation stays on its account"
                    )
                break
        return self.inner.pick(candidates, ctx)


class PriorityTiers:
    """Only the highest priority tier with an eligible credential is considered."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        if _uniform(ctx.snapshot.credentials)[0]:
            return self.inner.pick(candidates, ctx)
        priorities = [c.credential.priority for c in candidates]
        top = max(priorities)
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            [p == top for p in priorities],
            lambda i: f"lower priority tier ({priorities[i]} < {top})",
        )


class PolicyTiers:
    """Within a tier: burn_first before normal before preserve."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        if _uniform(ctx.snapshot.credentials)[1]:
            return self.inner.pick(candidates, ctx)
        ranks = [POLICY_RANK[c.credential.policy] for c in candidates]
        best = min(ranks)
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            [rank == best for rank in ranks],
            lambda i: (
                f"policy {candidates[i].credential.policy.value} waits while others can serve"
            ),
        )


class BudgetSafe:
    """Prefer credentials below the budget threshold whenever any exist; when none is, all
    remain candidates (a pool near its limits still serves).

    Measured on what the upstream reported, not on in-flight estimates: a burst alone must not
    push a fill_first pool off its account."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        threshold = ctx.policy.budget_threshold
        used = [primary_used(c, ctx, in_flight=False) for c in candidates]
        if max(used) < threshold:
            return self.inner.pick(candidates, ctx)
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            [u < threshold for u in used],
            lambda i: f"over budget ({used[i]:.0f}% ≥ {threshold:g}% of 5 h window)",
        )


class PreferEarlierReset:
    """Keep only candidates whose weekly quota resets in the earliest bucket."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        size = ctx.policy.reset_bucket_seconds
        buckets = [r // size if (r := resets_at(c, ctx)) else None for c in candidates]
        known = [b for b in buckets if b is not None]
        if not known:
            return self.inner.pick(candidates, ctx)
        first = min(known)
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            [b == first for b in buckets],
            lambda _i: "a quota resetting earlier is used first",
        )
