"""What routing needs to know about a client request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from quotapool.domain.credential import Kind

DEFAULT_PROFILE = "default"
"""The routing profile of `[routing]`, and of a request that names none."""


class Route(StrEnum):
    """The client API a request came in on."""

    RESPONSES = "responses"
    COMPACT = "compact"
    """`/responses/compact`: routed like a response, tool-only fields removed."""
    CHAT = "chat"
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    """`/v1/messages/count_tokens`: Anthropic's token count, routed like messages."""
    WEBSOCKET = "websocket"
    """The Codex WebSocket transport (its model is known only after the upgrade)."""


SERVED_BY: dict[Route, frozenset[Kind]] = {
    Route.RESPONSES: frozenset({Kind.CODEX, Kind.OPENAI}),
    Route.COMPACT: frozenset({Kind.CODEX, Kind.OPENAI}),
    Route.CHAT: frozenset({Kind.OPENAI, Kind.CODEX}),
    Route.MESSAGES: frozenset({Kind.ANTHROPIC, Kind.CODEX}),
    Route.COUNT_TOKENS: frozenset({Kind.ANTHROPIC}),
    Route.WEBSOCKET: frozenset({Kind.CODEX}),
}
"""Which credential kinds can answer each client API."""


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

    @property
    def kinds(self) -> frozenset[Kind]:
        return SERVED_BY[self.route]

    @property
    def rotation(self) -> str:
        """The key round-robin counters are kept under: one per profile and model."""
        profile = self.profile
        return self.model if profile == DEFAULT_PROFILE else f"{profile}/{self.model}"
