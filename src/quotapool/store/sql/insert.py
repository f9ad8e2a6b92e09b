"""The multi-row INSERT the batched writers send."""

from __future__ import annotations

from functools import lru_cache

ROWS_PER_INSERT = 100
"""Rows per statement: 16 columns × 100 stays far below every driver's parameter limit."""


@lru_cache(maxsize=32)
def insert_sql(table: str, columns: tuple[str, ...], rows: int, dialect: str) -> str:
    """A driver-level multi-row INSERT (Core's per-row processing costs more than the write);
    every name quoted (`window` is reserved on PostgreSQL)."""
    mark = "?" if dialect == "sqlite" else "%s"
    row = f"({', '.join(mark for _ in columns)})"
    names = ", ".join(f'"{name}"' for name in columns)
    values = ", ".join([row] * rows)
    # A row replayed twice (a crash between storing a journal chunk and noting it) is skipped.
    return f'INSERT INTO "{table}" ({names}) VALUES {values} ON CONFLICT DO NOTHING'
