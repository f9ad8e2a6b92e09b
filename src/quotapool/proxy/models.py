"""`GET /v1/models` and `GET /backend-api/codex/models`: what the pool serves."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from quotapool.clock import Clock
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.pool import PoolSnapshot
from quotapool.domain.quota import QuotaWindow
from quotapool.proxy.access_log import effective_status
from quotapool.routing.filters import available
from quotapool.routing.profiles import Routing
from quotapool.secrets import Secret
from quotapool.store.base import PoolStore
from quotapool.upstream.codex import codex_auth

log = logging.getLogger(__name__)


def model_ids(credentials: Sequence[Credential], codex_models: Sequence[str]) -> list[str]:
    """Declared models of every credential; Codex accounts without a list serve `codex_models`."""
    seen: dict[str, None] = {}
    for credential in credentials:
        models = credential.models or (codex_models if credential.kind is Kind.CODEX else ())
        seen.update(dict.fromkeys(sorted(models)))
    return list(seen)


def openai_models(ids: Sequence[str]) -> bytes:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "quotapool"} for m in ids]
    return orjson.dumps({"object": "list", "data": data})


class CodexModels:
    """The Codex catalogue comes from an available Codex account; `{"models": []}` otherwise
    (the CLI accepts an empty list)."""

    def __init__(
        self, pool: PoolStore, secrets: Mapping[str, Secret], clock: Clock, client_version: str
    ) -> None:
        self.pool = pool
        self.secrets = secrets
        self.clock = clock
        self.client_version = client_version

    async def fetch(self, session: aiohttp.ClientSession) -> bytes:
        snapshot = self.pool.snapshot()
        now = self.clock.now()
        for credential in snapshot.credentials:
            if credential.kind is not Kind.CODEX or not available(
                snapshot.state(credential.id), now
            ):
                continue
            secret = self.secrets[credential.id]
            headers = codex_auth(secret)
            url = f"{credential.base_url}/codex/models"
            try:
                async with session.get(
                    url, headers=headers, params={"client_version": self.client_version}
                ) as response:
                    if response.status == 200:
                        return await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("codex models from %s failed: %s", credential.name, type(exc).__name__)
        return b'{"models":[]}'


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
                "status": effective_status(state, now).value,
                "until": state.until if limited else None,
                "reason": state.reason or None,
                "backoff_until": backoff,
                "back_at": max(back, default=None),
                "in_flight": state.in_flight,
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
