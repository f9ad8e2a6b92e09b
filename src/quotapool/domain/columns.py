"""A pool as columns of numbers, one per credential in pool order: what a decision over a large
pool reads with array arithmetic instead of a loop over credentials (`routing.index`). Pure.

Built once for a snapshot (`Columns.of`), then carried by the reducer: an outcome copies the
arrays and rewrites its credential's entries (`updated`), so each snapshot keeps its own and no
decision rebuilds them. What never changes with state (capacity, weight, tiers, orders, which
credentials serve a route and model) is shared by every version.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quotapool.domain.credential import POLICY_RANK, Credential
from quotapool.domain.state import LIMITED, OUT_OF_SERVICE, CredentialState, Latency

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Rows = NDArray[np.intp]

# The state columns (`Columns.state[NAME]`).
(
    BACK_AT,
    BUSY,
    SHORT_USED,
    SHORT_RESET,
    WEEK_USED,
    WEEK_RESET,
    LAST_SELECTED,
) = range(7)
STATE_COLUMNS = 7

MEMO_KEPT = 256
"""Columns `Fixed.per_credential` keeps; past this, the oldest is forgotten."""
KEYED_KEPT = 32
"""Keyed columns (`by_key`) a version carries at most."""


def _latency(state: CredentialState, model: str) -> Latency | None:
    return state.latency.get(model)


KEYED: dict[str, Callable[[CredentialState, str], float]] = {
    "rotation": lambda state, key: state.rotations.get(key, 0.0),
    "latency_ms": lambda state, model: s.ewma_ms if (s := _latency(state, model)) else math.nan,
    "latency_samples": lambda state, model: s.samples if (s := _latency(state, model)) else -1.0,
}
"""State kept per key (a rotation, a model), as columns built when first asked: round_robin's
counters; least_latency's average and samples (NaN and -1 when none)."""


def state_row(state: CredentialState) -> tuple[float, ...]:
    """A credential's state as the numbers the columns hold.

    `BACK_AT` is when it may serve again whatever the request (`filters.exclusion`'s status,
    limit, backoff and probe): 0 when it may now, +inf when only an operator, a new login or a
    probe's answer brings it back. A window not known reads 0 % used with a NaN reset."""
    status, short, week = state.status, state.primary, state.secondary
    if status in OUT_OF_SERVICE or (state.consecutive_failures and state.in_flight):
        back = math.inf
    else:
        back = state.backoff_until
        if status in LIMITED:
            back = max(math.inf if state.until is None else state.until, back)
    return (
        back,
        state.in_flight + state.busy_elsewhere,
        0.0 if short is None else short.used_percent,
        math.nan if short is None or short.resets_at is None else short.resets_at,
        0.0 if week is None else week.used_percent,
        math.nan if week is None or week.resets_at is None else week.resets_at,
        state.last_selected,
    )


def _ranks(keys: list[str]) -> Floats:
    """Each key's position in sorted order: string tie-breakers compared as numbers."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    ranks = np.empty(len(keys))
    ranks[order] = np.arange(len(keys), dtype=np.float64)
    return ranks


@dataclass(eq=False)
class Fixed:
    """What does not change with state: shared by every version of a pool's columns."""

    credentials: tuple[Credential, ...]
    row: dict[str, int]
    """Credential id → its row."""
    named: dict[str, int]
    """Credential name → its row."""
    capacity: Floats
    weight: Floats
    priority: Floats
    policy_rank: Floats
    id_rank: Floats
    stable_rank: Floats
    """Ranks of `id` and `stable_id`: the tie-breakers of deterministic orders."""
    tiers: tuple[bool, bool]
    """Whether credentials differ in priority, and in policy (else tiers change nothing)."""
    memo: dict[Any, NDArray[Any]] = field(default_factory=dict)
    """Columns of what a credential alone decides (which serve a route and model, a model's
    price): computed once per key (`per_credential`)."""
    explained: dict[int, tuple[object, Any, Any]] = field(default_factory=dict)
    """Row → (the state, the request's kind, why it was out): the last explanation of an
    ineligible row, for the routing index to give again while it holds."""

    @classmethod
    def of(cls, credentials: tuple[Credential, ...]) -> Fixed:
        def floats(values: Iterable[float]) -> Floats:
            return np.fromiter(values, np.float64, len(credentials))

        return cls(
            credentials,
            {c.id: i for i, c in enumerate(credentials)},
            {c.name: i for i, c in enumerate(credentials)},
            floats(c.capacity for c in credentials),
            floats(c.weight for c in credentials),
            floats(c.priority for c in credentials),
            floats(POLICY_RANK[c.policy] for c in credentials),
            _ranks([c.id for c in credentials]),
            _ranks([c.stable_id for c in credentials]),
            (
                len({c.priority for c in credentials}) > 1,
                len({c.policy for c in credentials}) > 1,
            ),
        )

    def per_credential(self, key: Any, value: Callable[[Credential], Any], dtype: Any) -> Any:
        """`value` of every credential, remembered under `key`."""
        found = self.memo.get(key)
        if found is None:
            if len(self.memo) >= MEMO_KEPT:
                del self.memo[next(iter(self.memo))]
            found = np.fromiter(map(value, self.credentials), dtype, len(self.credentials))
            self.memo[key] = found
        return found


@dataclass(eq=False)
class Columns:
    """One version of a pool's columns (see the module's docstring)."""

    fixed: Fixed
    state: Floats
    """`STATE_COLUMNS` × credentials."""
    cooled: frozenset[int] = frozenset()
    """Rows with a model cooling down (a model's own quota spent): checked one by one."""
    keyed: dict[tuple[str, str], Floats] = field(default_factory=dict)
    """(`KEYED` name, key) → its column, built when first asked (`by_key`)."""

    @classmethod
    def of(
        cls, credentials: tuple[Credential, ...], states: Mapping[str, CredentialState]
    ) -> Columns:
        fresh = CredentialState()
        each = [states.get(c.id, fresh) for c in credentials]
        state = np.array([state_row(s) for s in each], np.float64)
        state = state.reshape(len(credentials), STATE_COLUMNS)
        cooled = frozenset(row for row, s in enumerate(each) if s.model_cooldowns)
        return cls(Fixed.of(credentials), np.ascontiguousarray(state.T), cooled)

    def updated(self, credential_id: str, state: CredentialState) -> Columns:
        """These columns with one credential's state replaced (a copy: the old stay valid)."""
        row = self.fixed.row.get(credential_id)
        if row is None:
            return self
        values = self.state.copy()
        values[:, row] = state_row(state)
        keyed = {}
        for (name, key), column in self.keyed.items():
            value = KEYED[name](state, key)
            if column[row] != value and not (math.isnan(value) and math.isnan(column[row])):
                column = column.copy()  # (most outcomes change none of them: shared)
                column[row] = value
            keyed[name, key] = column
        cooled = self.cooled
        if bool(state.model_cooldowns) != (row in cooled):
            cooled = cooled - {row} if row in cooled else cooled | {row}
        return Columns(self.fixed, values, cooled, keyed)

    def subset(self, rows: Rows, fixed: Fixed) -> Columns:
        """These columns of `rows` only, in that order, as `fixed` describes them (a routing
        profile's view of the pool: its members, its weights)."""
        where = {int(old): new for new, old in enumerate(rows.tolist())}
        cooled = frozenset(where[row] for row in self.cooled if row in where)
        keyed = {key: column[rows] for key, column in self.keyed.items()}
        return Columns(fixed, self.state[:, rows], cooled, keyed)

    def by_key(self, name: str, key: str, states: Mapping[str, CredentialState]) -> Floats:
        """The `KEYED` column `name` for `key` (a rotation, a model)."""
        found = self.keyed.get((name, key))
        if found is None:
            if len(self.keyed) >= KEYED_KEPT:
                del self.keyed[next(iter(self.keyed))]
            value, fresh = KEYED[name], CredentialState()
            found = np.fromiter(
                (value(states.get(c.id, fresh), key) for c in self.fixed.credentials),
                np.float64,
                len(self.fixed.credentials),
            )
            self.keyed[name, key] = found
        return found
