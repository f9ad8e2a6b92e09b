"""Batched writes that lose nothing: rows queue in memory; a writer thread inserts them.

Used for the request log and the usage history. The guarantee:
- a value that does not fit its column is cut or clamped (`rows.RowShape`), so one bad value
  never costs other rows; a row the database still refuses is isolated by bisecting its batch,
  counted in `lost`, and kept in `<journal>.rejected`;
- while the database is down, locked or slow to the point of failing, rows go to an append-only
  journal file and are replayed (with backoff retries) when it is back, and on the next start;
- with `write_ahead` (the request log), every row is appended to the journal as it is
  submitted and the journal's position follows what is stored: a kill -9 loses no row (the next
  start writes what was not stored; a row stored twice is skipped by its unique request id);
  without it, a kill -9 loses the rows still in memory (those of the last `flush_interval`);
- when the journal cannot be written either (a full disk), rows wait in memory, up to
  `max_held_bytes` of them (serialized); past it they are counted in `lost`. They are written
  as soon as the database or the journal takes them again.
Each change of state (out, back, journal failing, memory full) is logged once, not per row."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, Table
from sqlalchemy import exc as sa_exc

from quotapool.jsonbytes import dumps_kept
from quotapool.store.held import HeldRows
from quotapool.store.journal import Journal
from quotapool.store.rows import RowShape
from quotapool.store.sql.insert import ROWS_PER_INSERT, insert_sql
from quotapool.store.sql.schema import requests
from quotapool.store.writer_health import WriterHealth

log = logging.getLogger(__name__)
WRITER_NICENESS = 10
"""The writer thread runs this much nicer than the process (Linux, where threads have their
own niceness), so it yields the core to the event loop: a batch written on a busy core must not
hold back the requests being served (measured: p99 at c=1 ~1.5 → ~0.85 ms)."""
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
"""The database is down, unreachable, locked or out of connections: the rows wait."""


def _yield_cpu() -> None:
    if sys.platform == "linux":
        thread = threading.get_native_id()
        with contextlib.suppress(OSError):
            niceness = os.getpriority(os.PRIO_PROCESS, thread) + WRITER_NICENESS
            os.setpriority(os.PRIO_PROCESS, thread, min(niceness, 19))


class _Unavailable(Exception):
    """The database failed while rows were being written; `rows` are not stored."""

    def __init__(self, rows: list[dict[str, Any]], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.rows = rows
        self.cause = cause


class BatchWriter:
    """`submit` never blocks or touches the database; `run` writes batches off the event loop."""

    def __init__(
        self,
        engine: Engine,
        table: Table = requests,
        *,
        journal: Path | None = None,
        flush_interval: float = 0.25,
        batch_size: int = 500,
        max_queued: int = 100_000,
        write_ahead: bool = False,
        max_held_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.engine = engine
        self.table = table
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.shape = RowShape(table)
        self.journal = Journal(journal) if journal is not None else None
        self.rejected = Journal(journal.with_name(journal.name + ".rejected")) if journal else None
        """Rows the database refused even alone, kept for a look (never replayed)."""
        self.dropped = 0
        """Rows that fell out of a full queue."""
        self.refused = 0
        """Rows the database refused even alone."""
        self.out_since: float | None = None
        """When the database stopped taking rows (monotonic), None while it takes them."""
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST_SECONDS
        self._queue: deque[dict[str, Any]] = deque(maxlen=max_queued)
        self.write_ahead = write_ahead and self.journal is not None
        """Every row goes to the journal when it is submitted (see the module's docstring)."""
        self._ends: deque[int | None] = deque(maxlen=max_queued)
        """Write-ahead: where each queued row ends in the journal (None: it could not be
        written there)."""
        self._held = HeldRows(table.name, max_held_bytes)
        """Rows that neither the database nor the journal took yet."""
        self.journal_failing = False
        """The last write to the journal failed."""
        self._appended: int | None = None
        """Write-ahead: the journal's size (None until it is opened, at the first row)."""
        self._committed = 0
        """Write-ahead: the journal's position (rows before it are stored)."""
        self._wake = asyncio.Event()
        self._writer = ThreadPoolExecutor(1, f"{table.name}-writer", initializer=_yield_cpu)
        self.stopped = False
        """`run` has ended: a row submitted now goes straight to the journal."""
        self.late = 0
        """Rows submitted after `run` ended."""

    @property
    def held_bytes(self) -> int:
        """What the rows waiting in memory take (bounded by `max_held_bytes`)."""
        return self._held.bytes

    @property
    def max_held_bytes(self) -> int:
        return self._held.max_bytes

    @property
    def lost(self) -> int:
        return self.dropped + self.refused

    def health(self) -> WriterHealth:
        journaled = self.journal is not None and (
            self.out_since is not None if self.write_ahead else self.journal.pending()
        )
        state = "ok" if self.out_since is None else "holding" if self._held else "journaling"
        return WriterHealth(
            self.table.name,
            state,
            len(self._queue),
            journaled,
            self.lost,
            len(self._held),
            self.journal_failing,
        )

    def submit(self, record: dict[str, Any]) -> None:
        if self.stopped:
            self._late(record)
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1  # the oldest record falls out; counted, never blocks
        if self.write_ahead:
            self._ahead(record)
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def _ahead(self, record: dict[str, Any]) -> None:
        assert self.journal is not None
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        try:
            if self._appended is None:
                self._appended = self.journal.open()
            self.journal.write(line)
        except OSError as exc:  # still queued: stored unless the process dies first
            self._journal_failed(exc)
            self._ends.append(None)  # one end per queued row, always
            return
        self._appended += len(line)
        self._journal_works()
        self._ends.append(self._appended)

    def _rotate(self) -> None:
        """Write-ahead: a new journal once this one is big. No write is in flight (between
        flushes), so what is not stored is what is queued: written ahead again."""
        assert self.journal is not None
        self.journal.close()
        self.journal.clear()
        self._appended, self._committed = None, 0
        self._ends.clear()
        for row in self._queue:
            self._ahead(row)

    def _close_ahead(self) -> None:
        """Write-ahead, at the stop: no journal left behind when every row is stored."""
        assert self.journal is not None
        self.journal.close()
        if self.out_since is None and self._committed >= (self._appended or 0):
            self.journal.clear()

    def _take(self) -> tuple[list[dict[str, Any]], int, list[dict[str, Any]]]:
        """The next batch, where its last row ends in the journal (write-ahead; else 0), and
        its rows that could not be written ahead."""
        queue, count = self._queue, min(len(self._queue), self.batch_size)
        batch = [queue.popleft() for _ in range(count)]
        ends, end, unjournaled = self._ends, 0, []
        for row in batch if self.write_ahead else ():
            at = ends.popleft() if ends else None
            if at is None:
                unjournaled.append(row)
            else:
                end = at
        return batch, end, unjournaled

    async def flush(self) -> None:
        """Write everything queued so far (to the database, or to the journal while it is out)."""
        loop = asyncio.get_running_loop()
        while True:
            batch, end, unjournaled = self._take()
            if not batch:
                return
            # Shielded: a stop that comes while the batch waits for the thread must not cancel
            # its write (the batch would be lost, silently); the stop's own flush comes after.
            await asyncio.shield(
                loop.run_in_executor(self._writer, self._write, batch, end, unjournaled)
            )

    async def run(self) -> None:
        """Replay what an earlier run journaled, then flush every `flush_interval` (sooner when
        a batch fills); flush on cancel."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, self._retry, True)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                self._wake.clear()
                await self.flush()
                if self.out_since is not None:
                    await loop.run_in_executor(self._writer, self._retry, False)
                elif (self._appended or 0) > ROTATE_BYTES:
                    self._rotate()
        finally:
            await asyncio.shield(self.flush())
            if self._held:  # a last chance for the rows waiting in memory
                await asyncio.shield(loop.run_in_executor(self._writer, self._retry, True))
            self._writer.shutdown(wait=True)
            self.stopped = True
            if self._held:
                self._drop_held("the writer stopped")
            if self.write_ahead:
                self._close_ahead()
            if self.out_since is not None:
                log.warning(
                    "%s: the database is still out; journaled rows are written on the next start",
                    self.table.name,
                )

    def _late(self, row: dict[str, Any]) -> None:
        """A row that comes after the writer stopped (a request that ended after shutdown's
        wait for them): into the journal, written at the next start."""
        self.late += 1
        if self.late == 1:
            fate = "they are lost (no journal configured)"
            if self.journal is not None:
                fate = f"they wait in {self.journal.path} for the next start"
            log.warning("%s: rows came after the writer stopped; %s", self.table.name, fate)
        if self.journal is None:
            self.dropped += 1
        else:
            self._keep([row])
            if self._held:
                self._drop_held("they came after the writer stopped and the journal failed")

    # --- the writer thread ---

    def _write(
        self,
        batch: list[dict[str, Any]],
        end: int = 0,
        unjournaled: list[dict[str, Any]] | None = None,
    ) -> None:
        if self.out_since is not None and self.journal is not None:
            # in order: older rows wait in the journal (written ahead, most are there already)
            self._keep((unjournaled or []) if self.write_ahead else batch)
            return
        try:
            self._store(batch)
        except _Unavailable as out:
            self._went_out(out, unjournaled or [])
            return
        self._commit(end)

    def _commit(self, end: int) -> None:
        """Write-ahead: rows up to `end` are stored."""
        if self.journal is not None and end > self._committed:
            self.journal.commit(end)
            self._committed = end

    def _store(self, rows: list[dict[str, Any]]) -> None:
        """Insert `rows`; a refused batch is bisected so only the refused rows are left out.
        Raises `_Unavailable` with the rows not yet stored when the database fails."""
        todo = [rows]
        while todo:
            chunk = todo.pop()
            try:
                self._insert(chunk)
            except UNAVAILABLE as exc:
                raise _Unavailable(list(chain(chunk, *reversed(todo))), exc) from exc
            except Exception as exc:  # the data: a row the database refuses
                if len(chunk) == 1:
                    self._refuse(chunk[0], exc)
                else:
                    middle = len(chunk) // 2
                    todo += [chunk[middle:], chunk[:middle]]

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """One multi-row INSERT per chunk of rows: one statement (and one release of the GIL
        by the driver) per chunk instead of one per row."""
        shape, dialect = self.shape, self.engine.dialect
        with self.engine.begin() as connection:
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                sql = insert_sql(self.table.name, shape.columns, len(chunk), dialect.name)
                values = tuple(chain.from_iterable(map(shape.values, chunk)))
                connection.exec_driver_sql(sql, values)

    def _refuse(self, row: dict[str, Any], exc: BaseException) -> None:
        self.refused += 1
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("%s: a row was refused and kept aside (%s)", self.table.name, reason)
        if self.rejected is not None:
            self.rejected.append([{**row, "_refused": reason}])

    def _went_out(self, out: _Unavailable, unjournaled: list[dict[str, Any]]) -> None:
        if self.write_ahead:  # the rows are in the journal already, but those it refused
            missing = {id(row) for row in unjournaled}
            self._keep([row for row in out.rows if id(row) in missing])
            self._out(out.cause)
            return
        if self.journal is None:
            self.dropped += len(out.rows)
            log.error(
                "%s: the database is out (%s); %d rows lost (no journal configured)",
                self.table.name,
                out.cause,
                len(out.rows),
            )
            return
        self._keep(out.rows)
        self._out(out.cause)

    def _out(self, cause: BaseException) -> None:
        """A write failed: note when the database went out (logged once) and when to retry."""
        assert self.journal is not None
        now = time.monotonic()
        if self.out_since is None:
            self.out_since = now
            self._retry_delay = RETRY_FIRST_SECONDS
            log.warning(
                "%s: the database cannot take rows (%s); they wait in %s and are written when "
                "it is back",
                self.table.name,
                str(cause).splitlines()[0] if str(cause) else type(cause).__name__,
                self.journal.path,
            )
        self._retry_at = now + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_SECONDS)

    def _keep(self, rows: list[dict[str, Any]]) -> None:
        """Rows the database did not take: into the journal, else into memory (bounded)."""
        assert self.journal is not None
        if not rows:
            return
        lines = [dumps_kept(row, orjson.OPT_APPEND_NEWLINE) for row in rows]
        if not self._held:  # (once rows are held, later ones wait behind them)
            try:
                self.journal.append_lines(b"".join(lines))
            except OSError as exc:
                self._journal_failed(exc)
            else:
                self._journal_works()
                return
        self.dropped += self._held.hold(lines)

    def _journal_failed(self, exc: OSError) -> None:
        if not self.journal_failing:
            self.journal_failing = True
            log.error(
                "%s: the journal cannot be written (%s); rows wait in memory (up to %d MiB) "
                "until the database or the journal takes them",
                self.table.name,
                exc.strerror or exc,
                self.max_held_bytes // (1024 * 1024),
            )

    def _journal_works(self) -> None:
        if self.journal_failing:
            self.journal_failing = False
            log.warning("%s: the journal can be written again", self.table.name)

    def _unhold(self) -> None:
        """Rows held in memory to the database or, while it is out, to the journal (raises
        `_Unavailable` when neither takes them; they stay held)."""
        if not self._held:
            return
        lines = list(self._held.lines)
        rows = [orjson.loads(line) for line in lines]
        try:
            self._store(rows)
        except _Unavailable as out:
            assert self.journal is not None
            try:
                self.journal.append_lines(b"".join(lines))
            except OSError as exc:
                self._journal_failed(exc)
                raise out from exc
            self._journal_works()
        log.warning("%s: %d rows held in memory are kept again", self.table.name, len(lines))
        self._held.clear()

    def _drop_held(self, why: str) -> None:
        count = self._held.clear()
        self.dropped += count
        log.error("%s: %d rows held in memory are lost: %s", self.table.name, count, why)

    def _retry(self, at_start: bool) -> None:
        """Replay the journal when a retry is due; back to normal once it is empty."""
        journal = self.journal
        if journal is None or not (self._held or journal.pending()):
            return
        if not at_start and time.monotonic() < self._retry_at:
            return
        replayed = 0
        try:
            for rows, position in journal.chunks(self.batch_size) if journal.pending() else ():
                self._store(rows)
                journal.commit(position)
                self._committed = position
                replayed += len(rows)
            self._unhold()
        except _Unavailable as out:
            self._out(out.cause)
            with contextlib.suppress(_Unavailable):
                self._unhold()  # the journal may take them while the database is out
            return
        if not self.write_ahead:  # (written ahead, rows are appended meanwhile: it stays)
            journal.clear()
        out_for = (
            "" if self.out_since is None else f" after {time.monotonic() - self.out_since:.1f} s"
        )
        self.out_since = None
        log.warning(
            "%s: the database takes rows again%s; %d journaled rows written",
            self.table.name,
            out_for,
            replayed,
        )


ROTATE_BYTES = 64 * 1024 * 1024
"""Write-ahead: the journal starts anew past this size (~150,000 request rows)."""
