"""What clients ask of the pool: requests in time order, each a turn of a conversation, with
what it costs the account (credits) and how long it runs. Built-in synthetic workloads, or one
recorded from the request log (times and sizes only). Deterministic for a seed."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from quotapool.store.sql.schema import requests

DAY = 86400.0
REQUESTS_PER_ACCOUNT_WEEK = 10_000
COST_SIGMA = 1.0
"""Spread of a request's cost (lognormal): most are small, a few are large (long contexts)."""


class Request(NamedTuple):
    at: float
    """Seconds from the start of the run."""
    conversation: int
    credits: float
    seconds: float
    """How long it runs (in flight)."""


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    describe: str
    requests: list[Request]


def _lognormal_mean(rng: random.Random, mean: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)


class _Builder:
    """Conversations of turns; scales the costs to the load asked for at the end."""

    def __init__(self, rng: random.Random, days: float) -> None:
        self.rng, self.days = rng, days
        self.turns: list[tuple[float, int, float, float]] = []
        self.conversations = 0

    def conversation(self, start: float, turns: int, gap: float) -> None:
        rng, at = self.rng, start
        self.conversations += 1
        for _ in range(turns):
            if at >= self.days * DAY:
                break
            seconds = min(600.0, _lognormal_mean(rng, 12.0, 0.8))
            self.turns.append(
                (at, self.conversations, _lognormal_mean(rng, 1.0, COST_SIGMA), seconds)
            )
            at += seconds + rng.expovariate(1.0 / gap)

    def build(self, name: str, describe: str, credits: float) -> Workload:
        self.turns.sort()
        total = sum(t[2] for t in self.turns) or 1.0
        scale = credits / total
        made = [Request(at, c, cost * scale, seconds) for at, c, cost, seconds in self.turns]
        return Workload(name, describe, made)


def _office_rate(at: float) -> float:
    """Relative demand at `at` (seconds from a Monday 00:00 UTC): office hours on weekdays,
    a little in the evening, almost nothing at night and on weekends."""
    day, hour = int(at // DAY) % 7, (at % DAY) / 3600.0
    if day >= 5:
        return 0.05
    if 9 <= hour < 18:
        return 1.0 if not 12 <= hour < 13 else 0.5
    if 18 <= hour < 22:
        return 0.25
    return 0.03


def _starts(
    rng: random.Random, days: float, per_day: float, rate: Callable[[float], float]
) -> list[float]:
    """Poisson start times, thinned by `rate` (0…1)."""
    found: list[float] = []
    at = 0.0
    while True:
        at += rng.expovariate(per_day / DAY)
        if at >= days * DAY:
            return found
        if rng.random() < rate(at):
            found.append(at)


def _turns(accounts: int, days: float) -> float:
    """How many requests a workload makes: `REQUESTS_PER_ACCOUNT_WEEK` per account."""
    return REQUESTS_PER_ACCOUNT_WEEK * accounts * days / 7


def steady(rng: random.Random, days: float, accounts: int, credits: float) -> Workload:
    b = _Builder(rng, days)
    turns = _turns(accounts, days)
    per_day = turns / days / 20  # conversations of ~20 turns
    for start in _starts(rng, days, per_day, lambda _: 1.0):
        b.conversation(start, rng.randint(5, 35), 30.0)
    return b.build("steady", "a team around the clock: conversations start evenly", credits)


def office(rng: random.Random, days: float, accounts: int, credits: float) -> Workload:
    b = _Builder(rng, days)
    turns = _turns(accounts, days)
    per_day = turns / days / 20 / 0.3  # the office rate averages about 0.3
    for start in _starts(rng, days, per_day, _office_rate):
        b.conversation(start, rng.randint(5, 35), 30.0)
    return b.build("office", "an office day: weekdays 9–18 UTC, quiet nights and weekends", credits)


def bursty(rng: random.Random, days: float, accounts: int, credits: float) -> Workload:
    b = _Builder(rng, days)
    turns = _turns(accounts, days)
    bursts = _starts(rng, days, 8, lambda _: 1.0)  # agents launched together, ~8 times a day
    per_burst = turns / max(1, len(bursts)) / 40
    for start in bursts:
        for _ in range(max(1, int(rng.gauss(per_burst, per_burst / 3)))):
            b.conversation(start + rng.uniform(0, 120), rng.randint(20, 60), 5.0)
    return b.build(
        "bursty", "agents launched in bursts: dozens of fast conversations at once", credits
    )


def parallel(rng: random.Random, days: float, accounts: int, credits: float) -> Workload:
    b = _Builder(rng, days)
    turns = _turns(accounts, days)
    per_day = turns / days / 300  # long conversations of ~300 turns
    for start in _starts(rng, days, per_day, lambda _: 1.0):
        b.conversation(start, rng.randint(150, 450), 20.0)
    return b.build("parallel", "many long conversations in parallel, each on its account", credits)


WORKLOADS: dict[str, Callable[[random.Random, float, int, float], Workload]] = {
    "steady": steady,
    "office": office,
    "bursty": bursty,
    "parallel": parallel,
}


def built_in(name: str, seed: int, days: float, accounts: int, weekly_demand: float) -> Workload:
    """Workload `name` for a pool of `accounts`, asking for `weekly_demand` credits a week
    (costs are scaled to it)."""
    try:
        make = WORKLOADS[name]
    except KeyError:
        known = ", ".join(WORKLOADS)
        raise ValueError(f"unknown workload {name!r}; choose one of: {known}") from None
    credits = weekly_demand * days / 7
    return make(random.Random(f"{seed}:{name}"), days, max(1, accounts), credits)


def from_log(engine: Engine, days: float, weekly_demand: float) -> Workload:
    """The request log's last `days`: each request's time and size (tokens), costs scaled in
    proportion to tokens so the recording asks for `weekly_demand` credits a week (what a token
    costs in credits is not published); each request is its own conversation (the log keeps
    no conversation key)."""
    query = select(
        requests.c.at, requests.c.input_tokens, requests.c.output_tokens, requests.c.latency_ms
    ).where(requests.c.attempts > 0, requests.c.warmup.is_(False))
    try:
        with engine.connect() as connection:
            rows = connection.execute(query.order_by(requests.c.at)).all()
    except SQLAlchemyError as exc:
        raise ValueError(f"the request log cannot be read: {exc.__class__.__name__}") from None
    if not rows:
        raise ValueError("the request log holds no request that reached an upstream")
    last = rows[-1].at
    rows = [r for r in rows if r.at >= last - days * DAY]
    first = rows[0].at
    turns = [
        (
            r.at - first,
            n,
            float(max(1, (r.input_tokens or 0) + (r.output_tokens or 0))),
            max(0.05, (r.latency_ms or 1000.0) / 1000.0),
        )
        for n, r in enumerate(rows)
    ]
    b = _Builder(random.Random(0), days)
    b.turns = turns
    credits = weekly_demand * days / 7
    return b.build("log", f"the request log: {len(turns):,} requests", credits)
