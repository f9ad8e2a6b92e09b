"""What a credential is: its identity and what it can serve. Secrets live elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """The upstream a credential talks to."""

    CODEX = "codex"
    """A ChatGPT account on the Codex backend (access token + account id)."""
    OPENAI = "openai"
    """An OpenAI-compatible API key."""
    ANTHROPIC = "anthropic"
    """An Anthropic API key."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A credential as routing sees it: no secret, so it can be logged and explained."""

    id: str
    """Stable identifier, unique in the pool."""
    name: str
    """Human name shown in logs, headers and the dashboard."""
    kind: Kind
    base_url: str
    """Where its upstream lives (for Codex accounts, the backend-api base)."""
    models: frozenset[str] = frozenset()
    """Models it serves; empty means any model."""
    weight: float = 1.0
    priority: int = 0
    """Higher tiers are used first; lower tiers only when no higher one is eligible."""

    def serves(self, model: str) -> bool:
        return not self.models or model in self.models
