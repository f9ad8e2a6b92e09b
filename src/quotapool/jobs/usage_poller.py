"""Polls each subscription's usage, spread over the interval: `GET {codex_base_url}/wham/usage`
for a ChatGPT account, `GET {claude_api_base_url}/api/oauth/usage` for a Claude subscription."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from quotapool.accounts.claude_oauth import oauth_headers
from quotapool.clock import Clock
from quotapool.domain.credential import Credential, Kind
from quotapool.domain.outcome import Observed
from quotapool.domain.quota import QuotaReading
from quotapool.domain.state import OUT_OF_SERVICE
from quotapool.net.client import JSON_CALL_ERRORS, Outbound, read_json
from quotapool.secrets import Secret
from quotapool.store.base import PoolStore
from quotapool.upstream.codex import codex_auth
from quotapool.upstream.signals import parse_claude_usage, parse_wham_usage

log = logging.getLogger(__name__)
Parse = Callable[[Any, float], QuotaReading | None]
USAGE: dict[Kind, tuple[str, Callable[[Secret], dict[str, str]], Parse]] = {
    Kind.CODEX: ("/wham/usage", codex_auth, parse_wham_usage),
    Kind.CLAUDE: ("/api/oauth/usage", lambda s: oauth_headers(s.token), parse_claude_usage),
}
"""Per kind: the usage path under its base URL, its headers, and how to read the answer."""
BACKOFF_MAX_SECONDS = 3600.0


class UsagePoller:
    """Each account is polled once per `interval`; polls are spaced `interval / accounts` apart
    so they never come in bursts. Paused and reauth-required accounts are skipped; a 401/403
    backs that account off (doubling) and asks for a token refresh on 401."""

    def __init__(
        self,
        *,
        pool: PoolStore,
        secrets: Mapping[str, Secret],
        clock: Clock,
        outbound: Callable[[str], Outbound],
        interval: float,
        on_unauthorized: Callable[[str], None],
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.pool = pool
        self.secrets = secrets
        self.clock = clock
        self.outbound = outbound
        """A credential's way out (its egress)."""
        self.interval = interval
        self.on_unauthorized = on_unauthorized
        self.active = active
        """False while another replica polls (it holds the leader lease)."""
        self._skip_until: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def _due(self) -> list[Credential]:
        snapshot, now = self.pool.snapshot(), self.clock.now()
        return [
            c
            for c in snapshot.credentials
            if c.kind in USAGE
            and snapshot.state(c.id).status not in OUT_OF_SERVICE
            and self._skip_until.get(c.id, 0.0) <= now
        ]

    async def run(self) -> None:
        while True:
            accounts = self._due()
            if not accounts:
                await asyncio.sleep(self.interval)
                continue
            gap = self.interval / len(accounts)
            for credential in accounts:
                if self.active():
                    await self.poll(credential)
                await asyncio.sleep(gap)

    async def poll(self, credential: Credential) -> None:
        secret = self.secrets.get(credential.id)
        if secret is None:
            return
        path, headers, parse = USAGE[credential.kind]
        try:
            async with self.outbound(credential.id).get(
                f"{credential.base_url}{path}", headers(secret)
            ) as response:
                status = response.status
                payload = await read_json(response) if status == 200 else None
        except JSON_CALL_ERRORS as exc:
            log.info("usage poll of %s failed: %s", credential.name, type(exc).__name__)
            return
        now = self.clock.now()
        if status in (401, 403):
            failures = self._failures[credential.id] = self._failures.get(credential.id, 0) + 1
            self._skip_until[credential.id] = now + min(
                BACKOFF_MAX_SECONDS, self.interval * 2**failures
            )
            if status == 401:
                self.on_unauthorized(credential.id)
            return
        self._failures.pop(credential.id, None)
        if (quota := parse(payload, now)) is not None:
            self.pool.apply(Observed(credential.id, now, quota, "poll"))
