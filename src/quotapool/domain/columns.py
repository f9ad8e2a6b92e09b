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

from quotapool.domain.credential import POLICY_RANK, Credential, Kind
from quotapool.domain.state import LIMITED, OUT_OF_SERVICE, CredentialState

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Rows = NDArray[np.intp]

# The state columns (`Columns.state[NAME]`).
(
    BACK_AT,
    BUSY,
    COOLED,
    SHORT_USED,
    SHORT_RESET,
    WEEK_USED,
    WEEK_RESET,
    LAST_SELECTED,
) = range(8)
STATE_COLUMNS = 8

MATCHES_KEPT = 256
"""(route, model…) masks kept per pool; past this, the oldest is forgotten."""
ROTATIONS_KEPT = 32


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
        bool(state.model_cooldowns),
        0.0 if short is None else short.used_percent,
        math.nan if short is None or short.resets_at is None else short.resets_at,
        0.0 if week is None else week.used_percent,
        math.nan if week is None or week.resets_at is None else week.resets_at,
        state.last_selected,
    )


def _ranks(keys: list[str]) -> Floats:
    """Each key's position in sorted order (ties between strings broken by arithmetic)."""
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
    capacity: Floats
    weight: Floats
    priority: Floats
    policy_rank: Floats
    id_rank: Floats
    stable_rank: Floats
    """Ranks of `id` and `stable_id`: the tie-breakers of deterministic orders."""
    reserved: Bools
    """A Claude subscription kept for Claude Code."""
    tiers: tuple[bool, bool]
    """Whether credentials differ in priority, and in policy (else tiers change nothing)."""
    matches: dict[Any, Bools] = field(default_factory=dict)
    """Which credentials can ever serve a request (route, model…): asked once per key."""

    @classmethod
    def of(cls, credentials: tuple[Credential, ...]) -> Fixed:
        def floats(values: Iterable[float]) -> Floats:
            return np.fromiter(values, np.float64, len(credentials))

        return cls(
            credentials,
            {c.id: i for i, c in enumerate(credentials)},
            floats(c.capacity for c in credentials),
            floats(c.weight for c in credentials),
            floats(c.priority for c in credentials),
            floats(POLICY_RANK[c.policy] for c in credentials),
            _ranks([c.id for c in credentials]),
            _ranks([c.stable_id for c in credentials]),
            np.fromiter(
                (c.kind is Kind.CLAUDE and not c.serve_any_client for c in credentials),
                np.bool_,
                len(credentials),
            ),
            (
                len({c.priority for c in credentials}) > 1,
                len({c.policy for c in credentials}) > 1,
            ),
        )

    def mask(self, key: Any, serves: Callable[[Credential], bool]) -> Bools:
        """The credentials `serves` accepts, remembered under `key`."""
        found = self.matches.get(key)
        if found is None:
            if len(self.matches) >= MATCHES_KEPT:
                del self.matches[next(iter(self.matches))]
            found = np.fromiter(map(serves, self.credentials), np.bool_, len(self.credentials))
            self.matches[key] = found
        return found


@dataclass(eq=False)
class Columns:
    """One version of a pool's columns (see the module's docstring)."""

    fixed: Fixed
    state: Floats
    """`STATE_COLUMNS` × credentials."""
    rotations: dict[str, Floats] = field(default_factory=dict)
    """round_robin's counters per rotation key, built when first asked."""

    @classmethod
    def of(
        cls, credentials: tuple[Credential, ...], states: Mapping[str, CredentialState]
    ) -> Columns:
        fresh = CredentialState()
        state = np.array(
            [state_row(states.get(c.id, fresh)) for c in credentials], np.float64
        ).reshape(len(credentials), STATE_COLUMNS)
        return cls(Fixed.of(credentials), np.ascontiguousarray(state.T))

    def updated(self, credential_id: str, state: CredentialState) -> Columns:
        """These columns with one credential's state replaced (a copy: the old stay valid)."""
        row = self.fixed.row.get(credential_id)
        if row is None:
            return self
        values = self.state.copy()
        values[:, row] = state_row(state)
        rotations = {}
        for key, counts in self.rotations.items():
            counts = counts.copy()
            counts[row] = state.rotations.get(key, 0.0)
            rotations[key] = counts
        return Columns(self.fixed, values, rotations)

    def rotation(self, key: str, states: Mapping[str, CredentialState]) -> Floats:
        """Selections counted under `key` per credential."""
        found = self.rotations.get(key)
        if found is None:
            if len(self.rotations) >= ROTATIONS_KEPT:
                del self.rotations[next(iter(self.rotations))]
            found = np.fromiter(
                (
                    s.rotations.get(key, 0.0) if (s := states.get(c.id)) is not None else 0.0
                    for c in self.fixed.credentials
                ),
                np.float64,
                len(self.fixed.credentials),
            )
            self.rotations[key] = found
        return found
