"""Write-behind of keyed changes that a stop or a failure cannot lose.

`asyncio.to_thread` drops a call that is cancelled before a thread picks it up: a writer that
first took its changes out of memory, then was stopped (cancelled) at that moment, lost them
without a word. Here changes stay in memory until written, and each writer has one thread of
its own, so its writes reach the database in the order they were made."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Behind(Generic[K, V]):
    """Changes (key → value, the newest wins) waiting to be written by `write` on a thread."""

    def __init__(self, name: str, write: Callable[[dict[K, V]], None]) -> None:
        self.pending: dict[K, V] = {}
        self._write = write
        self._thread = ThreadPoolExecutor(1, name)

    async def flush(self) -> None:
        """Write what waits; forget what was written unchanged meanwhile. Raises what `write`
        raises, the changes still waiting."""
        if not self.pending:
            return
        changes = dict(self.pending)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, changes)
        pending = self.pending
        for key, value in changes.items():
            if pending.get(key) is value:
                del pending[key]
