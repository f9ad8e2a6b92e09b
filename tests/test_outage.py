"""A watcher whose database is down says so once, and once when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from sqlalchemy.exc import OperationalError

from quotapool.clock import SystemClock
from quotapool.control.keys import KeyRing
from quotapool.store.client_keys import ClientKeyStore


class FlakyStore(ClientKeyStore):
    """The database refuses `down` reads, then answers."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.reads = 0

    def version(self) -> tuple[int, int, str | None]:
        self.reads += 1
        if self.reads <= self.down:
            raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))
        return (0, 0, None)

    def all(self) -> list:  # type: ignore[type-arg]
        return []


async def test_the_key_watcher_logs_an_outage_once_and_the_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore(down=20)
    ring = KeyRing(store, SystemClock(), {}, require=False)
    with caplog.at_level(logging.INFO, logger="quotapool.control.keys"):
        watching = asyncio.ensure_future(ring.watch(0.001))
        for _ in range(2000):
            if store.reads > 25:
                break
            await asyncio.sleep(0.002)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    said = [r.getMessage() for r in caplog.records if r.name == "quotapool.control.keys"]
    failed = [m for m in said if "failed" in m]
    assert len(failed) == 1 and "OperationalError" in failed[0] and "retrying" in failed[0]
    assert [m for m in said if "works again" in m] == [
        "reading client keys from the database works again"
    ]
    assert not any(r.exc_info for r in caplog.records)  # no traceback per try
