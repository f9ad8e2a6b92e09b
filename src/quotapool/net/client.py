"""The upstream I/O seam: everything quotapool asks of the network (requests with their
answers, WebSockets with their frames) — the data plane's calls, and those beside it (token
refresh, usage polls, model lists, sign-ins) through an `Outbound`.

`net.aiohttp.AiohttpClient` is the real one; `testing.mock_upstream.MockClient` answers from a
function, so failover, faults and streams are tested without sockets or sleeps (the idea of
httpx's `MockTransport`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson

if TYPE_CHECKING:
    from quotapool.domain.egress import Egress

NETWORK_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)
"""How a call through the seam fails on the way: no connection, a broken protocol, an answer
cut short, a timeout (a refused handshake is `SocketRefused`)."""


class BrokenAnswer(ValueError):
    """An upstream answer that cannot be relayed: past a bound (its headers, an error body, a
    whole answer), or not what it says it is (JSON that does not parse)."""


ERROR_BODY_SECONDS = 60.0
"""How long an error body (which comes with its headers) may take to arrive."""


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

    def get(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        """As `post`, without a body."""
        ...

    async def ws_connect(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> UpstreamSocket:
        """An upstream WebSocket, open; `SocketRefused` when the upstream answers the handshake
        with a status (other errors: as `post`'s)."""
        ...


_NO_HEADERS: Mapping[str, str] = {}
JSON_CALL_ERRORS: tuple[type[Exception], ...] = (*NETWORK_ERRORS, ValueError)
"""How a call for a JSON answer fails: as any call, or with an answer `read_json` refuses."""
MAX_JSON_BYTES = 8 * 1024 * 1024
"""The largest answer read by `read_json` (tokens, usage reports, model lists are far less)."""


@dataclass(frozen=True, slots=True)
class Outbound:
    """One way out for the calls beside the data plane (token refresh, usage polls, model
    lists, sign-ins): the client, and the egress the account's connections leave by."""

    client: UpstreamClient
    egress: Egress

    def get(
        self, url: str, headers: Mapping[str, str] = _NO_HEADERS
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self.client.get(url, headers, egress=self.egress)

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self.client.post(url, body, headers, egress=self.egress)

    def post_json(
        self, url: str, payload: Any, headers: Mapping[str, str] = _NO_HEADERS
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        body = orjson.dumps(payload)
        return self.post(url, body, {"content-type": "application/json", **headers})


async def read_json(response: UpstreamResponse, limit: int = MAX_JSON_BYTES) -> Any:
    """A small JSON answer, whole (`read_bounded`); `ValueError` when it is not JSON or
    exceeds `limit` bytes."""
    return orjson.loads(await read_bounded(response.content, limit, "the answer"))


async def read_bounded(
    content: Body, limit: int, what: str, seconds: float = ERROR_BODY_SECONDS
) -> bytes:
    """A whole upstream body of at most `limit` bytes (`BrokenAnswer` past it, with nothing
    more read: a small compressed body may inflate to gigabytes), arrived within `seconds`
    (`TimeoutError`; checked as each part arrives, the wait for one part being bounded by
    `read_timeout`: no timer a request)."""
    parts: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise BrokenAnswer(f"{what} exceeds {limit} bytes")
        if loop.time() > deadline:
            raise TimeoutError(f"{what} did not arrive within {seconds:g} s")
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)
