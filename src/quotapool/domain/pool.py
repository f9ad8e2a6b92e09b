"""An immutable snapshot of the whole pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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

    def state(self, credential_id: str) -> CredentialState:
        return self.states.get(credential_id, FRESH)

    def by_id(self, credential_id: str) -> Credential | None:
        for credential in self.credentials:
            if credential.id == credential_id:
                return credential
        return None
