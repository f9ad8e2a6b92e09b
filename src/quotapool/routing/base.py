"""The routing contract: candidates in, one choice and its reason out."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from quotapool.domain.credential import Credential
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.request import RouteRequest
from quotapool.domain.state import CredentialState


@dataclass(frozen=True, slots=True)
class Candidate:
    credential: Credential
    state: CredentialState


@dataclass(frozen=True, slots=True)
class Exclusion:
    credential: str
    """The excluded credential's name."""
    reason: str
    until: float | None = None
    """When the reason ends by itself, if it does."""


class Strategy(Protocol):
    """Picks one of the eligible candidates (never empty) and says why.

    Strategies are pure: everything they read comes from their arguments.

    >>> class First:
    ...     name = "first"
    ...     def pick(self, request, candidates, snapshot, rng):
    ...         return candidates[0], "first eligible"
    """

    name: str

    def pick(
        self,
        request: RouteRequest,
        candidates: Sequence[Candidate],
        snapshot: PoolSnapshot,
        rng: random.Random,
    ) -> tuple[Candidate, str]: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """Which credential serves a request, and the whole explanation."""

    credential: Credential
    strategy: str
    reason: str
    """Why the winner won, in the strategy's words."""
    candidates: tuple[str, ...]
    excluded: tuple[Exclusion, ...]

    @property
    def route_header(self) -> str:
        return f"{self.strategy}; credential={self.credential.name}"

    def explain(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "selected": self.credential.name,
            "reason": self.reason,
            "candidates": list(self.candidates),
            "excluded": [
                {"credential": e.credential, "reason": e.reason, "until": e.until}
                for e in self.excluded
            ],
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """No credential can serve the request now."""

    strategy: str
    message: str
    excluded: tuple[Exclusion, ...]
    retry_at: float | None
    """The soonest time a matching credential comes back by itself; None if none will."""
    no_match: bool
    """True when no credential in the pool serves this route and model at all."""

    def explain(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "selected": None,
            "reason": self.message,
            "candidates": [],
            "excluded": [
                {"credential": e.credential, "reason": e.reason, "until": e.until}
                for e in self.excluded
            ],
        }
