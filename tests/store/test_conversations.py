"""Conversation bindings and response owners kept in the database: the same contract on SQLite
and PostgreSQL; bounded, expiring, and nothing lost while the database is out."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, func, select

from quotapool.store.affinity import PersistentAffinityStore
from quotapool.store.sql.db import make_engine, migrate
from quotapool.store.sql.schema import conversations
from tests.faults.gate import Gate
from tests.pg import postgres_schema


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(conversations)).scalar_one())


def test_a_new_store_reads_what_the_last_one_wrote(engine: Engine) -> None:
    first = PersistentAffinityStore(engine, ttl=100.0, owned_ttl=1_000.0)
    first.bind("session-id:s1", "bravo", 10.0)
    first.own("resp_1", "charlie", 10.0)
    long_key = "session-id:" + "x" * 5_000  # any header value: kept by digest
    first.bind(long_key, "alpha", 10.0)
    asyncio.run(first.flush())
    second = PersistentAffinityStore(engine, ttl=100.0, owned_ttl=1_000.0)
    assert second.load(20.0) == 3
    assert second.bound("session-id:s1", 20.0) == "bravo"
    assert second.bound(long_key, 20.0) == "alpha"
    assert second.owner("resp_1") == "charlie"
    assert second.load(2_000.0) == 0  # all expired by then


def test_a_moved_binding_is_rewritten_and_expired_rows_are_deleted(engine: Engine) -> None:
    store = PersistentAffinityStore(engine, ttl=100.0, owned_ttl=50.0, clean_every=1)
    store.bind("k", "alpha", 0.0)
    store.own("r", "alpha", 0.0)
    asyncio.run(store.flush())
    store.bind("k", "bravo", 10.0)  # moved: written at once
    for now in (11.0, 12.0, 13.0):  # used again: the TTL slides without a write each time
        assert store.bound("k", now) == "bravo"
    assert len(store.pending) == 1
    store.bind("other", "alpha", 60.0)  # a later write deletes what expired ("r" at 50)
    asyncio.run(store.flush())
    assert rows(engine) == 2
    fresh = PersistentAffinityStore(engine, ttl=100.0)
    fresh.load(61.0)
    assert fresh.bound("k", 61.0) == "bravo" and fresh.owner("r") is None


def test_the_store_is_bounded_in_memory_and_in_the_table(engine: Engine) -> None:
    store = PersistentAffinityStore(engine, max_bindings=5, max_owned=5, clean_every=1)
    for i in range(20):
        store.bind(f"k{i}", "a", 1.0 + i)
        store.own(f"r{i}", "a", 1.0 + i)
        asyncio.run(store.flush())  # each flush under the bounds; together far over them
    assert len(store) == 10 and rows(engine) == 10
    reloaded = PersistentAffinityStore(engine, max_bindings=5, max_owned=5)
    reloaded.load(2.0)
    assert len(reloaded) == 10 and reloaded.bound("k19", 2.0) == "a"


def test_changes_wait_while_postgresql_is_out() -> None:
    with postgres_schema() as url, Gate(("127.0.0.1", 5432)).running() as gate:
        direct = make_engine(url)
        migrate(direct)
        engine = make_engine(url.replace("127.0.0.1:5432", f"127.0.0.1:{gate.port}"))
        store = PersistentAffinityStore(engine)
        gate.close()
        store.bind("k", "alpha", 1.0)
        store.own("r", "bravo", 1.0)
        asyncio.run(store.flush())
        assert store.out and len(store.pending) == 2
        assert store.bound("k", 2.0) == "alpha"  # serving goes on from memory
        gate.open()
        asyncio.run(store.flush())
        assert not store.out and not store.pending
        engine.dispose()
        assert rows(direct) == 2
        direct.dispose()
