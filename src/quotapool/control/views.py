"""The pool as the CLI, the dashboard, the admin API and the Codex CLI's `/status` see it:
every credential's live state, and the pool's Codex accounts as one."""

from __future__ import annotations

from typing import Any

import orjson

from quotapool.domain.credential import Kind
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaWindow
from quotapool.domain.state import LIMITED, CredentialState, Status
from quotapool.routing.filters import available
from quotapool.routing.profiles import Routing


def effective_status(state: CredentialState, now: float) -> Status:
    """The status as routing sees it now: a limit whose time has passed is over."""
    if state.status in LIMITED and not state.limited_at(now):
        return Status.ACTIVE
    return state.status


def _window(window: QuotaWindow | None, now: float) -> dict[str, Any] | None:
    if window is None:
        return None
    return {
        "used_percent": window.used_at(now),
        "resets_at": window.resets_at,
        "window_minutes": window.window_minutes,
    }


def credential_rows(snapshot: PoolSnapshot, now: float) -> list[dict[str, Any]]:
    """Every credential's live state (no secrets): status and why, when it is back, quota
    windows with their resets, in flight, latency."""
    rows = []
    for credential in snapshot.credentials:
        state = snapshot.state(credential.id)
        limited = state.limited_at(now)
        backoff = state.backoff_until if state.backoff_until > now else None
        back = [t for t in (state.until if limited else None, backoff) if t is not None]
        rows.append(
            {
                "name": credential.name,
                "kind": credential.kind.value,
                "plan": credential.plan,
                "egress": credential.egress,
                "status": effective_status(state, now).value,
                "until": state.until if limited else None,
                "reason": state.reason or None,
                "backoff_until": backoff,
                "back_at": max(back, default=None),
                "in_flight": state.in_flight,
                "in_flight_elsewhere": state.busy_elsewhere,
                "served": state.served,
                "latency_ms": {m: round(seen.ewma_ms, 1) for m, seen in state.latency.items()},
                "primary": _window(state.primary, now),
                "secondary": _window(state.secondary, now),
                "additional": {
                    limit.name: {
                        "primary": _window(limit.primary, now),
                        "secondary": _window(limit.secondary, now),
                    }
                    for limit in state.additional.values()
                },
            }
        )
    return rows


def pool_view(snapshot: PoolSnapshot, now: float, routing: Routing | None = None) -> bytes:
    """`GET /quotapool/pool`: every credential's live state and the routing profiles."""
    rows = credential_rows(snapshot, now)
    view: dict[str, Any] = {"now": now, "credentials": rows}
    if routing is not None:
        view["profiles"] = {name: p.describe() for name, p in sorted(routing.profiles.items())}
    return orjson.dumps(view)


def pool_usage(snapshot: PoolSnapshot, now: float) -> bytes:
    """`GET /backend-api/wham/usage` (and `/api/codex/usage`), as the Codex CLI reads it for
    `/status`: the pool's Codex accounts as one, each window's use the average across them (an
    account out of rotation counts as spent), resets the soonest."""
    states = [snapshot.state(c.id) for c in snapshot.credentials if c.kind is Kind.CODEX]
    usable = [s for s in states if available(s, now)]
    rate_limit: dict[str, Any] = {"allowed": bool(usable), "limit_reached": not usable}
    for name, seconds, which in (
        ("primary_window", 18000, "primary"),
        ("secondary_window", 604800, "secondary"),
    ):
        used, resets = [], []
        for state in states:
            window: QuotaWindow | None = getattr(state, which)
            fraction = window.used_at(now) if window is not None else 0.0
            used.append(fraction if available(state, now) else 100.0)
            if window is not None and window.resets_at is not None and window.resets_at > now:
                resets.append(window.resets_at)
        reset_at = min(resets, default=now + seconds)
        rate_limit[name] = {
            "used_percent": round(sum(used) / len(used), 1) if used else 100.0,
            "limit_window_seconds": seconds,
            "reset_after_seconds": max(0, int(reset_at - now)),
            "reset_at": int(reset_at),
        }
    plans = {c.plan for c in snapshot.credentials if c.kind is Kind.CODEX and c.plan}
    plan = plans.pop() if len(plans) == 1 else "team"
    return orjson.dumps({"plan_type": plan, "rate_limit": rate_limit})
