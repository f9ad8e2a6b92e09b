"""The real upstream client: one pooled aiohttp session per egress (the data plane's only
aiohttp user for requests it relays)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

import aiohttp

from quotapool.domain.egress import Egress
from quotapool.net.client import UpstreamResponse
from quotapool.net.egress import Egresses


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

    async def ws_connect(
        self, url: str, headers: Mapping[str, str], *, egress: Egress
    ) -> aiohttp.ClientWebSocketResponse:
        return await self.egresses.session(egress).ws_connect(
            url, headers=headers, max_msg_size=self.max_frame_bytes, autoclose=True, autoping=True
        )
