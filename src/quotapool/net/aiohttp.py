"""The real upstream client: one pooled aiohttp session per egress (the data plane's only
aiohttp user for requests and sockets it relays)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager

import aiohttp
from multidict import CIMultiDict

from quotapool.domain.egress import Egress
from quotapool.net.client import Outbound, SocketRefused, UpstreamResponse, UpstreamSocket
from quotapool.net.egress import Egresses, connector


class AiohttpClient:
    def __init__(self, egresses: Egresses, max_frame_bytes: int) -> None:
        self.egresses = egresses
        self.max_frame_bytes = max_frame_bytes
        """The largest upstream WebSocket message (image outputs come in messages of a few MB;
        past it the socket is closed with 1009)."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, egress: Egress
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self.egresses.session(egress).post(url, data=body, headers=headers)

    def get(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self.egresses.session(egress).get(url, headers=headers)

    async def ws_connect(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> UpstreamSocket:
        try:
            socket = await self.egresses.session(egress).ws_connect(
                url,
                headers=headers,
                max_msg_size=self.max_frame_bytes,
                autoclose=True,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise SocketRefused(exc.status, CIMultiDict(exc.headers or {})) from exc
        return AiohttpSocket(socket)


class AiohttpSocket:
    """An aiohttp client WebSocket as an `UpstreamSocket`."""

    __slots__ = ("_socket",)

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket

    @property
    def headers(self) -> Mapping[str, str]:
        response = getattr(self._socket, "_response", None)  # (aiohttp keeps the handshake's)
        return response.headers if response is not None else {}

    @property
    def close_code(self) -> int | None:
        return self._socket.close_code

    async def send_str(self, text: str) -> None:
        await self._socket.send_str(text)

    async def frames(self) -> AsyncIterator[str | bytes]:
        async for message in self._socket:
            if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                yield message.data

    async def close(self) -> None:
        await self._socket.close()


@contextlib.asynccontextmanager
async def outbound(egress: Egress, timeout: float = 60.0) -> AsyncIterator[Outbound]:
    """A way out of its own, by `egress`, closed with the block (a sign-in from the CLI)."""

    def session(way: Egress) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector(way), timeout=aiohttp.ClientTimeout(total=timeout)
        )

    egresses = Egresses(session, {}, egress)
    try:
        yield Outbound(AiohttpClient(egresses, max_frame_bytes=0), egress)  # (no socket)
    finally:
        await egresses.close()
