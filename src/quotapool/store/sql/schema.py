"""Tables. Alembic migrations (in `migrations/`) create and change them; keep both in step."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("at", Float, nullable=False, doc="epoch seconds when the request arrived"),
    Column("route", String(32), nullable=False),
    Column("path", String(128), nullable=False),
    Column("model", String(128)),
    Column("credential", String(128)),
    Column("status", Integer, nullable=False),
    Column("stream", Boolean, nullable=False, default=False),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("ttfb_ms", Float),
    Column("latency_ms", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("decision", Text, doc="JSON: the routing explanation of every attempt"),
    Column("error", Text),
    Index("ix_requests_at", "at"),
)

COLUMNS = tuple(c.name for c in requests.columns if c.name != "id")
