"""The upstream I/O seam: everything the dispatcher and the WebSocket bridge ask of the network.

`net.aiohttp.AiohttpClient` is the real one; `testing.mock_upstream.MockClient` answers from a
function, so failover, faults and streams are tested without sockets or sleeps (the idea of
httpx's `MockTransport`)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import aiohttp

    from quotapool.domain.egress import Egress


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


class UpstreamClient(Protocol):
    """Sends requests upstream. Errors are `aiohttp.ClientError` or `TimeoutError`."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, egress: Egress
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        """`async with client.post(...) as response:` — released when the block ends. The
        connection leaves by `egress` (the credential's), never another way."""
        ...

    async def ws_connect(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> aiohttp.ClientWebSocketResponse:
        """An upstream WebSocket, open."""
        ...
