"""What was used, read from the request log: requests that reached an upstream, their tokens and
cost, for a client key's limits and for the usage aggregates of the admin API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, func, select

from quotapool.domain.client import Measure
from quotapool.store.sql.schema import requests

USAGE_BY = {
    "credential": requests.c.credential,
    "key": requests.c.client_key,
    "model": requests.c.sent_model,
}
"""What usage can be grouped by."""


@dataclass(frozen=True, slots=True)
class Spent:
    """What a key used in a window: requests that reached an upstream, tokens, USD."""

    requests: int = 0
    tokens: int = 0
    cost: float = 0.0

    def plus(self, requests: int, tokens: int, cost: float) -> Spent:
        return Spent(self.requests + requests, self.tokens + tokens, self.cost + cost)

    def of(self, measure: Measure) -> float:
        """The amount a limit on `measure` counts."""
        match measure:
            case Measure.REQUESTS:
                return self.requests
            case Measure.TOKENS:
                return self.tokens
            case Measure.COST:
                return self.cost


def cost_of(model: str | None, tokens: int, prices: Mapping[str, float]) -> float:
    """USD for `tokens` of `model` at its price per million tokens (0 when unknown)."""
    return tokens * prices.get(model or "", 0.0) / 1_000_000


def _totals(
    since: float, *groups: ColumnElement[Any], where: ColumnElement[bool] | None = None
) -> Select[Any]:
    """Per `groups` and model sent (its price sets the cost): requests that reached an
    upstream since `since`, and their input, output and cached tokens."""
    query = select(
        *groups,
        requests.c.sent_model,
        func.count(),
        func.coalesce(func.sum(requests.c.input_tokens), 0),
        func.coalesce(func.sum(requests.c.output_tokens), 0),
        func.coalesce(func.sum(requests.c.cached_tokens), 0),
    ).where(requests.c.at >= since, requests.c.attempts > 0)
    if where is not None:
        query = query.where(where)
    return query.group_by(*groups, requests.c.sent_model)


def spent(engine: Engine, key: str, since: float, prices: Mapping[str, float]) -> Spent:
    """What client key `key` used since `since`."""
    total = Spent()
    with engine.connect() as connection:
        rows = connection.execute(_totals(since, where=requests.c.client_key == key))
        for model, count, tokens_in, tokens_out, _cached in rows:
            tokens = int(tokens_in) + int(tokens_out)
            total = total.plus(int(count), tokens, cost_of(model, tokens, prices))
    return total


def usage(
    engine: Engine, by: str, period_seconds: float, since: float, prices: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Requests, tokens and cost per `by` (credential, key or model) per period (an hour or a
    day, in UTC), since `since`; oldest period first."""
    column = USAGE_BY[by]
    bucket = func.floor(requests.c.at / period_seconds)
    totals: dict[tuple[float, str], dict[str, Any]] = {}
    with engine.connect() as connection:
        rows = connection.execute(_totals(since, bucket, column))
        for start, name, model, count, tokens_in, tokens_out, cached in rows:
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
