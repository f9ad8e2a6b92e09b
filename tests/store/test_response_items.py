"""The conversations behind responses from Codex accounts, kept to expand previous_response_id:
the same contract on SQLite and PostgreSQL; bounded, expiring, and kept while the database is
out."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError

from quotapool.store.response_items import ResponseItems

ITEMS = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]


def test_a_new_store_reads_what_the_last_one_wrote(engine: Engine) -> None:
    first = ResponseItems(engine, ttl=100.0)
    first.keep("resp_1", ITEMS, 10.0)
    first.keep("resp_1", ITEMS * 2, 11.0)  # a later version of the same id wins
    asyncio.run(first.flush())
    second = ResponseItems(engine, ttl=100.0)
    assert asyncio.run(second.context("resp_1")) == ITEMS * 2
    assert asyncio.run(second.context("resp_unknown")) is None
    assert asyncio.run(second.context("x" * 500)) is None  # too long to be an id of ours
    second._purge(200.0)
    assert asyncio.run(ResponseItems(engine).context("resp_1")) is None  # expired


def test_memory_is_bounded_by_bytes_and_huge_conversations_are_not_kept(engine: Engine) -> None:
    store = ResponseItems(engine, memory_bytes=2_000, max_bytes=1_000)
    for i in range(50):
        store.keep(f"resp_{i}", ITEMS, 1.0)
    assert store._held <= 2_000 and len(store._memory) < 50
    store.keep("resp_huge", [{"text": "x" * 5_000}], 1.0)
    assert "resp_huge" not in store.pending
    asyncio.run(store.flush())
    assert asyncio.run(store.context("resp_0")) == ITEMS  # out of memory, still in the table


def test_what_waits_survives_a_database_outage() -> None:
    down = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # nothing listens
    store = ResponseItems(down)
    store.keep("resp_1", ITEMS, 1.0)
    with pytest.raises(OperationalError):
        asyncio.run(store.flush())
    assert "resp_1" in store.pending  # waits for the next flush
    assert asyncio.run(store.context("resp_1")) == ITEMS  # and is served from memory meanwhile
