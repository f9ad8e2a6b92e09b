"""Keeping Codex access tokens fresh: before expiry and after a 401, one refresh at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Protocol

from quotapool.accounts import claude_oauth, oauth
from quotapool.accounts.jwt import TokenError, claims
from quotapool.clock import Clock
from quotapool.domain.credential import Kind
from quotapool.domain.outcome import Refreshed, StatusSet
from quotapool.domain.state import Status
from quotapool.net.client import Outbound
from quotapool.secrets import Secret
from quotapool.store.accounts import AccountStore, Tokens
from quotapool.store.base import PoolStore
from quotapool.upstream.signals import parse_retry_after

log = logging.getLogger(__name__)

REFRESH_AHEAD_SECONDS = 300.0
"""Refresh when the access token has less than this left."""
RETRY_BASE_SECONDS = 15.0
RETRY_MAX_SECONDS = 600.0


@dataclass
class TokenState:
    """What the refresher knows about one account's tokens (kept in memory)."""

    account_row_id: str
    tokens: Tokens
    expires_at: float | None
    account_id: str | None
    retry_at: float = 0.0
    failures: int = 0
    kind: Kind = Kind.CODEX
    """Whose OAuth server renews it (a ChatGPT account's, or a Claude subscription's)."""


def expiry(access_token: str) -> float | None:
    try:
        exp = claims(access_token).get("exp")
    except TokenError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


class RefreshLease(Protocol):
    """One refresh per account across replicas (with refresh-token rotation, two at once can
    log an account out): the replica that takes the lease refreshes; the others wait for it
    and read the tokens it saved."""

    async def take(self, credential_id: str) -> bool:
        """True: refresh here (also when the lease cannot be asked for)."""
        ...

    async def wait(self, credential_id: str) -> None:
        """Until the replica that holds it is done (or its lease lapsed)."""
        ...

    async def give_back(self, credential_id: str) -> None: ...


class TokenRefresher:
    """Single-flight per account: concurrent callers await the same refresh (across replicas
    too, given a `lease`).

    `invalid_grant` (and the other permanent refusals) marks the account reauth_required; a
    transient failure backs off and leaves the account in the pool while its token is valid."""

    def __init__(
        self,
        *,
        store: AccountStore,
        pool: PoolStore,
        secrets: MutableMapping[str, Secret],
        clock: Clock,
        auth_base_url: str,
        outbound: Callable[[str], Outbound],
        claude_auth_base_url: str = "",
    ) -> None:
        self.store = store
        self.pool = pool
        self.secrets = secrets
        self.clock = clock
        self.auth_base_url = auth_base_url
        self.claude_auth_base_url = claude_auth_base_url
        self.outbound = outbound
        """A credential's way out (its egress)."""
        self.accounts: dict[str, TokenState] = {}
        self._flights: dict[str, asyncio.Future[bool]] = {}
        self.lease: RefreshLease | None = None
        """Set when replicas share the pool (`store.redis.replication`)."""
        self.refreshes = 0
        """Refresh calls made (for tests and metrics)."""

    def track(self, credential_id: str, state: TokenState) -> None:
        self.accounts[credential_id] = state

    def due(self, credential_id: str) -> bool:
        state = self.accounts.get(credential_id)
        if state is None or state.expires_at is None:
            return False
        now = self.clock.now()
        return state.expires_at - now < REFRESH_AHEAD_SECONDS and now >= state.retry_at

    def expired(self, credential_id: str) -> bool:
        state = self.accounts.get(credential_id)
        return bool(state and state.expires_at is not None and state.expires_at <= self.clock.now())

    async def refresh(self, credential_id: str) -> bool:
        """Refresh now (joining a refresh already running). True when the token is new."""
        flight = self._flights.get(credential_id)
        if flight is None:
            flight = asyncio.ensure_future(self._refresh(credential_id))  # noqa: TID251 (in _flights)
            self._flights[credential_id] = flight
            flight.add_done_callback(lambda _f: self._flights.pop(credential_id, None))
        return await asyncio.shield(flight)

    async def _refresh(self, credential_id: str) -> bool:
        state = self.accounts[credential_id]
        if not state.tokens.refresh_token:
            return False
        if self.lease is None:
            return await self._renew(credential_id, state)
        if not await self.lease.take(credential_id):
            await self.lease.wait(credential_id)
            return await self._saved_elsewhere(credential_id, state)
        try:
            # Another replica may have renewed before this one came: its refresh token is the
            # only one still valid (sending the used one would log the account out).
            if await self._saved_elsewhere(credential_id, state) and not self.due(credential_id):
                return True
            return await self._renew(credential_id, state)
        finally:
            await self.lease.give_back(credential_id)

    async def _saved_elsewhere(self, credential_id: str, state: TokenState) -> bool:
        """Install the tokens another replica renewed and saved; False if it did not."""
        rows = await asyncio.to_thread(self.store.all)
        row = next((r for r in rows if r.id == state.account_row_id), None)
        tokens = row.tokens(self.store.box) if row is not None else None
        if (
            row is None
            or tokens is None
            or tokens.access_token in (None, state.tokens.access_token)
        ):
            return False
        self._install(
            credential_id, state, tokens, expiry(tokens.access_token or "") or row.expires_at
        )
        return True

    def _install(
        self, credential_id: str, state: TokenState, tokens: Tokens, expires_at: float | None
    ) -> None:
        state.tokens, state.expires_at, state.failures, state.retry_at = tokens, expires_at, 0, 0.0
        if (held := self.secrets.get(credential_id)) is not None:  # (None: removed meanwhile)
            self.secrets[credential_id] = replace(held, token=tokens.access_token or "")
        self.pool.apply(Refreshed(credential_id, self.clock.now()))

    async def _fresh(
        self, credential_id: str, state: TokenState, now: float
    ) -> tuple[Tokens, float | None]:
        """New tokens from the account's OAuth server (a refresh token it did not renew is
        kept), and when the access token expires."""
        way, old = self.outbound(credential_id), state.tokens
        if state.kind is Kind.CLAUDE:
            claude = await claude_oauth.refresh(
                way, self.claude_auth_base_url, old.refresh_token or ""
            )
            lifetime = claude.expires_in
            renewed = Tokens(claude.access_token, claude.refresh_token or old.refresh_token)
            return renewed, now + lifetime if lifetime is not None else None
        fresh = await oauth.refresh(way, self.auth_base_url, old.refresh_token or "")
        renewed = Tokens(
            fresh.access_token,
            fresh.refresh_token or old.refresh_token,
            fresh.id_token or old.id_token,
        )
        return renewed, expiry(fresh.access_token)

    async def _renew(self, credential_id: str, state: TokenState) -> bool:
        self.refreshes += 1
        now = self.clock.now()
        try:
            tokens, expires_at = await self._fresh(credential_id, state, now)
        except oauth.OAuthError as exc:
            if exc.permanent:
                again = " --kind claude" if state.kind is Kind.CLAUDE else ""
                reason = f"refresh refused: {exc.code}; run `quotapool accounts login{again}` again"
                self.pool.apply(StatusSet(credential_id, now, Status.REAUTH_REQUIRED, reason))
                await asyncio.to_thread(
                    self.store.set_status_by_id,
                    state.account_row_id,
                    Status.REAUTH_REQUIRED.value,
                    reason,
                    now,
                )
                log.warning("account %s needs a new login: %s", credential_id, exc.code)
                return False
            state.failures += 1
            backoff = now + min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (state.failures - 1))
            asked = parse_retry_after(exc.retry_after, now) if exc.retry_after else None
            state.retry_at = max(backoff, asked or 0.0)  # a 429's Retry-After is honoured
            log.warning(
                "token refresh for %s failed (%s); retrying after %.0f s",
                credential_id,
                exc,
                state.retry_at - now,
            )
            return False
        self._install(credential_id, state, tokens, expires_at)  # in use before it is saved
        await asyncio.to_thread(
            self.store.save_tokens, state.account_row_id, tokens, state.expires_at, now
        )
        return True
