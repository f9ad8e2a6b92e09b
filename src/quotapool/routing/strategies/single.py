"""single: always the pinned credential (`routing.pinned`), never another."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.domain.columns import Rows
from quotapool.routing.base import Candidate, Context, Exclusion, Pick
from quotapool.routing.index import RowPick, Set, View


class Single:
    name = "single"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick | None:
        pinned = ctx.policy.pinned
        for candidate in candidates:
            if candidate.credential.name == pinned:
                others = tuple(
                    Exclusion(c.credential.name, f"not the pinned credential ({pinned})")
                    for c in candidates
                    if c is not candidate
                )
                return Pick(candidate, "pinned", others)
        return None

    def pick_rows(self, rows: Rows, view: View) -> RowPick | None:
        pinned = view.ctx.policy.pinned
        row = view.columns.fixed.named.get(pinned) if pinned is not None else None
        if row is None or not (rows == row).any():
            return None
        why = lambda _row: f"not the pinned credential ({pinned})"  # noqa: E731
        return RowPick(row, "pinned", (Set(rows[rows != row], why),))
