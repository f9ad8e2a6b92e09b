"""The conversation so far behind each response relayed from a Codex account: the input it
answered, then its output items. The ChatGPT backend refuses `previous_response_id` over HTTP,
so quotapool expands it into this full input — on the response's own account or, when that one
is exhausted, on another.

Bounded: recent conversations in memory (by bytes), all of them in the database until `ttl`
after their last turn (written behind, every 250 ms; a database outage keeps them waiting in
memory), so a restart keeps them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError

from quotapool.store.behind import Behind
from quotapool.store.sql.db import upsert_insert
from quotapool.store.sql.schema import response_items
from quotapool.tasks import Outage

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
PURGE_SECONDS = 60.0
MAX_ID_CHARS = 128


class ResponseItems:
    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = 3600.0,
        memory_bytes: int = 64 * 1024 * 1024,
        max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.memory_bytes = memory_bytes
        self.max_bytes = max_bytes
        """A conversation bigger than this is not kept (its client must send it whole)."""
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._held = 0
        self._behind: Behind[str, tuple[bytes, float]] = Behind(
            "response-items-writer", self._write
        )
        self.pending = self._behind.pending
        """Response id → (items, expires at), not yet written."""

    def keep(self, response_id: str, items: list[Any], now: float) -> None:
        """`items`: the full input the response answered, then its output."""
        if len(response_id) > MAX_ID_CHARS:
            return
        data = orjson.dumps(items)
        if len(data) > self.max_bytes:
            return
        self._remember(response_id, data)
        self.pending[response_id] = (data, now + self.ttl)

    async def context(self, response_id: str) -> list[Any] | None:
        """The conversation up to and including `response_id`, or None if not kept."""
        data = self._memory.get(response_id)
        if data is None and (waiting := self.pending.get(response_id)) is not None:
            data = waiting[0]
        if data is None and len(response_id) <= MAX_ID_CHARS:
            try:
                data = await asyncio.to_thread(self._read, response_id)
            except SQLAlchemyError:
                data = None
        if data is None:
            return None
        if response_id in self._memory:
            self._memory.move_to_end(response_id)
        items: list[Any] = orjson.loads(data)
        return items

    def _remember(self, response_id: str, data: bytes) -> None:
        if (old := self._memory.pop(response_id, None)) is not None:
            self._held -= len(old)
        self._memory[response_id] = data
        self._held += len(data)
        while self._held > self.memory_bytes and self._memory:
            self._held -= len(self._memory.popitem(last=False)[1])

    def _read(self, response_id: str) -> bytes | None:
        query = select(response_items.c["items"]).where(response_items.c.response_id == response_id)
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar()
        return found.encode() if isinstance(found, str) else None

    async def run(self, now: Callable[[], float]) -> None:
        """Write what waits every 250 ms; delete what expired every minute."""
        outage = Outage(log, "keeping response items in the database")
        since_purge = 0.0
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                since_purge += FLUSH_SECONDS
                try:
                    await self.flush()
                    if since_purge >= PURGE_SECONDS:
                        since_purge = 0.0
                        await asyncio.to_thread(self._purge, now())
                except SQLAlchemyError as exc:
                    outage.failed(exc)
                else:
                    outage.ok()
        finally:
            await asyncio.shield(self._final_flush())

    async def _final_flush(self) -> None:
        try:
            await self.flush()
        except SQLAlchemyError as exc:
            log.warning("response items not written at shutdown: %s", exc)

    async def flush(self) -> None:
        await self._behind.flush()

    def _write(self, pending: dict[str, tuple[bytes, float]]) -> None:
        rows = [
            {"response_id": rid, "items": data.decode(), "expires_at": expires}
            for rid, (data, expires) in pending.items()
        ]
        statement = upsert_insert(self.engine)(response_items)
        statement = statement.on_conflict_do_update(
            index_elements=[response_items.c.response_id],
            set_={
                "items": statement.excluded["items"],
                "expires_at": statement.excluded.expires_at,
            },
        )
        with self.engine.begin() as connection:
            connection.execute(statement, rows)

    def _purge(self, now: float) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(response_items).where(response_items.c.expires_at <= now))
