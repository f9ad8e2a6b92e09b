"""Usage aggregates read from the request log: requests, tokens and cost per period."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, and_, func, select

from quotapool.store.client_keys import cost_of
from quotapool.store.sql.schema import requests

USAGE_BY = {
    "credential": requests.c.credential,
    "key": requests.c.client_key,
    "model": requests.c.sent_model,
}
"""What usage can be grouped by."""


def usage(
    engine: Engine, by: str, period_seconds: float, since: float, prices: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Requests, tokens and cost per `by` (credential, key or model) per period (an hour or a
    day, in UTC), from the request log since `since`; oldest period first."""
    column = USAGE_BY[by]
    bucket = func.floor(requests.c.at / period_seconds)
    query = (
        select(
            bucket,
            column,
            requests.c.sent_model,
            func.count(),
            func.coalesce(func.sum(requests.c.input_tokens), 0),
            func.coalesce(func.sum(requests.c.output_tokens), 0),
            func.coalesce(func.sum(requests.c.cached_tokens), 0),
        )
        .where(and_(requests.c.at >= since, requests.c.attempts > 0))
        .group_by(bucket, column, requests.c.sent_model)
    )
    totals: dict[tuple[float, str], dict[str, Any]] = {}
    with engine.connect() as connection:
        for start, name, model, count, tokens_in, tokens_out, cached in connection.execute(query):
            at = float(start) * period_seconds
            row = totals.setdefault(
                (at, name or ""),
                {
                    "at": at,
                    by: name,
                    "requests": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cached_tokens": 0,
                    "cost": 0.0,
                },
            )
            row["requests"] += int(count)
            row["input_tokens"] += int(tokens_in)
            row["output_tokens"] += int(tokens_out)
            row["cached_tokens"] += int(cached)
            row["cost"] += cost_of(model, int(tokens_in) + int(tokens_out), prices)
    return [totals[k] for k in sorted(totals)]
