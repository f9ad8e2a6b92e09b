"""Saying when a credential leaves rotation and when it is back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from quotapool.control.views import effective_status
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import LIMITED, Status

status_log = logging.getLogger("quotapool.status")


class StatusWatch:
    """Says, once per change, when a credential leaves rotation and when it is back (limits end
    by the clock, not by an event, so the pool is looked at every `interval` seconds)."""

    def __init__(self, snapshot: Callable[[], PoolSnapshot], now: Callable[[], float]) -> None:
        self.snapshot = snapshot
        self.now = now
        self._seen: dict[str, Status] = {}

    def check(self) -> None:
        snapshot, now = self.snapshot(), self.now()
        for credential in snapshot.credentials:
            state = snapshot.state(credential.id)
            status = effective_status(state, now)
            before = self._seen.get(credential.id, Status.ACTIVE)
            self._seen[credential.id] = status
            if status is before:
                continue
            if status is Status.ACTIVE:
                status_log.info("%s is back in rotation", credential.name)
                continue
            why = f": {state.reason}" if state.reason else ""
            until = (
                f" until {datetime.fromtimestamp(state.until).strftime('%H:%M:%S')}"
                if status in LIMITED and state.until is not None
                else ""
            )
            status_log.warning("%s is out: %s%s%s", credential.name, status.value, until, why)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()
