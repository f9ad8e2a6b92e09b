"""The transport contract: turn a client request into an upstream call for one credential."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import orjson

from quotapool.domain.api import Api
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.quota import QuotaReading
from quotapool.domain.request import Route
from quotapool.jsonlazy import plain
from quotapool.secrets import Secret
from quotapool.translate import StreamAdapter
from quotapool.translate.table import translate


class Relay(Enum):
    """How the upstream answer reaches the client."""

    PASSTHROUGH = "passthrough"
    """Same API on both sides: bytes (or SSE events) go through as they are."""
    RESPONSES_FROM_STREAM = "responses_from_stream"
    """A non-streaming Responses client served from a streamed upstream (Codex always streams)."""
    TRANSLATED = "translated"
    """The client speaks another API than the upstream: events are translated
    (`UpstreamCall.adapter`)."""


@dataclass(frozen=True, slots=True)
class Continued:
    """A request whose `previous_response_id` quotapool expanded into the conversation so far."""

    response_id: str
    """The response it continues."""
    context_items: int
    """How many of its input items are that conversation (the rest are its own)."""


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A parsed client request (body parsed once)."""

    route: Route
    body: bytes
    payload: Mapping[str, Any]
    """Its JSON object; a field is built when first read (`jsonlazy.LazyObject`)."""
    model: str
    stream: bool
    headers: Mapping[str, str]
    """Client headers, lower-case, already stripped of hop-by-hop and client credentials."""
    client: str = ""
    """A digest of the client's own credential: tells clients apart without keeping it."""
    query: str = ""
    """The query string (`beta=true` from Anthropic SDKs), for upstreams of the same API."""
    allowed: frozenset[str] = frozenset()
    """The models its client key may use, whichever way it is routed; empty: any."""
    continued: Continued | None = None
    """Set when its `previous_response_id` was expanded here."""


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    url: str
    headers: dict[str, str]
    body: bytes
    relay: Relay
    hide_usage_chunk: bool = False
    """Usage was asked for on the client's behalf (to log tokens): keep its chunk from it."""
    dropped: tuple[str, ...] = ()
    """Parameters left out because the upstream cannot honour them (`lenient = true`), and
    hosted tools it does not have."""
    adapter: Callable[[int, str], StreamAdapter] | None = None
    """For a translated call: (created, the client's model) → the adapter of its events."""


def translated_call(
    url: str,
    headers: dict[str, str],
    request: ClientRequest,
    upstream: Api,
    *,
    lenient: bool,
    session: str | None = None,
) -> UpstreamCall:
    """The call for a client whose API the upstream does not speak (`translate.table`)."""
    payload = plain(request.payload)  # (a translator reads all of it)
    done = translate(request.route, upstream, payload, session=session, lenient=lenient)
    body = orjson.dumps(done.body)
    return UpstreamCall(
        url, headers, body, Relay.TRANSLATED, dropped=done.dropped, adapter=done.adapter
    )


class Transport(Protocol):
    """One per upstream kind: builds requests, reads quota signals from responses."""

    kind: Kind
    lenient: bool
    """Drop what the upstream cannot honour (named in a header) instead of refusing it."""

    def prepare(
        self, request: ClientRequest, credential: Credential, secret: Secret
    ) -> UpstreamCall:
        """The upstream request for `request` on `credential`."""
        ...

    def quota(self, headers: Mapping[str, str], now: float) -> QuotaReading | None:
        """Headroom announced by response headers, if any."""
        ...
