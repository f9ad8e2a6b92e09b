"""Store tests run on SQLite and on the local PostgreSQL alike; replica tests share a fake
upstream with three Codex accounts, and the real Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from quotapool.store.sql.db import make_engine, migrate
from quotapool.testing.fake_upstream import FakeUpstream, run_in_thread
from tests.pg import postgres_schema

REDIS = "redis://127.0.0.1:6379/9"
ACCOUNTS = [
    ("tok-a", "alpha", "acct-a"),
    ("tok-b", "bravo", "acct-b"),
    ("tok-c", "charlie", "acct-c"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'log.db'}"
        else:
            url = stack.enter_context(postgres_schema())
        engine = make_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def database() -> Iterator[str]:
    """A PostgreSQL schema of its own; ask for it before `harness`, so that the replicas stop
    before it is dropped (a replica still writing while it is deadlocks the drop)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream()
    for token, name, account in ACCOUNTS:
        upstream.add(token, name=name, account_id=account)
    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    with run_in_thread(upstream) as url:
        yield upstream, url
    client.flushdb()
    client.close()
