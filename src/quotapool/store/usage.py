"""What was used: from the request log, requests that reached an upstream, their tokens and
cost (a client key's limits, the usage aggregates of the admin API), failures and failovers;
from the usage history, each account's quota over time."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, case, func, select

from quotapool.domain.client import Measure
from quotapool.domain.forecast import Reading
from quotapool.store.sql.schema import requests, usage_history

USAGE_BY = {
    "credential": requests.c.credential,
    "key": requests.c.client_key,
    "model": requests.c.sent_model,
    "profile": requests.c.profile,
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


def _calendar(period: str) -> Callable[[float], float]:
    """Where the UTC week (from Monday) or month holding a time starts."""

    def week(at: float) -> float:
        day = datetime.fromtimestamp(at, UTC).date()
        monday = day.toordinal() - day.weekday()
        return datetime.combine(date.fromordinal(monday), datetime.min.time(), UTC).timestamp()

    def month(at: float) -> float:
        moment = datetime.fromtimestamp(at, UTC)
        return datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp()

    return week if period == "week" else month


def usage(
    engine: Engine,
    by: str,
    period: float | str,
    since: float,
    prices: Mapping[str, float],
    key: str | None = None,
) -> list[dict[str, Any]]:
    """Requests, tokens and cost per `by` (credential, key, model or profile) per period (a
    number of seconds — an hour, a day — or "week" or "month", in UTC), since `since`, of one
    client `key` if given; oldest period first."""
    column = USAGE_BY[by]
    seconds = 86400.0 if isinstance(period, str) else period
    starts = _calendar(period) if isinstance(period, str) else (lambda at: at)
    bucket = func.floor(requests.c.at / seconds)
    totals: dict[tuple[float, str], dict[str, Any]] = {}
    where = requests.c.client_key == key if key is not None else None
    with engine.connect() as connection:
        rows = connection.execute(_totals(since, bucket, column, where=where))
        for start, name, model, count, tokens_in, tokens_out, cached in rows:
            at = starts(float(start) * seconds)
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


def as_csv(rows: list[dict[str, Any]], by: str) -> str:
    """Usage rows as CSV (a spreadsheet's): the period's start as an ISO date and time."""
    out = io.StringIO()
    columns = ["period", by, "requests", "input_tokens", "output_tokens", "cached_tokens", "cost"]
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        period = datetime.fromtimestamp(row["at"], UTC).isoformat(timespec="minutes")
        writer.writerow({**row, "period": period, "cost": f"{row['cost']:.4f}"})
    return out.getvalue()


def activity(engine: Engine, period_seconds: float, since: float) -> list[dict[str, Any]]:
    """Per period since `since`: every request, those that failed (status ≥ 400), and the
    failovers (attempts after the first); oldest period first."""
    bucket = func.floor(requests.c.at / period_seconds)
    failed = func.sum(case((requests.c.status >= 400, 1), else_=0))
    moved = func.sum(case((requests.c.attempts > 1, requests.c.attempts - 1), else_=0))
    query = (
        select(bucket, func.count(), failed, moved)
        .where(requests.c.at >= since)
        .group_by(bucket)
        .order_by(bucket)
    )
    with engine.connect() as connection:
        return [
            {
                "at": float(start) * period_seconds,
                "requests": int(count),
                "errors": int(errors or 0),
                "failovers": int(failovers or 0),
            }
            for start, count, errors, failovers in connection.execute(query)
        ]


def quota_history(
    engine: Engine, since: float, credential: str | None = None, limit: int = 5000
) -> list[dict[str, Any]]:
    """Quota readings (window used %, its reset, where it was learned) since `since`, oldest
    first: each account's quota over time."""
    query = select(
        usage_history.c.credential,
        usage_history.c.at,
        usage_history.c.window,
        usage_history.c.used_percent,
        usage_history.c.resets_at,
        usage_history.c.source,
    ).where(usage_history.c.at >= since)
    if credential is not None:
        query = query.where(usage_history.c.credential == credential)
    query = query.order_by(usage_history.c.at.desc()).limit(limit)
    with engine.connect() as connection:
        rows = [{str(k): v for k, v in row._mapping.items()} for row in connection.execute(query)]
    return rows[::-1]


def readings(engine: Engine, since: float) -> dict[tuple[str, str], list[Reading]]:
    """Each (credential, window)'s readings since `since`, oldest first (what a forecast reads
    a pace from)."""
    query = (
        select(
            usage_history.c.credential,
            usage_history.c.window,
            usage_history.c.at,
            usage_history.c.used_percent,
            usage_history.c.resets_at,
        )
        .where(usage_history.c.at >= since)
        .where(usage_history.c.window.in_(("primary", "secondary")))
        .order_by(usage_history.c.at)
    )
    found: dict[tuple[str, str], list[Reading]] = {}
    with engine.connect() as connection:
        for credential, window, at, used, resets in connection.execute(query):
            found.setdefault((credential, window), []).append(Reading(at, used, resets))
    return found


def burn(engine: Engine, since: float) -> list[tuple[str, str, int]]:
    """Tokens spent since `since` per routing profile and model sent: (profile, model,
    tokens), what a forecast splits the pool's pace by."""
    tokens = func.coalesce(func.sum(requests.c.input_tokens), 0) + func.coalesce(
        func.sum(requests.c.output_tokens), 0
    )
    query = (
        select(requests.c.profile, requests.c.sent_model, tokens)
        .where(requests.c.at >= since, requests.c.attempts > 0)
        .group_by(requests.c.profile, requests.c.sent_model)
    )
    with engine.connect() as connection:
        return [
            (profile or "default", model or "?", int(spent))
            for profile, model, spent in connection.execute(query)
            if spent
        ]
