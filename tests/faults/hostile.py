"""An upstream written to hurt: streams without blank lines, gzip bombs, megabytes of headers,
bytes dripped one at a time, event names that are not UTF-8. Each way is a path prefix
(`{base}/{way}/v1/…`); every loop is bounded, so a proxy that never gives up still ends."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import zlib
from collections.abc import Iterator
from functools import cache

from aiohttp import web

CHUNK = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
BOMB_INFLATED = 200 * 1024 * 1024


@cache
def gzip_bomb() -> bytes:
    """~200 KB of gzip that inflates to 200 MB of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    body = b"".join(packer.compress(zeros) for _ in range(BOMB_INFLATED // len(zeros)))
    return body + packer.flush()


async def _stream(request: web.Request, **headers: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", **headers})
    await response.prepare(request)
    return response


async def handle(request: web.Request) -> web.StreamResponse:
    way = request.match_info["way"]
    await request.read()
    if way == "nolines":  # one event that never ends: 64 MB without a blank line
        response = await _stream(request)
        await response.write(b"data: ")
        for _ in range(1024):
            await response.write(b"x" * 65536)
        return response
    if way == "midstream":  # a good first event, then one that never ends
        response = await _stream(request)
        await response.write(CHUNK)
        for _ in range(64):
            await response.write(b"data: " + b"y" * 65536)
        return response
    if way in ("bomb", "bomb-error"):
        return web.Response(
            body=gzip_bomb(),
            status=200 if way == "bomb" else 500,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    if way == "headers":  # ~960 KB of headers, each within aiohttp's own limits
        filler = {f"x-filler-{n}": "h" * 8000 for n in range(120)}
        return web.json_response({"choices": []}, headers=filler)
    if way == "drip":  # a byte at a time: no single read ever times out
        response = await _stream(request)
        for byte in CHUNK[:40]:
            await response.write(bytes([byte]))
            await asyncio.sleep(0.2)
        return response
    if way == "badname":
        response = await _stream(request)
        await response.write(b"event: \xff\xfe\ndata: {}\n\n")
        return response
    raise web.HTTPNotFound()


@contextlib.contextmanager
def hostile_upstream() -> Iterator[str]:
    """Serve the hostile upstream from a thread; yields its base URL."""
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/{way}/v1/{path:.*}", handle)
        runner = web.AppRunner(app, handler_cancellation=True, max_field_size=16384)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stop = asyncio.Event()
        port = runner.addresses[0][1]
        state.update(stop=stop, loop=asyncio.get_running_loop(), base=f"http://127.0.0.1:{port}")
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="hostile", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("hostile upstream did not start")
    try:
        yield str(state["base"])
    finally:
        loop, stop = state["loop"], state["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
