"""What `quotapool serve` prints as it works: a line per request, and a line when a credential
leaves rotation (limited, paused, logged out) or comes back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import LIMITED, CredentialState, Status

access = logging.getLogger("quotapool.access")
status_log = logging.getLogger("quotapool.status")


def log_request(row: Mapping[str, Any]) -> None:
    """`responses gpt-5.5 → bravo 200 812 ms, 1 failover, key laptop`."""
    if not access.isEnabledFor(logging.INFO):
        return
    model = row["model"] or "-"
    if row["sent_model"] and row["sent_model"] != row["model"]:
        model = f"{model} (sent {row['sent_model']})"
    notes = []
    if (failovers := (row["attempts"] or 0) - 1) > 0:
        notes.append(f"{failovers} failover{'s' if failovers > 1 else ''}")
    if row["client_key"]:
        notes.append(f"key {row['client_key']}")
    if row["warmup"]:
        notes.append(row["scenario"] or "warmup")
    latency = f"{row['latency_ms']:.0f} ms" if row["latency_ms"] is not None else "- ms"
    access.info(
        "%s %s → %s %d %s%s",
        row["route"],
        model,
        row["credential"] or "none",
        row["status"],
        latency,
        f", {', '.join(notes)}" if notes else "",
    )


def effective_status(state: CredentialState, now: float) -> Status:
    """The status as routing sees it now: a limit whose time has passed is over."""
    if state.status in LIMITED and not state.limited_at(now):
        return Status.ACTIVE
    return state.status


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
