"""Reading the request log (`quotapool requests`, the admin API and the dashboard)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from quotapool.store.sql.schema import requests


def recent(
    engine: Engine,
    last: int,
    *,
    after_id: int = 0,
    before_id: int | None = None,
    since: float | None = None,
    until: float | None = None,
    credential: str | None = None,
    client_key: str | None = None,
    status: int | None = None,
    model: str | None = None,
    profile: str | None = None,
) -> list[dict[str, Any]]:
    """The newest `last` records (between rows `after_id` and `before_id`, matching the
    filters), oldest first."""
    query = select(requests).where(requests.c.id > after_id)
    for column, value in (
        (requests.c.credential, credential),
        (requests.c.client_key, client_key),
        (requests.c.status, status),
        (requests.c.model, model),
        (requests.c.profile, profile),
    ):
        if value is not None:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(requests.c.id < before_id)
    if since is not None:
        query = query.where(requests.c.at >= since)
    if until is not None:
        query = query.where(requests.c.at < until)
    query = query.order_by(requests.c.id.desc()).limit(last)
    with engine.connect() as connection:
        rows = [{str(k): v for k, v in row._mapping.items()} for row in connection.execute(query)]
    return rows[::-1]
