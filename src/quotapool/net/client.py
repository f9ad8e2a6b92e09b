"""The upstream I/O seam: everything the dispatcher and the WebSocket bridge ask of the network
(requests with their answers, WebSockets with their frames).

`net.aiohttp.AiohttpClient` is the real one; `testing.mock_upstream.MockClient` answers from a
function, so failover, faults and streams are tested without sockets or sleeps (the idea of
httpx's `MockTransport`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

import aiohttp

if TYPE_CHECKING:
    from quotapool.domain.egress import Egress

NETWORK_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)
"""How a call through the seam fails on the way: no connection, a broken protocol, an answer
cut short, a timeout (a refused handshake is `SocketRefused`)."""


class Body(Protocol):
    async def readany(self) -> bytes:
        """The next bytes of the body as they arrive; b"" at its end."""
        ...


class UpstreamResponse(Protocol):
    """An upstream's answer: status and headers at once, the body as it arrives."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive."""
        ...

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]: ...

    @property
    def content_type(self) -> str: ...

    @property
    def content(self) -> Body: ...

    async def read(self) -> bytes:
        """The whole body."""
        ...


class UpstreamSocket(Protocol):
    """An upstream WebSocket, open: frames both ways until either side closes."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The handshake answer's headers (case-insensitive)."""
        ...

    @property
    def close_code(self) -> int | None:
        """Why the upstream closed it (None while open)."""
        ...

    async def send_str(self, text: str) -> None: ...

    def frames(self) -> AsyncIterator[str | bytes]:
        """Text and binary frames as they arrive, until the socket closes."""
        ...

    async def close(self) -> None: ...


class SocketRefused(Exception):
    """The upstream answered a WebSocket handshake with an HTTP status instead."""

    def __init__(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"handshake answered {status}")
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


class UpstreamClient(Protocol):
    """Sends requests upstream; fails with one of NETWORK_ERRORS."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, egress: Egress
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        """`async with client.post(...) as response:` — released when the block ends. The
        connection leaves by `egress` (the credential's), never another way."""
        ...

    async def ws_connect(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> UpstreamSocket:
        """An upstream WebSocket, open; `SocketRefused` when the upstream answers the handshake
        with a status (other errors: as `post`'s)."""
        ...
