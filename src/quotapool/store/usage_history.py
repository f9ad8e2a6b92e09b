"""Every quota observation, kept as history (window, used %, reset, source) when it changes."""

from __future__ import annotations

from quotapool.domain.outcome import Limited, Observed, Outcome, Served
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import AdditionalQuota, QuotaReading, QuotaWindow
from quotapool.store.batch import BatchWriter


def _windows(quota: QuotaReading) -> list[tuple[str, QuotaWindow]]:
    found = [
        (name, w) for name, w in (("primary", quota.primary), ("secondary", quota.secondary)) if w
    ]
    limits: dict[int, tuple[str, AdditionalQuota]] = {}
    for key, limit in quota.additional.items():  # one limit is found under two keys
        limits.setdefault(id(limit), (key, limit))
    for key, limit in limits.values():
        found.extend(
            (f"additional:{key}:{which}", w)
            for which, w in (("primary", limit.primary), ("secondary", limit.secondary))
            if w
        )
    return found


class UsageHistory:
    """A pool observer: queues a history row whenever a credential's reading changes by a
    whole percent or its window resets (an API key's `remaining` moves on every response;
    a row per request would double the database writes and tell a chart nothing)."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self._last: dict[tuple[str, str], tuple[int, int]] = {}

    def __call__(self, outcome: Outcome, snapshot: PoolSnapshot) -> None:
        if getattr(outcome, "quota", None) is None:
            return  # most outcomes (every Started) carry no reading
        match outcome:
            case Served(quota=QuotaReading() as quota):
                source = "headers"
            case Limited(quota=QuotaReading() as quota):
                source = "error"
            case Observed(quota=quota, source=source):
                pass
            case _:
                return
        credential = snapshot.by_id(outcome.credential_id)
        if credential is None:
            return
        for window_name, window in _windows(quota):
            key = (credential.id, window_name)
            # Resets announced as "in N seconds" drift with every response: compare by minute.
            value = (int(window.used_percent), int((window.resets_at or 0) // 60))
            if self._last.get(key) == value:
                continue
            self._last[key] = value
            self.writer.submit(
                {
                    "credential": credential.name,
                    "at": outcome.at,
                    "window": window_name,
                    "used_percent": window.used_percent,
                    "resets_at": window.resets_at,
                    "source": source,
                }
            )
