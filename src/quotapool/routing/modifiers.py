"""Modifiers: strategies that narrow the candidates, then delegate to the one they wrap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache

from quotapool.domain.credential import POLICY_RANK, Credential
from quotapool.routing.base import Candidate, Context, Exclusion, Pick, Strategy
from quotapool.routing.usage import primary_used, resets_at


def _narrowed(
    inner: Strategy,
    candidates: Sequence[Candidate],
    ctx: Context,
    keep: Callable[[Candidate], bool],
    why: Callable[[Candidate], str],
) -> Pick | None:
    kept = [c for c in candidates if keep(c)]
    if not kept or len(kept) == len(candidates):
        return inner.pick(candidates, ctx)
    pick = inner.pick(kept, ctx)
    if pick is None:
        return None
    dropped = tuple(Exclusion(c.credential.name, why(c)) for c in candidates if not keep(c))
    return replace(pick, excluded=dropped + pick.excluded)


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
        top = max(c.credential.priority for c in candidates)
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            lambda c: c.credential.priority == top,
            lambda c: f"lower priority tier ({c.credential.priority} < {top})",
        )


class PolicyTiers:
    """Within a tier: burn_first before normal before preserve."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        if _uniform(ctx.snapshot.credentials)[1]:
            return self.inner.pick(candidates, ctx)
        best = min(POLICY_RANK[c.credential.policy] for c in candidates)
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            lambda c: POLICY_RANK[c.credential.policy] == best,
            lambda c: f"policy {c.credential.policy.value} waits while others can serve",
        )


class BudgetSafe:
    """Prefer credentials below the budget threshold whenever any exist (seed 002).

    Measured on what the upstream reported, not on in-flight estimates: a burst alone must not
    push a fill_first pool off its account."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        threshold = ctx.policy.budget_threshold
        used = {c.credential.id: primary_used(c, ctx, in_flight=False) for c in candidates}
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            lambda c: used[c.credential.id] < threshold,
            lambda c: f"over budget ({used[c.credential.id]:.0f}% ≥ {threshold:g}% of 5 h window)",
        )


class PreferEarlierReset:
    """Keep only candidates whose weekly quota resets in the earliest bucket."""

    def __init__(self, inner: Strategy) -> None:
        self.inner, self.name = inner, inner.name

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        size = ctx.policy.reset_bucket_seconds
        buckets = {
            c.credential.id: (r // size if (r := resets_at(c, ctx)) else None) for c in candidates
        }
        known = [b for b in buckets.values() if b is not None]
        if not known:
            return self.inner.pick(candidates, ctx)
        first = min(known)
        return _narrowed(
            self.inner,
            candidates,
            ctx,
            lambda c: buckets[c.credential.id] == first,
            lambda c: "a quota resetting earlier is used first",
        )
