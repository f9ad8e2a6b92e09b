"""Decisions over a large pool read from its columns (`domain.columns`). Pure.

The same rules as the engine's loop and the strategies' `pick`, as array arithmetic over the
eligible rows: a strategy (or modifier) that has an indexed form says so with `pick_rows`, next
to its `pick`, and both give the same answer for the same pool, request, clock and random
draws (tests/routing/test_index.py). The explanation is built only when read (`Decision`'s
`later`), from what the decision kept: the columns it read, the eligible rows, and what each
modifier set aside.

`decide` answers None when the request or the strategy has no indexed form, or when no
credential is eligible: the engine's loop then decides (and explains a rejection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np

from quotapool.domain.columns import (
    BACK_AT,
    BUSY,
    SHORT_RESET,
    SHORT_USED,
    WEEK_RESET,
    WEEK_USED,
    Bools,
    Columns,
    Fixed,
    Floats,
    Rows,
)
from quotapool.domain.credential import Credential
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import CLAUDE_CODE, RouteRequest
from quotapool.routing.base import (
    Candidate,
    Context,
    Decision,
    Detail,
    Exclusion,
    Scores,
    Strategy,
)
from quotapool.routing.filters import exclusion, mismatch

INDEX_FROM = 24
"""Pools of at least this many credentials are decided from their columns; below, the loop
is as fast (array calls have a fixed cost of their own)."""


class Set(NamedTuple):
    """Rows a modifier set aside, and why (given a row)."""

    rows: Rows
    why: Callable[[int], str]


class RowPick(NamedTuple):
    """`Pick` by row: the winner, why, who was set aside, and the scores (by row) if any."""

    winner: int
    reason: str
    set_aside: tuple[Set, ...] = ()
    scores: tuple[str, Rows, Floats] | None = None
    catch_up: float = 0.0


class View:
    """What an indexed pick may read: the request's context and the pool's columns.

    Arithmetic runs over whole columns (contiguous, cheaper than gathering the eligible rows
    first), each result kept for the decision; a pick takes its rows from it."""

    __slots__ = ("_kept", "columns", "ctx")

    def __init__(self, ctx: Context, columns: Columns) -> None:
        self.ctx, self.columns = ctx, columns
        self._kept: dict[str, Floats] = {}

    def credential(self, row: int) -> Credential:
        return self.columns.fixed.credentials[row]

    def candidate(self, row: int) -> Candidate:
        credential = self.credential(row)
        return Candidate(credential, self.ctx.snapshot.state(credential.id))

    def short_used(self, rows: Rows, *, in_flight: bool = True) -> Floats:
        """`usage.primary_used` of each row."""
        return self.whole("short_busy" if in_flight else "short")[rows]

    def week_used(self, rows: Rows, *, in_flight: bool = True) -> Floats:
        """`usage.secondary_used` of each row."""
        return self.whole("week_busy" if in_flight else "week")[rows]

    def whole(self, name: str) -> Floats:
        """A column of every credential: "busy" (in flight × the penalty), "short" and "week"
        (a window's use; 0 past the reset it announced), "short_busy" and "week_busy" (with
        the requests in flight)."""
        found = self._kept.get(name)
        if found is None:
            state = self.columns.state
            if name == "busy":
                found = self.ctx.policy.in_flight_penalty * state[BUSY]
            elif name in ("short", "week"):
                used, reset = (
                    (SHORT_USED, SHORT_RESET) if name == "short" else (WEEK_USED, WEEK_RESET)
                )
                # A NaN reset (none announced) compares false: the reading holds.
                found = np.where(state[reset] <= self.ctx.now, 0.0, state[used])
            else:
                found = self.whole(name.removesuffix("_busy")) + self.whole("busy")
            self._kept[name] = found
        return found

    def first(self, rows: Rows, *keys: Floats) -> int:
        """The row that sorts first by `keys` (the first key first), then by credential id."""
        return int(rows[self.first_at(rows, *keys)])

    def first_at(self, rows: Rows, *keys: Floats, then: Floats | None = None) -> int:
        """Where in `rows` the first by `keys` is, then by `then` (ranks of the rows, all
        distinct: by default of their credential ids). Ties are narrowed key by key, as a
        tuple compares (cheaper than sorting: most keys leave one row)."""
        at: Rows = np.arange(rows.size)
        for key in keys:
            values = key[at]
            at = at[values == values.min()]
            if at.size == 1:
                return int(at[0])
        ranks = (self.columns.fixed.id_rank[rows] if then is None else then)[at]
        return int(at[np.argmin(ranks)])


class IndexedStrategy(Protocol):
    """A strategy or modifier with an indexed form of its `pick`."""

    name: str

    def pick_rows(self, rows: Rows, view: View) -> RowPick | None: ...


def narrowed(
    inner: IndexedStrategy, rows: Rows, view: View, keep: Bools, why: Callable[[int], str]
) -> RowPick | None:
    """`modifiers._narrowed` by row: delegate with the rows `keep` marks (all if it marks none
    or every one); the others are set aside with `why`."""
    kept = rows[keep]
    if not kept.size or kept.size == rows.size:
        return inner.pick_rows(rows, view)
    pick = inner.pick_rows(kept, view)
    if pick is None:
        return None
    return pick._replace(set_aside=(Set(rows[~keep], why), *pick.set_aside))


def indexable(strategy: Strategy) -> bool:
    """Whether the strategy and every modifier around it have an indexed form."""
    while strategy is not None:
        if not hasattr(strategy, "pick_rows"):
            return False
        strategy = getattr(strategy, "inner", None)  # type: ignore[assignment]
    return True


def decide(
    request: RouteRequest,
    snapshot: PoolSnapshot,
    strategy: Strategy,
    now: float,
    ctx: Context,
) -> Decision | None:
    """The engine's decision, read from the pool's columns; None to let the loop decide."""
    if (
        len(snapshot.credentials) < INDEX_FROM
        or request.owner is not None
        or request.stand_in is not None
        or request.additional_limit is not None
        or not indexable(strategy)
    ):
        return None
    columns = snapshot.indexed()
    eligible = _eligible(columns, request, now, snapshot)
    rows = np.flatnonzero(eligible)
    if not rows.size:
        return None
    view = View(ctx, columns)
    pick = strategy.pick_rows(rows, view)  # type: ignore[attr-defined]
    if pick is None:
        return None
    assert isinstance(pick, RowPick)

    def later(limit: int | None) -> Detail:
        return _detail(view, eligible, rows, pick, limit)

    return Decision(
        view.credential(pick.winner),
        strategy.name,
        pick.reason,
        rotation=request.rotation,
        catch_up=pick.catch_up,
        later=later,
    )


def _eligible(columns: Columns, request: RouteRequest, now: float, snapshot: PoolSnapshot) -> Bools:
    """`filters.exclusion(…) is None` for every row (a request without an additional limit)."""
    fixed, state = columns.fixed, columns.state
    key = (request.route, request.model, request.agent == CLAUDE_CODE)
    serves: Bools = fixed.per_credential(key, lambda c: mismatch(c, request) is None, np.bool_)
    eligible: Bools = serves & (state[BACK_AT] <= now)
    for credential_id in (*request.exclude, *request.unfit):
        if (row := fixed.row.get(credential_id)) is not None:
            eligible[row] = False
    model, credentials = request.model, fixed.credentials
    for cooled in columns.cooled:
        cooldowns = snapshot.state(credentials[cooled].id).model_cooldowns
        if cooldowns.get(model, 0.0) > now:
            eligible[cooled] = False
    return eligible


def _detail(view: View, eligible: Bools, rows: Rows, pick: RowPick, limit: int | None) -> Detail:
    """The explanation the loop would have given: every ineligible credential's exclusion in
    pool order, then what each modifier set aside, outermost first; with `limit`, only what
    `base.bounded` would keep of it, and only that is built."""
    ctx, fixed = view.ctx, view.columns.fixed
    credentials, snapshot, request, now = fixed.credentials, ctx.snapshot, ctx.request, ctx.now
    aside = np.zeros(len(credentials), np.bool_)
    for group in pick.set_aside:
        aside[group.rows] = True
    chosen = rows[~aside[rows]]
    # Exclusions in order: the ineligible (explained by `exclusion`), then each group set aside.
    parts: list[tuple[Rows, Callable[[int], str] | None]] = [(np.flatnonzero(~eligible), None)]
    parts += [(group.rows, group.why) for group in pick.set_aside]
    total = sum(part.size for part, _ in parts)
    if limit is not None and chosen.size > limit:
        listed = chosen[:limit]
        if pick.winner not in listed:  # the winner comes later in pool order: last
            listed = np.append(chosen[: limit - 1], pick.winner)
        chosen_names = listed
    else:
        chosen_names = chosen
    if limit is not None and total > limit:
        # Every credential a failed attempt tried stays (never eligible: in the first part).
        tried = sorted(fixed.row[i] for i in request.exclude if i in fixed.row)
        room, bounded = limit - len(tried), []
        for part, why in parts:
            must = tried if why is None else []
            taken = (part[~np.isin(part, must)] if must else part)[: max(0, room)]
            room -= taken.size
            bounded.append((np.union1d(taken, must) if must else taken, why))
        parts = bounded
    excluded = []
    for part, why in parts:
        for row in part.tolist():
            if why is not None:
                excluded.append(Exclusion(credentials[row].name, why(row)))
            else:
                excluded.append(_out(fixed, row, snapshot, request, now))
    listed_rows = chosen_names.tolist()
    scores: Scores | None = None
    if pick.scores is not None:
        label, scored, values = pick.scores
        # (Some strategies score only some candidates: those with a known price or reset.)
        at = np.minimum(np.searchsorted(scored, listed_rows), max(0, scored.size - 1))
        hit = (scored[at] == listed_rows) if scored.size else np.zeros(len(listed_rows), np.bool_)
        named = {
            credentials[r].name: float(values[i])
            for r, i, scored_too in zip(listed_rows, at.tolist(), hit.tolist(), strict=True)
            if scored_too
        }
        scores = (label, named)
    omitted = (chosen.size - len(listed_rows), total - len(excluded))
    return Detail(tuple(credentials[r].name for r in listed_rows), tuple(excluded), scores, omitted)


def _out(
    fixed: Fixed, row: int, snapshot: PoolSnapshot, request: RouteRequest, now: float
) -> Exclusion:
    """`filters.exclusion` of an ineligible row, given again while its state is the same
    object, the request of the same kind, and `now` between the time it was found and the
    time it ends by itself (a check that passed then cannot fail later: limits, cooldowns and
    backoffs only end). Most credentials out for one request are out for the next, for the
    same reason."""
    credential = fixed.credentials[row]
    state = snapshot.state(credential.id)
    # (Tried or unfit for this request alone: its reason is this request's, never kept.)
    own = credential.id in request.exclude or credential.id in request.unfit
    kind = (request.route, request.model, request.agent == CLAUDE_CODE)
    kept = None if own else fixed.explained.get(row)
    if kept is not None and kept[0] is state and kept[1] == kind:
        since, reason = kept[2]
        if since <= now and (reason.until is None or now < reason.until):
            return reason  # type: ignore[no-any-return]
    found = exclusion(credential, state, request, now)
    assert found is not None, credential.name
    if not own:
        fixed.explained[row] = (state, kind, (now, found))
    return found
