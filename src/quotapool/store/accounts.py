"""Accounts in the database: identity, settings, status, and secrets sealed with Fernet."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, insert, select, update

from quotapool.domain.credential import Kind
from quotapool.secrets import SecretBox
from quotapool.store.sql.schema import accounts


class AccountError(Exception):
    """An account operation that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """What authenticates a Codex account (or, with only `api_key`, an API key)."""

    access_token: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:
        return "Tokens(***)"

    def sealed(self, box: SecretBox) -> str:
        fields = {
            k: v
            for k in ("access_token", "refresh_token", "id_token", "api_key")
            if (v := getattr(self, k))
        }
        return box.seal(orjson.dumps(fields).decode())

    @classmethod
    def unsealed(cls, box: SecretBox, token: str) -> Tokens:
        return cls(**orjson.loads(box.open(token)))


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: str
    name: str
    kind: Kind
    identity: str | None
    email: str | None
    plan: str | None
    account_id: str | None
    base_url: str | None
    models: tuple[str, ...]
    weight: float
    priority: int
    policy: str
    status: str
    status_reason: str | None
    sealed: str
    expires_at: float | None
    last_refresh: float | None
    updated_at: float
    sealed_proxy: str | None = None

    def tokens(self, box: SecretBox) -> Tokens:
        return Tokens.unsealed(box, self.sealed)

    def proxy(self, box: SecretBox) -> str | None:
        """Its own egress: a proxy URL or "direct"; None: the server's default."""
        return box.open(self.sealed_proxy) if self.sealed_proxy else None


def _row(mapping: Any) -> AccountRow:
    return AccountRow(
        id=mapping["id"],
        name=mapping["name"],
        kind=Kind(mapping["kind"]),
        identity=mapping["identity"],
        email=mapping["email"],
        plan=mapping["plan"],
        account_id=mapping["account_id"],
        base_url=mapping["base_url"],
        models=tuple(orjson.loads(mapping["models"] or "[]")),
        weight=mapping["weight"],
        priority=mapping["priority"],
        policy=mapping["policy"],
        status=mapping["status"],
        status_reason=mapping["status_reason"],
        sealed=mapping["secret"],
        expires_at=mapping["expires_at"],
        last_refresh=mapping["last_refresh"],
        updated_at=mapping["updated_at"],
        sealed_proxy=mapping["proxy"],
    )


@dataclass(frozen=True, slots=True)
class Login:
    """A ChatGPT login or a Claude subscription's, ready to store (from a credentials file or
    an OAuth flow)."""

    identity: str
    account_id: str
    email: str | None
    plan: str | None
    tokens: Tokens
    expires_at: float | None
    source: str
    """Where it came from (a file path, "login"), for messages."""
    kind: Kind = Kind.CODEX


class AccountStore:
    """All account reads and writes. Every write bumps `updated_at`, which a running server
    watches to pick changes up."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    def all(self) -> list[AccountRow]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(accounts).order_by(accounts.c.name)).mappings()
            return [_row(r) for r in rows]

    def get(self, name: str) -> AccountRow:
        with self.engine.connect() as connection:
            found = (
                connection.execute(select(accounts).where(accounts.c.name == name))
                .mappings()
                .first()
            )
        if found is None:
            known = ", ".join(r.name for r in self.all()) or "none"
            raise AccountError(f"no account named {name!r} (accounts: {known})")
        return _row(found)

    def version(self) -> tuple[int, float]:
        """Changes whenever any account is added, changed or removed."""
        with self.engine.connect() as connection:
            count, latest = connection.execute(
                select(func.count(), func.max(accounts.c.updated_at))
            ).one()
        return int(count), float(latest or 0.0)

    def save_logins(
        self, logins: Sequence[Login], now: float, proxy: str | None = None
    ) -> list[tuple[str, bool]]:
        """Insert or update (same identity = same account) in one transaction: all or nothing.
        `proxy`: their egress (a proxy URL or "direct"); None leaves an account's as it is.

        Returns (name, created) per login."""
        results: list[tuple[str, bool]] = []
        with self.engine.begin() as connection:
            taken = {r["name"] for r in connection.execute(select(accounts.c.name)).mappings()}
            for login in logins:
                existing = connection.execute(
                    select(accounts.c.id, accounts.c.name).where(
                        accounts.c.identity == login.identity
                    )
                ).first()
                values = {
                    "email": login.email,
                    "plan": login.plan,
                    "account_id": login.account_id,
                    "secret": login.tokens.sealed(self.box),
                    "expires_at": login.expires_at,
                    "updated_at": now,
                }
                if proxy is not None:
                    values["proxy"] = self.box.seal(proxy)
                if existing is not None:
                    connection.execute(
                        update(accounts).where(accounts.c.id == existing.id).values(**values)
                    )
                    results.append((existing.name, False))
                    continue
                name = _unique_name(login.email or login.account_id, login.account_id, taken)
                taken.add(name)
                connection.execute(
                    insert(accounts).values(
                        id=uuid.uuid4().hex,
                        name=name,
                        kind=login.kind.value,
                        identity=login.identity,
                        models="[]",
                        weight=1.0,
                        priority=0,
                        policy="normal",
                        status="active",
                        created_at=now,
                        **values,
                    )
                )
                results.append((name, True))
        return results

    def add_key(
        self,
        *,
        kind: Kind,
        name: str,
        base_url: str,
        api_key: str,
        models: Sequence[str],
        weight: float,
        priority: int,
        now: float,
        proxy: str | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            if connection.execute(select(accounts.c.id).where(accounts.c.name == name)).first():
                raise AccountError(f"an account named {name!r} exists already; pick another --name")
            connection.execute(
                insert(accounts).values(
                    id=uuid.uuid4().hex,
                    name=name,
                    kind=kind.value,
                    base_url=base_url.rstrip("/"),
                    models=orjson.dumps(list(models)).decode(),
                    weight=weight,
                    priority=priority,
                    policy="normal",
                    status="active",
                    secret=Tokens(api_key=api_key).sealed(self.box),
                    proxy=self.box.seal(proxy) if proxy is not None else None,
                    created_at=now,
                    updated_at=now,
                )
            )

    def set_status(self, name: str, status: str, reason: str | None, now: float) -> None:
        self.set_status_by_id(self.get(name).id, status, reason, now)

    def set_status_by_id(
        self, account_id: str, status: str, reason: str | None, now: float
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(status=status, status_reason=reason, updated_at=now)
            )

    def save_tokens(
        self, account_id: str, tokens: Tokens, expires_at: float | None, now: float
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(
                    secret=tokens.sealed(self.box),
                    expires_at=expires_at,
                    last_refresh=now,
                    updated_at=now,
                )
            )

    def set_proxy(self, name: str, proxy: str | None, now: float) -> None:
        """`proxy`: a proxy URL or "direct"; None: the server's default."""
        row_id = self.get(name).id
        sealed = self.box.seal(proxy) if proxy is not None else None
        with self.engine.begin() as connection:
            connection.execute(
                update(accounts).where(accounts.c.id == row_id).values(proxy=sealed, updated_at=now)
            )

    def remove(self, name: str) -> None:
        self.get(name)
        with self.engine.begin() as connection:
            connection.execute(delete(accounts).where(accounts.c.name == name))


def _unique_name(base: str, account_id: str, taken: set[str]) -> str:
    """The email; the same email in another workspace gets the account id appended."""
    if base not in taken:
        return base
    name = f"{base} ({account_id[:12]})"
    suffix = 2
    while name in taken:
        name = f"{base} ({account_id[:12]}-{suffix})"
        suffix += 1
    return name
