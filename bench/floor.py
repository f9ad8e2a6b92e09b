"""The barest Python proxy (uvicorn + httptools + uvloop, one aiohttp session, orjson,
round-robin over keys, nothing else): the floor quotapool is measured against.

    python bench/floor.py UPSTREAM_BASE PORT
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import aiohttp
import orjson
import uvicorn

UPSTREAM, PORT = sys.argv[1], int(sys.argv[2])
KEYS = itertools.cycle([f"Bearer tok-{i}" for i in range(4)])
session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global session
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    orjson.loads(body)
    assert session is not None
    headers = {"authorization": next(KEYS), "content-type": "application/json"}
    async with session.post(UPSTREAM + scope["path"], data=body, headers=headers) as response:
        start = {"type": "http.response.start", "status": response.status}
        start["headers"] = [(b"content-type", response.headers["content-type"].encode())]
        await send(start)
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=PORT,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
