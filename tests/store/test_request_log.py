"""The request log contract, on SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from quotapool.store.batch import WRITER_NICENESS, BatchWriter
from quotapool.store.request_log import recent
from quotapool.store.sql.db import make_engine, migrate


def row(i: int) -> dict[str, object]:
    return {
        "request_id": f"r{i}",
        "at": 1000.0 + i,
        "route": "responses",
        "path": "/v1/responses",
        "model": "gpt-5.5",
        "credential": "a",
        "status": 200,
        "stream": False,
        "input_tokens": 1,
        "output_tokens": 2,
        "cached_tokens": 0,
        "ttfb_ms": 1.0,
        "latency_ms": 2.0,
        "attempts": 1,
        "decision": "[]",
        "error": None,
        "profile": "default",
        "scenario": "default",
        "sent_model": "gpt-5.5",
        "warmup": False,
        "client_key": None,
        "trace_id": None,
        "fallback": None,
    }


def test_batched_writes_and_recent(engine: Engine) -> None:
    log = BatchWriter(engine, batch_size=7)

    async def scenario() -> None:
        for i in range(20):
            log.submit(row(i))
        await log.flush()

    asyncio.run(scenario())
    rows = recent(engine, 5)
    assert [r["request_id"] for r in rows] == ["r15", "r16", "r17", "r18", "r19"]
    migrate(engine)  # idempotent


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'log.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_queue_is_bounded_and_never_blocks(tmp_path: Path) -> None:
    log = BatchWriter(make_engine(f"sqlite:///{tmp_path / 'l.db'}"), max_queued=10)
    for i in range(25):
        log.submit(row(i))
    assert log.dropped == 15


@pytest.mark.skipif(sys.platform != "linux", reason="threads have their own niceness on Linux")
def test_rows_are_written_by_a_thread_that_yields_the_cpu(tmp_path: Path) -> None:
    log = BatchWriter(make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    migrate(log.engine)
    niceness: list[int] = []
    write = log._write

    def observed(batch: list[dict[str, Any]], *where: Any) -> None:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        write(batch, *where)

    log._write = observed  # type: ignore[method-assign,assignment]

    async def scenario() -> None:
        log.submit(row(1))
        await log.flush()

    asyncio.run(scenario())
    assert niceness == [min(os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICENESS, 19)]
    assert [r["request_id"] for r in recent(log.engine, 1)] == ["r1"]
