"""What the admin API and the dashboard read and change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.requests import Request

from quotapool.admin.session import Sessions, TrustedUser
from quotapool.control.keys import KeyRing
from quotapool.control.routing import LiveRouting
from quotapool.domain.credential import Credential
from quotapool.proxy.record import Record
from quotapool.routing.profiles import Routing
from quotapool.store.accounts import AccountStore
from quotapool.store.audit import AuditLog
from quotapool.store.base import PoolStore
from quotapool.store.client_keys import ClientKeyStore


@dataclass(frozen=True, slots=True)
class Control:
    pool: PoolStore
    accounts: AccountStore
    keys: KeyRing
    key_store: ClientKeyStore
    engine: Engine
    routing: Callable[[], Routing]
    """The routing in use."""
    live_routing: LiveRouting
    sessions: Sessions
    now: Callable[[], float]
    reload_accounts: Callable[[], Awaitable[None]]
    """Read the accounts from the database into the pool now."""
    probe: Callable[[Credential, str, float], Awaitable[Record]]
    """Send one minimal request pinned to a credential (model, timeout) and learn from it."""
    audit: AuditLog
    """Every change made here is recorded in it, with who made it (`actor`)."""
    trusted: TrustedUser | None = None
    """The proxy in front that signs dashboard users in (`trusted_user_header`), if any."""


def actor(request: Request) -> str:
    """Who made a change through the admin API: `dashboard`, `admin token` or `cli` (the run
    file's token: the command line on this machine), and from where."""
    who = getattr(request.state, "actor", "admin API")
    client = request.client.host if request.client else "?"
    return f"{who} from {client}"
