"""Modifiers: strategies that narrow the candidates, then delegate to the one they wrap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from quotapool.domain.columns import WEEK_RESET, Rows
from quotapool.domain.credential import POLICY_RANK, Credential
from quotapool.routing.base import Candidate, Context, Exclusion, Pick, Strategy
from quotapool.routing.index import RowPick, View, narrowed
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


# Why a modifier set a candidate aside: one text for its `pick` and its `pick_rows`.


def _lower_tier(priority: int, top: int) -> str:
    return f"lower priority tier ({priority} < {top})"


def _policy_waits(credential: Credential) -> str:
    return f"policy {credential.policy.value} waits while others can serve"


def _over_budget(used: float, threshold: float) -> str:
    return f"over budget ({used:.0f}% ≥ {threshold:g}% of 5 h window)"


EARLIER_RESET = "a quota resetting earlier is used first"


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

    def pick_rows(self, rows: Rows, view: View) -> RowPick | None:
        bound = view.ctx.request.affinity
        row = view.columns.fixed.row.get(bound) if bound is not None else None
        if row is not None and (at := np.flatnonzero(rows == row)).size:
            threshold = view.ctx.policy.budget_threshold
            used = view.short_used(rows, in_flight=False)
            if used[at[0]] < threshold or bool((used >= threshold).all()):
                return RowPick(row, "session affinity: the conversation stays on its account")
        return self.inner.pick_rows(rows, view)  # type: ignore[attr-defined, no-any-return]


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
            lambda i: _lower_tier(priorities[i], top),
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick | None:
        inner = self.inner
        if not view.columns.fixed.tiers[0]:
            return inner.pick_rows(rows, view)  # type: ignore[attr-defined, no-any-return]
        priorities = view.columns.fixed.priority[rows]
        top = int(priorities.max())
        why = lambda r: _lower_tier(view.credential(r).priority, top)  # noqa: E731
        return narrowed(inner, rows, view, priorities == top, why)  # type: ignore[arg-type]


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
            lambda i: _policy_waits(candidates[i].credential),
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick | None:
        inner = self.inner
        if not view.columns.fixed.tiers[1]:
            return inner.pick_rows(rows, view)  # type: ignore[attr-defined, no-any-return]
        ranks = view.columns.fixed.policy_rank[rows]
        why = lambda r: _policy_waits(view.credential(r))  # noqa: E731
        return narrowed(inner, rows, view, ranks == ranks.min(), why)  # type: ignore[arg-type]


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
            lambda i: _over_budget(used[i], threshold),
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick | None:
        threshold = view.ctx.policy.budget_threshold
        used = view.short_used(rows, in_flight=False)
        inner = self.inner
        if used.max() < threshold:
            return inner.pick_rows(rows, view)  # type: ignore[attr-defined, no-any-return]

        def why(row: int) -> str:
            return _over_budget(float(used[np.searchsorted(rows, row)]), threshold)

        return narrowed(inner, rows, view, used < threshold, why)  # type: ignore[arg-type]


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
            lambda _i: EARLIER_RESET,
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick | None:
        size, now = view.ctx.policy.reset_bucket_seconds, view.ctx.now
        resets = view.columns.state[WEEK_RESET, rows]
        known = resets > now  # (a NaN reset: none announced)
        inner = self.inner
        if not known.any():
            return inner.pick_rows(rows, view)  # type: ignore[attr-defined, no-any-return]
        buckets = np.where(known, resets // size, np.inf)
        keep = buckets == buckets.min()
        why = lambda _r: EARLIER_RESET  # noqa: E731
        return narrowed(inner, rows, view, keep, why)  # type: ignore[arg-type]
