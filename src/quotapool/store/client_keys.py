"""Client keys in the database (hashed; what each has used is read from the request log by
`store.usage`)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, insert, select, update

from quotapool.domain.client import KEY_PREFIX, ClientKey, key_hash, parse_limit
from quotapool.store.sql.schema import admin_token, client_keys


class ClientKeyError(Exception):
    """A key operation that cannot be done; the message says why."""


class UnknownClientKey(ClientKeyError):
    """No key has that name."""


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _key(row: Any) -> ClientKey:
    return ClientKey(
        id=row.id,
        name=row.name,
        hash=row.hash,
        prefix=row.prefix,
        models=frozenset(orjson.loads(row.models or "[]")),
        profile=row.profile,
        limits=tuple(parse_limit(text) for text in orjson.loads(row.limits or "[]")),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
    )


class ClientKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[ClientKey]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(client_keys).order_by(client_keys.c.name)).all()
        return [_key(row) for row in rows]

    def version(self) -> tuple[int, int, str | None]:
        """Changes when a key is created, changed or revoked, or the admin token rotated
        (polled by a running server): every change bumps its key's revision, whatever the
        clocks of the machines that made them say."""
        query = select(func.count(), func.sum(client_keys.c.revision))
        with self.engine.connect() as connection:
            count, revisions = connection.execute(query).one()
        return int(count), int(revisions or 0), self.admin_hash()

    def admin_hash(self) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(select(admin_token.c.hash)).scalar()

    def new_admin_token(self, now: float) -> str:
        """A new admin token (the old one stops working); returned once, stored hashed."""
        token = "qpa-" + secrets.token_urlsafe(32)
        with self.engine.begin() as connection:
            connection.execute(delete(admin_token))
            connection.execute(
                insert(admin_token).values(id=1, hash=key_hash(token), created_at=now)
            )
        return token

    def create(
        self,
        name: str,
        now: float,
        *,
        models: Sequence[str] = (),
        profile: str | None = None,
        limits: Sequence[str] = (),
        expires_at: float | None = None,
    ) -> tuple[ClientKey, str]:
        """A new key; returns it with the secret itself (shown once, never stored)."""
        for text in limits:
            parse_limit(text)  # refuse a bad limit before anything is stored
        if self._named(name) is not None:
            raise ClientKeyError(f"a key named {name!r} exists; pick another name or rotate it")
        secret = new_key()
        values = {
            "id": uuid.uuid4().hex,
            "name": name,
            "hash": key_hash(secret),
            "prefix": secret[:10],
            "models": orjson.dumps(sorted(models)).decode(),
            "profile": profile,
            "limits": orjson.dumps(list(limits)).decode(),
            "expires_at": expires_at,
            "revoked_at": None,
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as connection:
            connection.execute(insert(client_keys).values(values))
        found = self._named(name)
        assert found is not None
        return found, secret

    def revoke(self, name: str, now: float) -> ClientKey:
        self._change(name, revoked_at=now, updated_at=now)
        return self._existing(name)

    def rotate(self, name: str, now: float) -> tuple[ClientKey, str]:
        """A new secret for the same key (name, limits, usage); the old one stops working."""
        if self._existing(name).revoked_at is not None:
            raise ClientKeyError(f"key {name!r} is revoked; create a new one")
        secret = new_key()
        self._change(name, hash=key_hash(secret), prefix=secret[:10], updated_at=now)
        return self._existing(name), secret

    def _change(self, name: str, **values: Any) -> None:
        self._existing(name)
        with self.engine.begin() as connection:
            connection.execute(
                update(client_keys)
                .where(client_keys.c.name == name)
                .values({**values, "revision": client_keys.c.revision + 1})
            )

    def _named(self, name: str) -> ClientKey | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(client_keys).where(client_keys.c.name == name)).first()
        return _key(row) if row is not None else None

    def _existing(self, name: str) -> ClientKey:
        found = self._named(name)
        if found is None:
            known = ", ".join(k.name for k in self.all()) or "none yet"
            raise UnknownClientKey(f"no key named {name!r} (keys: {known})")
        return found
