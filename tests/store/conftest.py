"""Store tests run on SQLite and on the local PostgreSQL alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quotapool.store.sql.db import make_engine, migrate
from tests.pg import postgres_schema


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
