"""The transport contract: turn a client request into an upstream call for one credential."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from quotapool.domain.credential import Credential, Kind
from quotapool.domain.quota import QuotaReading
from quotapool.domain.request import Route
from quotapool.secrets import Secret


class Relay(Enum):
    """How the upstream answer reaches the client."""

    PASSTHROUGH = "passthrough"
    """Same API on both sides: bytes (or SSE events) go through as they are."""
    RESPONSES_FROM_STREAM = "responses_from_stream"
    """A non-streaming Responses client served from a streamed upstream (Codex always streams)."""
    CHAT_FROM_RESPONSES = "chat_from_responses"
    """A chat client served by the Responses API: events are translated."""
    MESSAGES_FROM_RESPONSES = "messages_from_responses"
    """An Anthropic Messages client served by the Responses API: events are translated."""


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A parsed client request (body parsed once)."""

    route: Route
    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool
    headers: Mapping[str, str]
    """Client headers, lower-case, already stripped of hop-by-hop and client credentials."""
    client: str = ""
    """A digest of the client's own credential: tells clients apart without keeping it."""
    query: str = ""
    """The query string (`beta=true` from Anthropic SDKs), for upstreams of the same API."""


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    url: str
    headers: dict[str, str]
    body: bytes
    relay: Relay
    hide_usage_chunk: bool = False
    """Usage was asked for on the client's behalf (to log tokens): keep its chunk from it."""
    dropped: tuple[str, ...] = ()
    """Parameters left out because the upstream cannot honour them (`lenient = true`)."""


class Transport(Protocol):
    """One per upstream kind: builds requests, reads quota signals from responses."""

    kind: Kind

    def prepare(
        self, request: ClientRequest, credential: Credential, secret: Secret
    ) -> UpstreamCall:
        """The upstream request for `request` on `credential`."""
        ...

    def quota(self, headers: Mapping[str, str], now: float) -> QuotaReading | None:
        """Headroom announced by response headers, if any."""
        ...
