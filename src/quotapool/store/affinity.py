"""Which account holds a conversation: soft bindings (warm prompt cache, TTL) and hard ownership
(response ids that only their account knows). Bounded: it never grows without limit."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError

from quotapool.store.behind import Behind
from quotapool.store.sql.db import upsert_insert
from quotapool.store.sql.schema import conversations

log = logging.getLogger(__name__)


class AffinityStore(Protocol):
    def bound(self, key: str, now: float) -> str | None:
        """The credential a conversation is bound to (refreshing its TTL), or None."""
        ...

    def bind(self, key: str, credential_id: str, now: float) -> None: ...

    def owner(self, response_id: str) -> str | None:
        """The credential that produced `response_id` (only it knows the id)."""
        ...

    def own(self, response_id: str, credential_id: str, now: float) -> None: ...


class MemoryAffinityStore:
    """LRU-bounded maps; soft bindings expire `ttl` seconds after their last use."""

    def __init__(
        self, *, ttl: float = 1800.0, max_bindings: int = 50_000, max_owned: int = 50_000
    ) -> None:
        self.ttl = ttl
        self._bindings: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._max_bindings = max_bindings
        self._max_owned = max_owned

    def bound(self, key: str, now: float) -> str | None:
        found = self._bindings.get(key)
        if found is None:
            return None
        credential_id, expires = found
        if expires <= now:
            del self._bindings[key]
            return None
        self._bindings[key] = (credential_id, now + self.ttl)
        self._bindings.move_to_end(key)
        return credential_id

    def bind(self, key: str, credential_id: str, now: float) -> None:
        self._bindings[key] = (credential_id, now + self.ttl)
        self._bindings.move_to_end(key)
        while len(self._bindings) > self._max_bindings:
            self._bindings.popitem(last=False)

    def owner(self, response_id: str) -> str | None:
        return self._owners.get(response_id)

    def own(self, response_id: str, credential_id: str, now: float) -> None:
        self._owners[response_id] = credential_id
        self._owners.move_to_end(response_id)
        while len(self._owners) > self._max_owned:
            self._owners.popitem(last=False)

    def __len__(self) -> int:
        return len(self._bindings) + len(self._owners)


def _stored_key(key: str) -> str:
    """Keys are kept as they are unless too long for the table (a client's session header can
    be anything): then by digest, in memory and in the table alike."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    return "#" + hashlib.blake2b(key.encode(), digest_size=20).hexdigest()


MAX_KEY_CHARS = 240
BOUND, OWNED = "bound:", "owned:"
TURN_STATE = "turn-state:"


class PersistentAffinityStore(MemoryAffinityStore):
    """The memory store, kept in the `conversations` table too, so a restart changes nothing a
    client sees: its conversation stays on its account (warm prompt cache), and a
    `previous_response_id` still reaches the one account that knows it.

    Reads never touch the database (the table is loaded at start). Changes are written behind,
    every `flush_interval` seconds, as upserts; a binding whose expiry only moved is rewritten
    once half its TTL has passed. Expired rows are deleted as they go. While the database is
    out, changes wait in memory (bounded like the maps) and are written when it is back:
    kill -9 loses at most the last `flush_interval` of changes."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = 1800.0,
        owned_ttl: float = 86_400.0,
        max_bindings: int = 50_000,
        max_owned: int = 50_000,
        flush_interval: float = 0.25,
        clean_every: int = 240,
    ) -> None:
        super().__init__(ttl=ttl, max_bindings=max_bindings, max_owned=max_owned)
        self.engine = engine
        self.owned_ttl = owned_ttl
        self.flush_interval = flush_interval
        self.clean_every = clean_every
        """Flushes between two clean-ups of the table (a minute at the default interval)."""
        self._behind: Behind[str, tuple[str, float]] = Behind("conversations-writer", self._write)
        self.pending = self._behind.pending
        """Stored key → (credential, expires at), not yet written."""
        self._written: dict[str, float] = {}
        """Binding key → the expiry the table holds."""
        self._now = 0.0
        """The latest time seen (expired rows are deleted as of then)."""
        self._writes = 0
        self.out = False
        self.on_change: Callable[[str, str, float], None] | None = None
        """Told of each change as it is noted for the table (stored key with its prefix,
        credential, expiry): replicas share them (`store.redis.replication`)."""

    def load(self, now: float) -> int:
        """Read the live conversations of an earlier run; returns how many."""
        table = conversations
        rows: list[tuple[str, str, float]] = []
        with self.engine.connect() as connection:
            for prefix, bound in ((BOUND, self._max_bindings), (OWNED, self._max_owned)):
                query = (
                    select(table.c.key, table.c.credential, table.c.expires_at)
                    .where(table.c.key.startswith(prefix, autoescape=True))
                    .where(table.c.expires_at > now)
                    .order_by(table.c.expires_at.desc())
                    .limit(bound)
                )
                rows += [(key, cid, expires) for key, cid, expires in connection.execute(query)]
        for key, credential, expires in reversed(rows):  # least recently used first
            if key.startswith(BOUND):
                name = key[len(BOUND) :]
                self._bindings[name] = (credential, expires)
                self._written[name] = expires
            elif key.startswith(OWNED):
                self._owners[key[len(OWNED) :]] = credential
        self._trim()
        return len(rows)

    def bound(self, key: str, now: float) -> str | None:
        key = _stored_key(key)
        found = super().bound(key, now)
        if found is not None:
            self._keep(key, found, now)
        return found

    def bind(self, key: str, credential_id: str, now: float) -> None:
        key = _stored_key(key)
        moved = self._bindings.get(key, ("", 0.0))[0] != credential_id
        super().bind(key, credential_id, now)
        self._keep(key, credential_id, now, moved)

    def _keep(self, key: str, credential_id: str, now: float, moved: bool = False) -> None:
        """Write a binding that moved, or whose stored expiry is more than half a TTL old
        (a TTL slides with every use; rewriting it each time would cost a write a request)."""
        self._now = now
        written = self._written
        if moved or written.get(key, 0.0) < now + self.ttl / 2:
            written[key] = now + self.ttl
            self._note(BOUND + key, credential_id, now + self.ttl)
            if len(written) > 2 * self._max_bindings:  # forget evicted bindings
                self._written = {k: written[k] for k in self._bindings if k in written}

    def owner(self, response_id: str) -> str | None:
        return super().owner(_stored_key(response_id))

    def own(self, response_id: str, credential_id: str, now: float) -> None:
        key = _stored_key(response_id)
        super().own(key, credential_id, now)
        self._now = now
        # A turn state matters within its turn; a response id for as long as it can be continued.
        ttl = self.ttl if response_id.startswith(TURN_STATE) else self.owned_ttl
        self._note(OWNED + key, credential_id, now + ttl)

    def learn(self, key: str, credential_id: str, expires: float) -> None:
        """A change another replica made and wrote (a key as `on_change` gives it): kept in
        memory only."""
        if key.startswith(BOUND):
            name = key[len(BOUND) :]
            self._bindings[name] = (credential_id, expires)
            self._bindings.move_to_end(name)
            self._written[name] = expires
        elif key.startswith(OWNED):
            self._owners[key[len(OWNED) :]] = credential_id
            self._owners.move_to_end(key[len(OWNED) :])
        self._trim()

    def _note(self, key: str, credential_id: str, expires: float) -> None:
        if self.on_change is not None:
            self.on_change(key, credential_id, expires)
        pending = self.pending
        pending[key] = (credential_id, expires)
        if len(pending) > self._max_bindings + self._max_owned:
            del pending[next(iter(pending))]  # the oldest change: bounded while the db is out

    def _trim(self) -> None:
        while len(self._bindings) > self._max_bindings:
            self._bindings.popitem(last=False)
        while len(self._owners) > self._max_owned:
            self._owners.popitem(last=False)

    async def run(self) -> None:
        """Write changes behind until cancelled; then write what is left."""
        try:
            while True:
                await asyncio.sleep(self.flush_interval)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        try:
            await self._behind.flush()
        except SQLAlchemyError as exc:
            if not self.out:
                self.out = True
                log.warning("conversations: the database is out (%s); changes wait", exc)
            return
        if self.out:
            self.out = False
            log.warning("conversations: the database is back; waiting changes written")

    def _write(self, changes: dict[str, tuple[str, float]]) -> None:
        now = self._now
        table = conversations
        rows = [{"key": k, "credential": c, "expires_at": e} for k, (c, e) in changes.items()]
        insert = upsert_insert(self.engine)
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "credential": statement.excluded.credential,
                "expires_at": statement.excluded.expires_at,
            },
        )
        self._writes += 1
        with self.engine.begin() as connection:
            connection.execute(statement, rows)
            if self._writes % self.clean_every == 1 % self.clean_every:
                self._clean(connection, now)

    def _clean(self, connection: Connection, now: float) -> None:
        """Delete what expired, and the soonest-expiring rows past the memory bounds (the
        table never holds more than a restart would load)."""
        table = conversations
        connection.execute(delete(table).where(table.c.expires_at <= now))
        for prefix, bound in ((BOUND, self._max_bindings), (OWNED, self._max_owned)):
            kind = table.c.key.startswith(prefix, autoescape=True)
            cutoff = connection.execute(
                select(table.c.expires_at)
                .where(kind)
                .order_by(table.c.expires_at.desc())
                .offset(bound)
                .limit(1)
            ).scalar()
            if cutoff is not None:
                connection.execute(delete(table).where(kind, table.c.expires_at <= cutoff))
