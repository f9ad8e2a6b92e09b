"""An immutable snapshot of the whole pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from quotapool.domain.columns import Columns
from quotapool.domain.credential import Credential
from quotapool.domain.state import CredentialState

FRESH = CredentialState()
"""The state of a credential nothing has happened to yet."""


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """Credentials in pool order with their states; replaced, never mutated."""

    credentials: tuple[Credential, ...]
    states: Mapping[str, CredentialState] = field(default_factory=dict)
    """State by credential id; a missing entry means a fresh, active credential."""
    sequence: int = 0
    """Counts selections; rotation strategies compare `last_selected` against it."""
    columns: Columns | None = field(default=None, compare=False, repr=False)
    """The pool as columns (`indexed`), once a decision over it asked; the reducer carries
    them to the next snapshot."""

    def indexed(self) -> Columns:
        """The pool as columns, built on first use (a cache: the snapshot does not change)."""
        if self.columns is None:
            object.__setattr__(self, "columns", Columns.of(self.credentials, self.states))
        assert self.columns is not None
        return self.columns

    def state(self, credential_id: str) -> CredentialState:
        return self.states.get(credential_id, FRESH)

    def by_id(self, credential_id: str) -> Credential | None:
        if self.columns is not None:  # a large pool's: found by its row
            row = self.columns.fixed.row.get(credential_id)
            return None if row is None else self.columns.fixed.credentials[row]
        for credential in self.credentials:
            if credential.id == credential_id:
                return credential
        return None
