"""What routing needs to know about a client request."""

from __future__ import annotations

from dataclasses import dataclass

from quotapool.domain.api import Route

__all__ = ["DEFAULT_PROFILE", "Route", "RouteRequest"]

DEFAULT_PROFILE = "default"
"""The routing profile of `[routing]`, and of a request that names none."""


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

    @property
    def rotation(self) -> str:
        """The key round-robin counters are kept under: one per profile and model."""
        profile = self.profile
        return self.model if profile == DEFAULT_PROFILE else f"{profile}/{self.model}"
