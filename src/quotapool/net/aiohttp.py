"""The real upstream client: one pooled aiohttp session (the data plane's only aiohttp user
for requests it relays)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

import aiohttp

from quotapool.net.client import UpstreamResponse


class AiohttpClient:
    def __init__(self, session: aiohttp.ClientSession, max_frame_bytes: int) -> None:
        self.session = session
        self.max_frame_bytes = max_frame_bytes
        """The largest upstream WebSocket message (image outputs come in messages of a few MB;
        past it the socket is closed with 1009)."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self.session.post(url, data=body, headers=headers)

    async def ws_connect(
        self, url: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            url, headers=headers, max_msg_size=self.max_frame_bytes, autoclose=True, autoping=True
        )
