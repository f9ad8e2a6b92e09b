"""In-process pool state (one replica)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from quotapool.domain import reducer
from quotapool.domain.credential import Credential
from quotapool.domain.outcome import Outcome
from quotapool.domain.pool import PoolSnapshot

Observer = Callable[[Outcome, PoolSnapshot], None]


class MemoryPoolStore:
    """The snapshot lives in this process; `apply` runs on the event loop, so it is atomic."""

    def __init__(self, initial: PoolSnapshot, observer: Observer | None = None) -> None:
        self._snapshot = initial
        self.observer = observer
        """Told of every outcome after it is applied (e.g. to record usage history)."""
        self._given = initial.credentials
        self._catalogue: dict[str, frozenset[str]] = {}

    def snapshot(self) -> PoolSnapshot:
        return self._snapshot

    def apply(self, outcome: Outcome) -> PoolSnapshot:
        self._snapshot = snapshot = reducer.apply(self._snapshot, outcome)
        if self.observer is not None:
            self.observer(outcome, snapshot)
        return snapshot

    def reconfigure(self, credentials: Sequence[Credential]) -> PoolSnapshot:
        """Swap the credential set (accounts added, changed or removed); states of the
        credentials that remain are kept."""
        self._given = tuple(credentials)
        return self._install()

    def serves(self, credential_id: str, models: frozenset[str]) -> None:
        """The models the upstream says a credential serves (a Codex account's catalogue);
        a list configured for it wins."""
        if self._catalogue.get(credential_id) != models:
            self._catalogue[credential_id] = models
            self._install()

    def _install(self) -> PoolSnapshot:
        credentials = tuple(
            replace(c, models=found) if not c.models and (found := self._catalogue.get(c.id)) else c
            for c in self._given
        )
        ids = {c.id for c in credentials}
        states = {k: v for k, v in self._snapshot.states.items() if k in ids}
        self._snapshot = PoolSnapshot(credentials, states, self._snapshot.sequence)
        return self._snapshot
