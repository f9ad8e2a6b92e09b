"""What needs the operator now, and what changed since the last look. Pure.

An alert is a condition with a subject (`Alert.key`): it is raised once when it appears, and
cleared once when it is gone, however many looks it lasts (`Episodes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from quotapool.domain.forecast import weekday_time
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.state import Status

MINUTE = 60.0


class Alert(NamedTuple):
    kind: str
    """"reauth", "out", "runs_out", "key_limit", "writer"."""
    subject: str
    """The account, key, table or "pool"."""
    message: str

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.subject


class Thresholds(NamedTuple):
    out_minutes: float
    runs_out_hours: float
    key_limit_percent: float


def pool_alerts(
    snapshot: PoolSnapshot, now: float, out_since: Mapping[str, float], limits: Thresholds
) -> list[Alert]:
    """Accounts that need a new login, and those out (limited, failing) for longer than
    `out_minutes` by `out_since` (when each was first seen out; a paused one is the operator's
    own doing)."""
    found = []
    for credential in snapshot.credentials:
        state = snapshot.state(credential.id)
        name = credential.name
        if state.status is Status.REAUTH_REQUIRED:
            found.append(
                Alert(
                    "reauth",
                    name,
                    f"{name} needs a new login ({state.reason or 'signed out'}): "
                    "run `quotapool accounts login` for it",
                )
            )
            continue
        since = out_since.get(credential.id)
        if since is not None and now - since >= limits.out_minutes * MINUTE:
            minutes = (now - since) / MINUTE
            why = f": {state.reason}" if state.reason else ""
            found.append(Alert("out", name, f"{name} has been out for {minutes:.0f} min{why}"))
    return found


def runs_out_alert(runs_out_at: float | None, now: float, limits: Thresholds) -> list[Alert]:
    """The pool forecast to run out of weekly credits within `runs_out_hours`."""
    if runs_out_at is None or not limits.runs_out_hours:
        return []
    hours = (runs_out_at - now) / 3600
    if hours > limits.runs_out_hours:
        return []
    message = (
        f"at the pace of the last day the pool runs out of weekly credits in {hours:.1f} h "
        f"({weekday_time(runs_out_at)}): `quotapool forecast`"
    )
    return [Alert("runs_out", "pool", message)]


def key_alerts(
    usages: Iterable[tuple[str, Sequence[Mapping[str, object]]]], limits: Thresholds
) -> list[Alert]:
    """Client keys that used `key_limit_percent` of one of their limits (`KeyRing.usage`)."""
    found = []
    for name, usage in usages:
        for limit in usage:
            used, amount = limit["used"], limit["amount"]
            if not isinstance(used, int | float) or not isinstance(amount, int | float):
                continue
            if amount > 0 and 100 * used / amount >= limits.key_limit_percent:
                share = 100 * used / amount
                found.append(
                    Alert(
                        "key_limit",
                        f"{name}: {limit['limit']}",
                        f"client key {name} used {share:.0f}% of its limit {limit['limit']}",
                    )
                )
    return found


class Episodes:
    """The alerts in force; `seen` says which were raised and which cleared since."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], Alert] = {}

    def seen(self, now_active: Iterable[Alert]) -> tuple[list[Alert], list[Alert]]:
        current = {alert.key: alert for alert in now_active}
        raised = [alert for key, alert in current.items() if key not in self.active]
        cleared = [alert for key, alert in self.active.items() if key not in current]
        self.active = current
        return raised, cleared
