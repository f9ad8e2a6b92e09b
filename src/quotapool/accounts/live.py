"""Accounts from the database, kept in step with the running pool.

The CLI (`quotapool accounts …`) writes to the database; a running server notices within
`accounts_watch_interval` and adds, updates, pauses, resumes or drops credentials without a
restart. Token refresh and the usage poller are wired here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping, Sequence

from quotapool.accounts.refresh import TokenRefresher
from quotapool.accounts.registry import LoadedAccount, load
from quotapool.clock import Clock
from quotapool.config import ConfigError
from quotapool.domain.credential import Credential
from quotapool.domain.egress import DIRECT, Egress
from quotapool.domain.outcome import StatusSet
from quotapool.domain.state import OUT_OF_SERVICE, Status
from quotapool.net.client import Outbound
from quotapool.secrets import Secret, SecretBox
from quotapool.store.accounts import AccountRow, AccountStore
from quotapool.store.memory import MemoryPoolStore
from quotapool.tasks import Outage, TaskSet

log = logging.getLogger(__name__)


class LiveAccounts:
    def __init__(
        self,
        *,
        store: AccountStore,
        box: SecretBox,
        codex_base_url: str,
        configured: Sequence[Credential],
        secrets: MutableMapping[str, Secret],
        clock: Clock,
        auth_base_url: str,
        outbound: Callable[[str], Outbound],
        tasks: TaskSet,
        default_egress: Egress = DIRECT,
        claude_base_url: str = "https://api.anthropic.com",
        claude_auth_base_url: str = "https://console.anthropic.com",
    ) -> None:
        self.store = store
        self.box = box
        self.codex_base_url = codex_base_url
        self.configured = tuple(configured)
        self.secrets = secrets
        self.clock = clock
        self.tasks = tasks
        self.default_egress = default_egress
        self.claude_base_url = claude_base_url
        self.claude_auth_base_url = claude_auth_base_url
        """The egress of accounts without their own (`[network] proxy_url`)."""
        self.pool: MemoryPoolStore | None = None
        self.refresher: TokenRefresher | None = None
        self._auth_base_url = auth_base_url
        self._outbound = outbound
        self._version = (0, 0.0)
        self._configured_secrets = {c.id: secrets[c.id] for c in self.configured}

    def load(self) -> tuple[list[Credential], dict[str, tuple[Status, str]]]:
        """Credentials (configured first, then the database's) and the database's statuses."""
        self._version = self.store.version()
        accounts = self._load(self.store.all())
        names = {c.name for c in self.configured}
        for account in accounts:
            if account.credential.name in names:
                raise ConfigError(
                    f"account {account.credential.name!r} is both in the config file and imported; "
                    "rename or remove one"
                )
        self._accounts = accounts
        self._install_secrets(accounts)
        statuses = {a.credential.id: (a.status, a.status_reason) for a in accounts}
        return [*self.configured, *(a.credential for a in accounts)], statuses

    def _load(self, rows: Sequence[AccountRow]) -> list[LoadedAccount]:
        return load(rows, self.box, self.codex_base_url, self.default_egress, self.claude_base_url)

    def attach(self, pool: MemoryPoolStore) -> TokenRefresher:
        self.pool = pool
        self.refresher = TokenRefresher(
            store=self.store,
            pool=pool,
            secrets=self.secrets,
            clock=self.clock,
            auth_base_url=self._auth_base_url,
            outbound=self._outbound,
            claude_auth_base_url=self.claude_auth_base_url,
        )
        self._track(self._accounts)
        return self.refresher

    def _install_secrets(self, accounts: Sequence[LoadedAccount]) -> None:
        fresh = {**self._configured_secrets, **{a.credential.id: a.secret for a in accounts}}
        for gone in set(self.secrets) - set(fresh):
            del self.secrets[gone]
        self.secrets.update(fresh)

    def _track(self, accounts: Sequence[LoadedAccount]) -> None:
        if self.refresher is None:
            return
        self.refresher.accounts = {
            a.credential.id: a.tokens for a in accounts if a.tokens is not None
        }

    def on_unauthorized(self, credential_id: str) -> None:
        """An upstream refused the token: refresh it (once; concurrent calls share it)."""
        if self.refresher is not None and credential_id in self.refresher.accounts:
            self.tasks.spawn(self.refresher.refresh(credential_id), f"refresh-{credential_id}")

    async def watch(self, interval: float) -> None:
        outage = Outage(log, "reading accounts from the database")
        while True:
            await asyncio.sleep(interval)
            try:
                version = await asyncio.to_thread(self.store.version)
                if version != self._version:
                    await self.reload()
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.ok()

    async def reload(self) -> None:
        assert self.pool is not None
        self._version = await asyncio.to_thread(self.store.version)
        rows = await asyncio.to_thread(self.store.all)
        accounts = self._load(rows)
        self._install_secrets(accounts)
        self.pool.reconfigure([*self.configured, *(a.credential for a in accounts)])
        self._track(accounts)
        snapshot, now = self.pool.snapshot(), self.clock.now()
        for account in accounts:
            current = snapshot.state(account.credential.id).status
            wanted = account.status
            back_in_service = wanted is Status.ACTIVE and current in OUT_OF_SERVICE
            if (wanted in OUT_OF_SERVICE and wanted is not current) or back_in_service:
                self.pool.apply(
                    StatusSet(account.credential.id, now, wanted, account.status_reason)
                )
        log.info("accounts reloaded: %d in the database", len(accounts))
