"""What routing needs to know about a client request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from quotapool.domain.api import Route

__all__ = ["CLAUDE_CODE", "DEFAULT_PROFILE", "Route", "RouteRequest", "Unfit", "agent_of"]

DEFAULT_PROFILE = "default"
"""The routing profile of `[routing]`, and of a request that names none."""
CLAUDE_CODE = "claude-code"


def agent_of(headers: Mapping[str, str]) -> str | None:
    """The coding agent a request says it comes from (lower-case header names).

    >>> agent_of({"x-app": "cli", "user-agent": "claude-cli/2.1.3 (external, cli)"})
    'claude-code'
    """
    if headers.get("x-app") == "cli" or headers.get("user-agent", "").startswith("claude-cli/"):
        return CLAUDE_CODE
    return None


@dataclass(frozen=True, slots=True)
class Unfit:
    """Parameters of a request a credential's API has no place for."""

    params: tuple[str, ...]
    why: str
    """"temperature (sampling temperature), which Codex (ChatGPT) accounts do not support"."""


NOTHING_UNFIT: Mapping[str, Unfit] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RouteRequest:
    route: Route
    model: str
    exclude: frozenset[str] = frozenset()
    """Credentials already tried for this request (failover never retries one)."""
    additional_limit: str | None = None
    """Set when the model is served from an additional (gated) quota of that name."""
    affinity: str | None = None
    """The credential this conversation is bound to (warm prompt cache): kept while healthy."""
    owner: str | None = None
    """The credential that owns the conversation's previous response: the only one that may
    serve it (no other account knows that response id)."""
    profile: str = DEFAULT_PROFILE
    """The routing profile the request is routed by."""
    stand_in: str | None = None
    """For a Claude model: the model credentials that are not Anthropic's serve in its place
    (the profile's `claude_models`); their model lists are checked against it."""
    unfit: Mapping[str, Unfit] = field(default_factory=lambda: NOTHING_UNFIT)
    """Credentials that cannot honour the request's parameters (their API has no place for
    them): credential id → which ones. Set before routing, so another credential serves it."""
    agent: str | None = None
    """The coding agent that sent it (`CLAUDE_CODE`), when it says: a Claude subscription
    serves Claude Code only, unless its operator says otherwise."""

    @property
    def rotation(self) -> str:
        """The key round-robin counters are kept under: one per profile and model."""
        profile = self.profile
        return self.model if profile == DEFAULT_PROFILE else f"{profile}/{self.model}"
