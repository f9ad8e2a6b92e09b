"""The real upstream client: one pooled aiohttp session (the data plane's only aiohttp user
for requests it relays)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

import aiohttp

from quotapool.net.client import UpstreamResponse


class AiohttpClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self.session.post(url, data=body, headers=headers)

    async def ws_connect(
        self, url: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientWebSocketResponse:
        # Upstream frames are not limited here: image outputs can be large (client frames are
        # limited by the server's ws_max_size).
        return await self.session.ws_connect(
            url, headers=headers, max_msg_size=0, autoclose=True, autoping=True
        )
