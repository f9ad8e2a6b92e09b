"""A private PostgreSQL schema per test (the local server: 127.0.0.1:5432, database test)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import text

from quotapool.store.sql.db import make_engine

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def postgres_schema(server: str = "127.0.0.1:5432") -> Iterator[str]:
    """Yields a URL (through `server`, e.g. a fault gate) whose search path is a new schema."""
    schema = f"qp_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"postgresql+psycopg://postgres@{server}/test?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
