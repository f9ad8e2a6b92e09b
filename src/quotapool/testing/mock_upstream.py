"""An upstream answered by a function, in process: no sockets, no threads, no sleeps.

    def upstream(request: MockRequest) -> MockResponse:
        if request.headers["authorization"] == "Bearer tok-a":
            return MockResponse(429, json={"error": {"type": "usage_limit_reached"}})
        return MockResponse(200, chunks=[b"event: ...\\n\\n", ...])

    Attempts(client=MockClient(upstream), ...)

A handler may also raise (`aiohttp.ClientConnectionError()`, `TimeoutError()`) to fail the
call, or return a response whose `fail_after` chunks end in an error mid-body.

WebSockets are answered by `sockets`: a `ScriptedSocket` (each frame the client sends is
answered by its `reply`), or a `MockResponse` whose status refuses the handshake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from quotapool.domain.egress import DIRECT, Egress
from quotapool.net.client import SocketRefused


@dataclass(frozen=True)
class MockRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes
    egress: Egress = DIRECT
    """The way its connection would have left."""

    def json(self) -> Any:
        return orjson.loads(self.body)


class MockResponse:
    """An answer: JSON (`json=`), bytes (`body=`), or a stream arriving in `chunks`."""

    def __init__(
        self,
        status: int = 200,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        json: Any = None,
        chunks: list[bytes] | None = None,
        fail_after: int | None = None,
    ) -> None:
        merged = CIMultiDict(headers or {})
        if json is not None:
            body = orjson.dumps(json)
            merged.setdefault("content-type", "application/json")
        elif chunks is not None:
            merged.setdefault("content-type", "text/event-stream")
        self.status = status
        self.body = body
        self.chunks = chunks
        self.fail_after = fail_after
        """Raise `aiohttp.ClientPayloadError` after this many chunks."""
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(merged)
        self.raw_headers = tuple((k.lower().encode(), v.encode()) for k, v in merged.items())
        self.content = _Body(self)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream").split(";")[0]

    async def read(self) -> bytes:
        if self.chunks is None:
            return self.body
        parts = []
        while part := await self.content.readany():
            parts.append(part)
        return b"".join(parts)


class _Body:
    def __init__(self, response: MockResponse) -> None:
        self.response = response
        self.sent = 0

    async def readany(self) -> bytes:
        response = self.response
        chunks = response.chunks if response.chunks is not None else [response.body]
        if response.fail_after is not None and self.sent >= response.fail_after:
            raise aiohttp.ClientPayloadError("mock: the body broke off")
        if self.sent >= len(chunks):
            return b""
        self.sent += 1
        return chunks[self.sent - 1]


Handler = Callable[[MockRequest], "MockResponse | Awaitable[MockResponse]"]
SocketHandler = Callable[[MockRequest], "ScriptedSocket | MockResponse"]


class MockClient:
    """An `UpstreamClient` that asks `handler` for each answer and keeps every request."""

    def __init__(self, handler: Handler, sockets: SocketHandler | None = None) -> None:
        self.handler = handler
        self.sockets = sockets
        self.requests: list[MockRequest] = []

    @contextlib.asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, egress: Egress
    ) -> AsyncIterator[MockResponse]:
        request = MockRequest(url, dict(headers), body, egress)
        self.requests.append(request)
        answer = self.handler(request)
        if not isinstance(answer, MockResponse):
            answer = await answer
        yield answer

    def get(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> AbstractAsyncContextManager[MockResponse]:
        return self.post(url, b"", headers, egress=egress)  # (told apart by their empty body)

    async def ws_connect(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> ScriptedSocket:
        request = MockRequest(url, dict(headers), b"", egress)
        self.requests.append(request)
        answer = self.sockets(request) if self.sockets is not None else MockResponse(426)
        if isinstance(answer, MockResponse):
            raise SocketRefused(answer.status, answer.headers)
        return answer


CLOSE = object()
"""A frame a `ScriptedSocket`'s reply may end with: the upstream closes the socket."""


@dataclass
class ScriptedSocket:
    """An upstream WebSocket whose answer to each text frame the client sends is `reply(frame)`
    (frames, perhaps ending with `CLOSE`)."""

    reply: Callable[[str], list[Any]]
    headers: Mapping[str, str] = field(default_factory=dict)
    close_with: int = 1000
    """The close code when a reply ends with `CLOSE`."""
    sent: list[str] = field(default_factory=list)
    close_code: int | None = None
    _inbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    async def send_str(self, text: str) -> None:
        self.sent.append(text)
        for frame in self.reply(text):
            self._inbox.put_nowait(frame)

    async def frames(self) -> AsyncIterator[str | bytes]:
        while self.close_code is None:
            frame = await self._inbox.get()
            if frame is CLOSE:
                if self.close_code is None:  # (the upstream's own close)
                    self.close_code = self.close_with
                return
            yield frame

    async def close(self) -> None:
        if self.close_code is None:
            self.close_code = 1000
            self._inbox.put_nowait(CLOSE)
