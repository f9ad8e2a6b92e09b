"""Nothing lost: poisoned values, refused rows, a database that is out, a restart in between.
The same contract on SQLite and PostgreSQL, for both tables the writers fill."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from quotapool.store.batch import BatchWriter
from quotapool.store.journal import Journal
from quotapool.store.request_log import recent
from quotapool.store.sql.db import make_engine, migrate
from quotapool.store.sql.schema import requests, usage_history
from tests.faults.gate import Gate
from tests.pg import postgres_schema
from tests.store.test_request_log import row


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
    else:
        with postgres_schema() as schema_url:
            yield schema_url


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def count(engine: Engine, table: Any = requests) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def write(log: BatchWriter, rows: list[dict[str, Any]]) -> None:
    async def scenario() -> None:
        for each in rows:
            log.submit(each)
        await log.flush()

    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def running(log: BatchWriter) -> AsyncIterator[None]:
    """The writer's job runs in the block, then is stopped as a server stops it (cancelled)."""
    runner = asyncio.ensure_future(log.run())
    try:
        yield
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def poisoned() -> list[dict[str, Any]]:
    rows = [row(i) for i in range(300)]
    rows[10]["model"] = "m" * 300  # over its 128-character column
    rows[20]["path"] = "/v1/responses" + "/" * 200
    rows[30]["input_tokens"] = 2**63  # over any integer column
    rows[31]["output_tokens"] = -(2**70)
    rows[40]["latency_ms"] = math.nan
    rows[41]["ttfb_ms"] = math.inf
    rows[50]["model"] = "gpt\x00-5"  # PostgreSQL refuses NUL in text
    rows[60]["status"] = None  # NOT NULL
    rows[70]["credential"] = 12345  # not a string
    rows[80]["error"] = "e" * 200_000
    return rows


def test_one_bad_value_never_takes_other_rows_with_it(engine: Engine, tmp_path: Path) -> None:
    log = BatchWriter(engine, journal=tmp_path / "j.jsonl")
    write(log, poisoned())
    stored = {r["request_id"]: r for r in recent(engine, 1000)}
    assert len(stored) == 300 and log.lost == 0
    assert stored["r10"]["model"].endswith("…[300 chars]") and len(stored["r10"]["model"]) == 128
    assert len(stored["r20"]["path"]) == 128 and "[213 chars]" in stored["r20"]["path"]
    assert stored["r30"]["input_tokens"] == 2**31 - 1
    assert stored["r31"]["output_tokens"] == -(2**31)
    assert stored["r40"]["latency_ms"] is None and stored["r41"]["ttfb_ms"] is None
    assert stored["r50"]["model"] == "gpt\ufffd-5"
    assert stored["r60"]["status"] == 0
    assert stored["r70"]["credential"] == "12345"
    assert stored["r80"]["error"].endswith("…[200000 chars]")
    assert stored["r0"] == {**row(0), "id": stored["r0"]["id"]}  # the others untouched


def test_usage_history_is_written(engine: Engine) -> None:
    history = BatchWriter(engine, usage_history)
    readings = [
        {
            "credential": "a",
            "at": 1.0 + i,
            "window": "primary",
            "used_percent": float(i),
            "resets_at": 99.0,
            "source": "headers",
        }
        for i in range(5)
    ]
    write(history, readings)
    assert count(engine, usage_history) == 5 and history.lost == 0


def refuse_status(engine: Engine, status: int) -> None:
    """Make the database itself refuse rows with this status (a constraint no shaping fixes)."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON requests "
                    f"WHEN NEW.status = {status} BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            connection.execute(
                text(f"ALTER TABLE requests ADD CONSTRAINT refuse CHECK (status <> {status})")
            )


def test_a_refused_row_is_isolated_counted_and_kept_aside(engine: Engine, tmp_path: Path) -> None:
    refuse_status(engine, 599)
    log = BatchWriter(engine, journal=tmp_path / "j.jsonl")
    rows = [row(i) for i in range(500)]
    for i in (3, 250, 499):
        rows[i]["status"] = 599
    write(log, rows)
    assert count(engine) == 497
    assert log.refused == 3 and log.health().lost == 3
    kept = [r for chunk, _ in Journal(tmp_path / "j.jsonl.rejected").chunks(10) for r in chunk]
    assert sorted(r["request_id"] for r in kept) == ["r250", "r3", "r499"]
    assert all(r["_refused"] for r in kept)


def test_rows_wait_in_the_journal_while_the_database_is_out(url: str, tmp_path: Path) -> None:
    """PostgreSQL through a gate that goes down; SQLite locked by another writer."""
    journal = tmp_path / "j.jsonl"

    async def scenario(engine: Engine, out: contextlib.AbstractContextManager[Any]) -> None:
        log = BatchWriter(engine, journal=journal, flush_interval=0.05)
        runner = asyncio.ensure_future(log.run())
        for i in range(100):
            log.submit(row(i))
        await asyncio.sleep(0.3)
        with out:
            for i in range(100, 1100):
                log.submit(row(i))
                if i % 100 == 0:
                    await asyncio.sleep(0.1)
            for _ in range(200):
                if log.health().state == "journaling":
                    break
                await asyncio.sleep(0.05)
            assert log.health().state == "journaling" and Journal(journal).pending()
        for _ in range(200):
            if log.health().state == "ok" and not log.health().journal_pending:
                break
            await asyncio.sleep(0.05)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        assert log.lost == 0

    if url.startswith("sqlite"):
        engine = make_engine(url)
        migrate(engine)
        asyncio.run(scenario(engine, sqlite_locked(url, engine)))
    else:
        with Gate(("127.0.0.1", 5432)).running() as gate:
            engine = make_engine(url.replace("127.0.0.1:5432", f"127.0.0.1:{gate.port}"))
            migrate(engine)
            asyncio.run(scenario(engine, gate_down(gate)))
            engine.dispose()
        engine = make_engine(url)
    assert count(engine) == 1100
    assert not journal.exists()
    engine.dispose()


@contextlib.contextmanager
def gate_down(gate: Gate) -> Iterator[None]:
    gate.close()
    yield
    gate.open()


@contextlib.contextmanager
def sqlite_locked(url: str, engine: Engine) -> Iterator[None]:
    """Another connection holds the write lock; busy_timeout is short so the test is quick."""
    with engine.begin() as connection:
        connection.execute(text("PRAGMA busy_timeout=5000"))
    engine.pool.dispose()
    holder = make_engine(url).raw_connection()
    cursor = holder.cursor()
    cursor.execute("BEGIN EXCLUSIVE")
    yield
    holder.rollback()
    holder.close()


def test_journaled_rows_are_written_on_the_next_start(engine: Engine, tmp_path: Path) -> None:
    """A run that ended (or was killed) while the database was out left a journal."""
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([row(i) for i in range(700)])
    journal.commit(0)
    with journal.path.open("ab") as file:
        file.write(b'{"request_id": "torn')  # a kill -9 in the middle of an append

    async def scenario() -> None:
        log = BatchWriter(engine, journal=journal.path, batch_size=200)
        async with running(log):
            log.submit(row(700))
            await asyncio.sleep(0.5)

    asyncio.run(scenario())
    assert count(engine) == 701
    assert not journal.path.exists()


def test_a_batch_handed_to_the_writer_thread_as_it_stops_is_written(engine: Engine) -> None:
    """The stop (a cancellation) comes while a batch waits for the writer thread: the batch is
    still written (cancelling the wait used to cancel the write, losing the batch silently)."""
    free = threading.Event()

    async def scenario() -> None:
        log = BatchWriter(engine, flush_interval=0.01)
        async with running(log):
            await asyncio.sleep(0.1)
            log._writer.submit(free.wait)  # the thread is busy: the next batch waits its turn
            log.submit(row(0))
            log.submit(row(1))
            await asyncio.sleep(0.1)  # a flush took them and waits for the thread
            threading.Timer(0.3, free.set).start()

    asyncio.run(scenario())
    assert count(engine) == 2


def test_a_row_that_comes_after_the_writer_stopped_is_written_at_the_next_start(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A request that ends after shutdown stopped waiting for them: its row is journaled, not
    queued for a writer that will never write again."""
    path = tmp_path / "j.jsonl"

    async def run_briefly(log: BatchWriter, late: list[dict[str, Any]]) -> None:
        async with running(log):
            log.submit(row(0))
            await asyncio.sleep(0.3)
        for each in late:
            log.submit(each)

    first = BatchWriter(engine, journal=path, flush_interval=0.05)
    asyncio.run(run_briefly(first, [row(1), row(2)]))
    assert count(engine) == 1 and first.late == 2 and first.lost == 0
    assert "rows came after the writer stopped; they wait in" in caplog.text
    asyncio.run(run_briefly(BatchWriter(engine, journal=path, flush_interval=0.05), []))
    assert count(engine) == 3  # the next start wrote them
    assert not path.exists()


def test_written_ahead_a_kill_loses_no_row(engine: Engine, tmp_path: Path) -> None:
    """kill -9 with rows still in memory: they are in the journal already, and the next start
    writes them (those stored before are not stored twice)."""
    path = tmp_path / "j.jsonl"

    async def killed() -> None:
        log = BatchWriter(engine, journal=path, write_ahead=True)
        for i in range(5):
            log.submit(row(i))
        await log.flush()  # stored, and the journal's position says so
        for i in range(5, 12):
            log.submit(row(i))  # then the process dies: no flush, no stop

    asyncio.run(killed())
    assert count(engine) == 5

    async def next_start() -> None:
        async with running(BatchWriter(engine, journal=path, write_ahead=True)):
            await asyncio.sleep(0.3)

    asyncio.run(next_start())
    assert count(engine) == 12
    assert not path.exists()  # every row stored: the journal is gone


def test_written_ahead_the_journal_starts_anew_when_big(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("quotapool.store.batch.ROTATE_BYTES", 2_000)
    path = tmp_path / "j.jsonl"
    sizes: list[int] = []

    async def scenario() -> None:
        log = BatchWriter(engine, journal=path, write_ahead=True, flush_interval=0.02)
        async with running(log):
            for i in range(60):
                log.submit(row(i))
                if i % 10 == 9:
                    await asyncio.sleep(0.1)
                    sizes.append(path.stat().st_size if path.exists() else 0)

    asyncio.run(scenario())
    assert count(engine) == 60
    assert max(sizes) < 2_000 + 10 * 1_000  # started anew, again and again
    assert not path.exists()


def test_a_replay_cut_short_does_not_store_rows_twice(engine: Engine, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([row(i) for i in range(10)])
    log = BatchWriter(engine, journal=journal.path)
    write(log, [row(i) for i in range(5)])  # stored, but the position was never noted
    asyncio.run(asyncio.to_thread(log._retry, True))
    assert count(engine) == 10 and log.lost == 0


def test_journal_files_are_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "sub" / "j.jsonl")
    journal.append([row(1)])
    assert journal.path.stat().st_mode & 0o777 == 0o600
    assert journal.path.parent.stat().st_mode & 0o777 == 0o700
