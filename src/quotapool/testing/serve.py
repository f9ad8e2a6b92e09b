"""Serving a fake (an aiohttp application) on loopback: on the running loop, or from a thread
with its own loop for synchronous tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

from aiohttp import web


class Fake(Protocol):
    @property
    def app(self) -> web.Application: ...


@contextlib.asynccontextmanager
async def serving(fake: Fake, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `fake` on the running loop; yields its base URL."""
    runner = web.AppRunner(fake.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server) and server.sockets
    bound = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def run_in_thread(fake: Fake, port: int = 0) -> Iterator[str]:
    """Serve `fake` from a thread with its own event loop; yields its base URL."""
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    base = ""

    async def main() -> None:
        nonlocal stop, loop, base
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        async with serving(fake, port=port) as url:
            base = url
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="fake-upstream", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake upstream did not start")
    try:
        yield base
    finally:
        assert loop is not None and stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
