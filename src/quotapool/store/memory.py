"""In-process pool state (one replica)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from quotapool.domain import reducer
from quotapool.domain.credential import Credential
from quotapool.domain.outcome import Outcome
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import CredentialState

Observer = Callable[[Outcome, PoolSnapshot], None]


class MemoryPoolStore:
    """The snapshot lives in this process; `apply` runs on the event loop, so it is atomic."""

    def __init__(self, initial: PoolSnapshot, observer: Observer | None = None) -> None:
        self._snapshot = initial
        self.observers: list[Observer] = [observer] if observer is not None else []
        """Told of every outcome applied here, after it is (usage history, replication)."""
        self._given = initial.credentials
        self._ids = frozenset(c.id for c in initial.credentials)
        self._catalogue: dict[str, frozenset[str]] = {}

    def snapshot(self) -> PoolSnapshot:
        return self._snapshot

    def apply(self, outcome: Outcome) -> PoolSnapshot:
        self._snapshot = snapshot = reducer.apply(self._snapshot, outcome)
        for observer in self.observers:
            observer(outcome, snapshot)
        return snapshot

    def apply_elsewhere(self, outcome: Outcome) -> PoolSnapshot:
        """An outcome another replica observed (and recorded): folded in, observers not told."""
        if outcome.credential_id in self._ids:
            self._snapshot = reducer.apply_elsewhere(self._snapshot, outcome)
        return self._snapshot

    def adopt(self, credential_id: str, state: CredentialState) -> None:
        """A credential's state as the replicas shared it (at start), this replica's in-flight
        count kept."""
        if self._snapshot.by_id(credential_id) is None:
            return
        held = self._snapshot.state(credential_id).in_flight
        states = dict(self._snapshot.states)
        states[credential_id] = replace(state, in_flight=held)
        self._snapshot = PoolSnapshot(self._snapshot.credentials, states, self._snapshot.sequence)

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
        self._ids = ids = frozenset(c.id for c in credentials)
        states = {k: v for k, v in self._snapshot.states.items() if k in ids}
        self._snapshot = PoolSnapshot(credentials, states, self._snapshot.sequence)
        return self._snapshot
