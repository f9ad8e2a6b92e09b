"""The conversation so far behind each response relayed from a Codex account. The ChatGPT
backend refuses `previous_response_id` over HTTP, so quotapool expands it into the full input —
on the response's own account or, when that one is exhausted, on another.

Each response keeps only its own turn — the input it added and its output — and the response it
continued: a conversation costs memory and storage linear in its length (a full copy per turn
made it quadratic), and is rebuilt by following the chain back.

Bounded: recent turns in memory (by the bytes they take), all of them in the database until `ttl`
after the last turn of their conversation (written behind, every 250 ms; a database outage keeps
them waiting in memory), so a restart keeps them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from quotapool.jsonbytes import dumps_kept
from quotapool.store.behind import Behind
from quotapool.store.sql.db import upsert_insert
from quotapool.store.sql.schema import response_items
from quotapool.tasks import Outage

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
PURGE_SECONDS = 60.0
MAX_ID_CHARS = 128
MAX_TURNS = 10_000
"""The longest chain followed back (a guard against a cycle in what the database holds)."""
ENTRY_BYTES = 300
"""What one kept turn takes in memory besides its JSON: its id, the tuple and the map entry."""


class Turn(NamedTuple):
    parent: str | None
    """The response it continued; None: it began the conversation."""
    data: bytes
    """JSON list: the input it added, then its output."""


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
        """What the turns kept in memory may take (their JSON and the entries that hold it)."""
        self.max_bytes = max_bytes
        """A turn bigger than this is not kept (its client must send the conversation whole)."""
        self._memory: OrderedDict[str, Turn] = OrderedDict()
        self._held = 0
        self._behind: Behind[str, tuple[Turn, float]] = Behind("response-items-writer", self._write)
        self.pending = self._behind.pending
        """Response id → (its turn, expires at), not yet written."""

    @property
    def memory_used(self) -> int:
        """Bytes the turns kept in memory take (bounded by `memory_bytes`)."""
        return self._held

    def memory(self) -> dict[str, tuple[int, int]]:
        """For /metrics: what the kept conversations take, and their bound."""
        return {"conversations": (self._held, self.memory_bytes)}

    def keep(
        self, response_id: str, items: list[Any], now: float, parent: str | None = None
    ) -> None:
        """`items`: the input the response added to its conversation (after `parent`, the
        response it continued), then its output."""
        if len(response_id) > MAX_ID_CHARS or (parent is not None and len(parent) > MAX_ID_CHARS):
            return
        data = dumps_kept(items)
        if len(data) > self.max_bytes:
            return
        turn = Turn(parent, data)
        self._remember(response_id, turn)
        self.pending[response_id] = (turn, now + self.ttl)

    async def context(self, response_id: str) -> list[Any] | None:
        """The conversation up to and including `response_id`, or None if it is not kept
        whole (an unknown id, or a turn of its chain gone)."""
        if len(response_id) > MAX_ID_CHARS:
            return None
        chain: list[bytes] = []
        at: str | None = response_id
        while at is not None:
            turn = await self._turn(at)
            if turn is None or len(chain) >= MAX_TURNS:
                return None
            chain.append(turn.data)
            at = turn.parent
        items: list[Any] = []
        for data in reversed(chain):
            items += orjson.loads(data)
        return items

    async def _turn(self, response_id: str) -> Turn | None:
        turn = self._memory.get(response_id)
        if turn is not None:
            self._memory.move_to_end(response_id)
            return turn
        if (waiting := self.pending.get(response_id)) is not None:
            return waiting[0]
        try:
            return await asyncio.to_thread(self._read, response_id)
        except SQLAlchemyError:
            return None

    def _remember(self, response_id: str, turn: Turn) -> None:
        if (old := self._memory.pop(response_id, None)) is not None:
            self._held -= len(old.data) + ENTRY_BYTES
        self._memory[response_id] = turn
        self._held += len(turn.data) + ENTRY_BYTES
        while self._held > self.memory_bytes and self._memory:
            self._held -= len(self._memory.popitem(last=False)[1].data) + ENTRY_BYTES

    def _read(self, response_id: str) -> Turn | None:
        query = select(response_items.c["items"], response_items.c.parent).where(
            response_items.c.response_id == response_id
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).first()
        if found is None or not isinstance(found[0], str):
            return None
        return Turn(found[1], found[0].encode())

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

    def _write(self, pending: dict[str, tuple[Turn, float]]) -> None:
        rows = [
            {
                "response_id": rid,
                "items": turn.data.decode(),
                "parent": turn.parent,
                "expires_at": expires,
            }
            for rid, (turn, expires) in pending.items()
        ]
        statement = upsert_insert(self.engine)(response_items)
        statement = statement.on_conflict_do_update(
            index_elements=[response_items.c.response_id],
            set_={
                "items": statement.excluded["items"],
                "parent": statement.excluded.parent,
                "expires_at": statement.excluded.expires_at,
            },
        )
        with self.engine.begin() as connection:
            connection.execute(statement, rows)

    def _purge(self, now: float) -> None:
        """Delete the turns expired, but those a turn still kept continues (its conversation
        lives until `ttl` after its last turn)."""
        with self.engine.begin() as connection:
            connection.execute(_PURGE, {"now": now})


_PURGE = text(
    """
    WITH RECURSIVE needed(id) AS (
        SELECT parent FROM response_items WHERE expires_at > :now AND parent IS NOT NULL
        UNION
        SELECT r.parent FROM response_items r JOIN needed ON r.response_id = needed.id
        WHERE r.parent IS NOT NULL
    )
    DELETE FROM response_items
    WHERE expires_at <= :now AND response_id NOT IN (SELECT id FROM needed)
    """
)
