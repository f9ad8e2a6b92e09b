"""The conversations behind responses from Codex accounts, kept to expand previous_response_id:
the same contract on SQLite and PostgreSQL; bounded, expiring, and kept while the database is
out."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, create_engine, text
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


def turn(n: int) -> list[dict[str, object]]:
    return [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"{n}"}]}
    ]


def test_a_conversation_costs_storage_linear_in_its_length(engine: Engine) -> None:
    store = ResponseItems(engine, ttl=100.0)
    store.keep("resp_0", turn(0), 1.0)
    for n in range(1, 200):
        store.keep(f"resp_{n}", turn(n), 1.0 + n, parent=f"resp_{n - 1}")
    assert asyncio.run(store.context("resp_199")) == [i for n in range(200) for i in turn(n)]
    assert store.memory_used < 200 * 400  # each turn once (a copy per turn: ~200 × 100 turns)
    asyncio.run(store.flush())
    again = ResponseItems(engine, ttl=100.0)  # a restart reads the chain from the table
    assert asyncio.run(again.context("resp_150")) == [i for n in range(151) for i in turn(n)]
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT sum(length(items)) FROM response_items"))
        assert stored.scalar_one() < 200 * 100


def test_a_conversation_lives_until_ttl_after_its_last_turn(engine: Engine) -> None:
    store = ResponseItems(engine, ttl=100.0)
    store.keep("resp_a", turn(0), 0.0)  # expires at 100
    store.keep("resp_b", turn(1), 90.0, parent="resp_a")  # expires at 190: keeps resp_a
    store.keep("resp_old", turn(2), 0.0)
    asyncio.run(store.flush())
    store._purge(150.0)
    fresh = ResponseItems(engine)
    assert asyncio.run(fresh.context("resp_b")) == turn(0) + turn(1)
    assert asyncio.run(fresh.context("resp_old")) is None
    store._purge(200.0)
    assert asyncio.run(ResponseItems(engine).context("resp_b")) is None


def test_a_chain_with_a_turn_gone_is_not_rebuilt_in_part(engine: Engine) -> None:
    store = ResponseItems(engine, memory_bytes=1)  # nothing stays in memory
    store.keep("resp_2", turn(2), 1.0, parent="resp_1")  # its parent was never kept here
    asyncio.run(store.flush())
    assert asyncio.run(store.context("resp_2")) is None
