"""round_robin: smooth weighted rotation, counters per rotation key (profile and model).

Stride scheduling: the candidate with the fewest selections per unit of weight goes next, so
weights 2:1 give A, B, A, A, B, A… and equal weights a plain rotation. A credential whose counter
fell behind while it was out (limited, paused, over budget, new) rejoins at the current position:
its turns count as no fewer than the latest turn any other candidate had before its own last
pick, so it takes its turn once instead of a burst of catch-up picks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quotapool.domain.columns import LAST_SELECTED, Rows
from quotapool.routing.base import Candidate, Context, Pick
from quotapool.routing.index import RowPick, View


class RoundRobin:
    name = "round_robin"

    def pick(self, candidates: Sequence[Candidate], ctx: Context) -> Pick:
        key = ctx.request.rotation
        turns = [c.state.rotations.get(key, 0.0) / c.credential.weight for c in candidates]
        # In a rotation nobody left, every turn is at least (another's turn − its stride): the
        # turn it had when it was last picked. So clamping to that changes only returners.
        before = [t - 1.0 / c.credential.weight for t, c in zip(turns, candidates, strict=True)]
        first = max(range(len(before)), key=before.__getitem__)
        second = max((b for i, b in enumerate(before) if i != first), default=0.0)
        floors = [second if i == first else before[first] for i in range(len(before))]
        effective = [max(t, f) for t, f in zip(turns, floors, strict=True)]
        index = min(
            range(len(candidates)),
            key=lambda i: (
                effective[i],
                candidates[i].state.last_selected,
                candidates[i].credential.id,
            ),
        )
        winner = candidates[index]
        weight = winner.credential.weight
        catch_up = effective[index] * weight
        behind = effective[index] > turns[index]
        return Pick(
            winner,
            f"its turn: {catch_up:g} selection(s) for {key} at weight {weight:g}"
            + (" (rejoined the rotation)" if behind else ""),
            scores=(
                "selections per weight",
                {c.credential.name: e for c, e in zip(candidates, effective, strict=True)},
            ),
            catch_up=catch_up if behind else 0.0,
        )

    def pick_rows(self, rows: Rows, view: View) -> RowPick:
        key, columns = view.ctx.request.rotation, view.columns
        weight = columns.fixed.weight[rows]
        turns = columns.by_key("rotation", key, view.ctx.snapshot.states)[rows] / weight
        before = turns - 1.0 / weight
        first = int(np.argmax(before))
        second = float(np.delete(before, first).max()) if rows.size > 1 else 0.0
        floors = np.full(rows.size, before[first])
        floors[first] = second
        effective = np.maximum(turns, floors)
        at = view.first_at(rows, effective, columns.state[LAST_SELECTED, rows])
        winner, stride = int(rows[at]), float(weight[at])
        catch_up = float(effective[at]) * stride
        behind = bool(effective[at] > turns[at])
        return RowPick(
            winner,
            f"its turn: {catch_up:g} selection(s) for {key} at weight {stride:g}"
            + (" (rejoined the rotation)" if behind else ""),
            scores=("selections per weight", rows, effective),
            catch_up=catch_up if behind else 0.0,
        )
