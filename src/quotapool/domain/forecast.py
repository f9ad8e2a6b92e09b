"""When quota runs out at the current pace: each account's windows, and the pool's weekly
credits. Pure.

An account's pace is read from its own readings (`pace`); a window at that pace runs out, or
reaches its reset at some use (`project`). The pool spends its demand (every account's pace, in
credits) from the credits that expire soonest first, as the default strategy does, each weekly
window coming back whole at its reset: when nothing is left before the next reset, it runs
out (`pool`), and what is left in a window when it resets expires unused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from quotapool.domain.credential import DEFAULT_CAPACITY, PLAN_CAPACITY, SUBSCRIPTIONS, Kind

HOUR = 3600.0
WEEK = 168 * HOUR
LOOKBACK = {WEEK: 24 * HOUR, 5 * HOUR: HOUR}
"""How far back a window's pace is measured: a weekly window's over a day (a working day and
its night), a 5-hour window's over the last hour."""
SAME_RUN = 120.0
"""Readings whose announced resets differ by less than this are of the same run of a window
(a reset announced as "in N seconds" drifts with every answer)."""
HORIZON = 14 * 24 * HOUR
"""How far ahead the pool is followed."""
DAY = 24 * HOUR


def capacities(credentials: Iterable[tuple[str, Kind, str | None]]) -> dict[str, float]:
    """The weekly credits (their plan's) of the subscriptions among (name, kind, plan): what
    a forecast follows (an API key's limits are per minute).

    >>> capacities([("a", Kind.CODEX, "pro"), ("k", Kind.OPENAI, None)])
    {'a': 50400}
    """
    return {
        name: PLAN_CAPACITY.get(plan or "", DEFAULT_CAPACITY)
        for name, kind, plan in credentials
        if kind in SUBSCRIPTIONS
    }


def weekday_time(at: float) -> str:
    """`Thu 14:05 UTC`: when, within the week a forecast looks at."""
    return datetime.fromtimestamp(at, UTC).strftime("%a %H:%M UTC")


class Reading(NamedTuple):
    """One reading of a window: when, its use, when it resets (None: not announced)."""

    at: float
    used_percent: float
    resets_at: float | None


class Projection(NamedTuple):
    """A window now, and at its current pace."""

    used_percent: float
    resets_at: float | None
    pace: float | None
    """Percent of the window per hour; None: nothing to measure it by."""
    runs_out_at: float | None
    """When it is used up at this pace, if before its reset."""
    at_reset_percent: float | None
    """Its use when it resets, at this pace (at most 100)."""


class Account(NamedTuple):
    name: str
    capacity: float
    """Weekly credits (its plan's)."""
    week: Projection | None
    short: Projection | None


class PoolForecast(NamedTuple):
    demand: float
    """Credits per hour the pool spends at the accounts' current paces."""
    left: float
    """Weekly credits left now."""
    runs_out_at: float | None
    """When no account has weekly credits left, if within `HORIZON`."""
    back_at: float | None
    """When the first account comes back after that (its reset)."""
    expiring: float
    """Credits left in windows when they next reset (they expire unused)."""


def _same_run(reading: Reading, latest: Reading) -> bool:
    if reading.resets_at is None or latest.resets_at is None:
        return reading.resets_at is latest.resets_at and reading.used_percent <= latest.used_percent
    return abs(reading.resets_at - latest.resets_at) < SAME_RUN


def pace(readings: Sequence[Reading], now: float, length: float) -> float | None:
    """Percent per hour over the window's `LOOKBACK` of its current run (from the last
    reading before it, else the run's first), to `now`: idle time counts, it is the pace. With
    a single reading, the average since the window started (its reset less its `length`).

    >>> pace([Reading(0.0, 10.0, 7200.0), Reading(3600.0, 30.0, 7200.0)], 3600.0, 18000.0)
    20.0
    """
    if not readings:
        return None
    latest = max(readings, key=lambda r: r.at)
    run = sorted((r for r in readings if _same_run(r, latest)), key=lambda r: r.at)
    before = [r for r in run if r.at <= now - LOOKBACK.get(length, length / 5)]
    base = before[-1] if before else run[0]
    if base is not latest and now > base.at:
        return max(0.0, latest.used_percent - base.used_percent) / ((now - base.at) / HOUR)
    if latest.resets_at is None:
        return None
    elapsed = now - (latest.resets_at - length)
    return latest.used_percent / (elapsed / HOUR) if elapsed > 0 else None


def project(used: float, resets_at: float | None, rate: float | None, now: float) -> Projection:
    """The window at `rate` percent per hour from `now` (a reset past already happened: 0 %)."""
    if resets_at is not None and resets_at <= now:
        used, resets_at = 0.0, None
    out = at_reset = None
    if rate is not None:
        hours_left = (resets_at - now) / HOUR if resets_at is not None else math.inf
        if rate > 0 and (100.0 - used) / rate < hours_left:
            out = now + max(0.0, 100.0 - used) / rate * HOUR
        if resets_at is not None:
            at_reset = min(100.0, used + rate * hours_left)
    return Projection(used, resets_at, rate, out, at_reset)


def pool(accounts: Sequence[Account], now: float, horizon: float = HORIZON) -> PoolForecast:
    """The pool's weekly credits followed forward (see the module's docstring)."""
    left: list[float] = []
    resets: list[float] = []
    demand = 0.0
    for account in accounts:
        week = account.week
        used = week.used_percent if week is not None else 0.0
        left.append(account.capacity * max(0.0, 100.0 - used) / 100.0)
        resets.append(week.resets_at if week is not None and week.resets_at else math.inf)
        if week is not None and week.pace is not None:
            demand += account.capacity * week.pace / 100.0
    total_now = sum(left)
    expiring, first_reset_seen = 0.0, [False] * len(accounts)
    t, end = now, now + horizon
    while t < end:
        following = min(resets, default=math.inf)
        upto = min(following, end)
        need = demand * (upto - t) / HOUR
        for i in sorted(range(len(left)), key=resets.__getitem__):  # soonest to expire first
            taken = min(left[i], need)
            left[i] -= taken
            need -= taken
        if need > 1e-9:  # dry before `upto`
            short = need / demand * HOUR
            back = following if following < math.inf else None
            return PoolForecast(demand, total_now, upto - short, back, expiring)
        t = upto
        if following > end:
            break
        for i, at in enumerate(resets):
            if at == following:
                if not first_reset_seen[i]:
                    expiring += left[i]
                    first_reset_seen[i] = True
                left[i], resets[i] = accounts[i].capacity, at + WEEK
    return PoolForecast(demand, total_now, None, None, expiring)


SHORT_LENGTH = 5 * HOUR


def accounts_of(
    readings: dict[tuple[str, str], list[Reading]], capacities: dict[str, float], now: float
) -> list[Account]:
    """Each account's windows ("primary": 5 hours, "secondary": the week) projected from its
    readings; an account without readings: nothing known yet."""
    made = []
    for name, capacity in capacities.items():
        windows: dict[str, Projection | None] = {}
        for window, length in (("secondary", WEEK), ("primary", SHORT_LENGTH)):
            seen = readings.get((name, window))
            if not seen:
                windows[window] = None
                continue
            latest = max(seen, key=lambda r: r.at)
            rate = pace(seen, now, length)
            windows[window] = project(latest.used_percent, latest.resets_at, rate, now)
        made.append(Account(name, capacity, windows["secondary"], windows["primary"]))
    return made


def split(demand: float, spent: Sequence[tuple[str, str, int]]) -> list[dict[str, object]]:
    """The pool's pace (credits an hour) split by what spent it over the last day: each
    routing profile and model's share of the tokens, most first.

    >>> split(100.0, [("default", "gpt-5.5", 300), ("team", "gpt-5.4", 100)])[1]
    {'profile': 'team', 'model': 'gpt-5.4', 'share': 0.25, 'credits_per_hour': 25.0}
    """
    total = sum(tokens for _, _, tokens in spent)
    parts = sorted(spent, key=lambda part: -part[2])
    return [
        {
            "profile": profile,
            "model": model,
            "share": tokens / total,
            "credits_per_hour": demand * tokens / total,
        }
        for profile, model, tokens in parts
    ]


def report(
    accounts: Sequence[Account], now: float, spent: Sequence[tuple[str, str, int]] = ()
) -> dict[str, object]:
    """The forecast as the CLI's `--json` and the admin API give it; `spent`: the last day's
    tokens per profile and model (`store.usage.burn`), which the pool's pace is split by."""
    forecast = pool(accounts, now)
    capacity = sum(a.capacity for a in accounts)

    def window(projection: Projection | None) -> dict[str, object] | None:
        return None if projection is None else projection._asdict()

    return {
        "now": now,
        "pool": {
            "demand_credits_per_hour": forecast.demand,
            "left_credits": forecast.left,
            "runs_out_at": forecast.runs_out_at,
            "back_at": forecast.back_at,
            "expiring_credits": forecast.expiring,
            "expiring_percent": 100.0 * forecast.expiring / capacity if capacity else 0.0,
            "spent_by": split(forecast.demand, spent),
        },
        "accounts": [
            {
                "name": a.name,
                "capacity": a.capacity,
                "weekly": window(a.week),
                "five_hour": window(a.short),
            }
            for a in accounts
        ],
    }
