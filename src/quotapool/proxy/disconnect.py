"""Watching running requests for a client that went away, or a body that stopped arriving."""

from __future__ import annotations

import asyncio
from typing import Any

from quotapool.proxy.asgi import Message, Receive

WATCH_AFTER_SECONDS = 1.0
"""Requests still running after this long start watching for the client going away (most
finish sooner, and a watcher task per request would cost a quarter of the throughput)."""


class DisconnectWatches:
    """Cancels a request's task when its client goes away (so the upstream call is cancelled)
    or when its body stops arriving for `body_timeout` seconds.

    One timer sweeps the running requests; only those older than `WATCH_AFTER_SECONDS` that
    have their body get a watcher task (a timer per request costs more than the watching)."""

    def __init__(self, after: float = WATCH_AFTER_SECONDS, body_timeout: float = 30.0) -> None:
        self.after = after
        self.body_timeout = body_timeout
        self._running: dict[int, Watch] = {}
        self._sweep: asyncio.TimerHandle | None = None

    def watch(self, receive: Receive, *, reading: bool = False) -> Watch:
        loop = asyncio.get_running_loop()
        watch = Watch(asyncio.current_task(), receive, loop.time(), reading)
        self._running[id(watch)] = watch
        if self._sweep is None:
            self._sweep = loop.call_later(self.after / 2, self._sweep_due)
        return watch

    def stop(self, watch: Watch) -> None:
        del self._running[id(watch)]
        watch.done = True
        if watch.watcher is not None:
            watch.watcher.cancel()

    def _sweep_due(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for watch in self._running.values():
            if watch.reading:
                if now - watch.progress > self.body_timeout and watch.handler is not None:
                    watch.body_late = True
                    watch.handler.cancel()
            elif watch.watcher is None and watch.started <= now - self.after:
                watch.watcher = asyncio.ensure_future(watch.wait())  # noqa: TID251 (held by the watch)
        self._sweep = loop.call_later(self.after / 2, self._sweep_due) if self._running else None


class Watch:
    __slots__ = (
        "body_late",
        "disconnected",
        "done",
        "handler",
        "progress",
        "reading",
        "receive",
        "started",
        "watcher",
    )

    def __init__(
        self, handler: asyncio.Task[Any] | None, receive: Receive, started: float, reading: bool
    ) -> None:
        self.handler = handler
        self.receive = receive
        self.started = started
        self.reading = reading
        """The body is still arriving (no disconnect watcher may read meanwhile)."""
        self.progress = started
        """When the last part of the body arrived."""
        self.body_late = False
        self.disconnected = False
        self.done = False
        self.watcher: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        message: Message = await self.receive()
        if message["type"] == "http.disconnect" and not self.done and self.handler is not None:
            self.disconnected = True
            self.handler.cancel()
