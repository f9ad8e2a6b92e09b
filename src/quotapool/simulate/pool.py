"""The simulated pool: what it holds (`PoolSpec`, from a TOML file or the built-in team) and
how its upstream behaves (`Upstream`): ChatGPT accounts whose 5-hour and weekly windows start
on first use and reset as the real ones do, API keys with per-minute limits, outages. It
answers the way the real upstreams do — Codex quota headers, a 429 `usage_limit_reached` with
its reset, `x-ratelimit-*` and `retry-after` — so quotapool learns from it through its own
parsers."""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quotapool.domain.credential import PLAN_CAPACITY, Credential, Kind, Policy
from quotapool.testing.fake_model import usage_limit

FIVE_HOURS = 5 * 3600.0
WEEK = 7 * 86400.0
FIVE_HOUR_SHARE = 0.2
"""What one 5-hour window holds, as a share of the plan's weekly credits (an assumption: the
plans publish neither; `five_hour_share` in the pool file changes it)."""


@dataclass(frozen=True, slots=True)
class AccountSpec:
    name: str
    plan: str = "plus"
    weight: float = 1.0
    priority: int = 0
    policy: Policy = Policy.NORMAL
    weekly_used: float | None = None
    """Percent of the weekly window already used when the simulation starts (None: drawn)."""
    weekly_started_hours_ago: float | None = None
    """How long ago its weekly window started (None: drawn, within the last week)."""


@dataclass(frozen=True, slots=True)
class KeySpec:
    """An API key: no expiring quota, a per-minute request limit."""

    name: str
    requests_per_minute: int = 60
    models: tuple[str, ...] = ()
    """The models it serves (empty: any)."""


@dataclass(frozen=True, slots=True)
class Outage:
    """The account's upstream answers 502 for `hours` from `start_hour` of the run."""

    account: str
    start_hour: float
    hours: float


@dataclass(frozen=True, slots=True)
class PoolSpec:
    accounts: tuple[AccountSpec, ...]
    keys: tuple[KeySpec, ...] = ()
    outages: tuple[Outage, ...] = ()
    five_hour_share: float = FIVE_HOUR_SHARE
    fallback: tuple[str, ...] = ()
    """The models a request no credential can take falls back to, in order (`+fallback` rows,
    as `[routing.fallback]` does)."""

    def credentials(self) -> tuple[Credential, ...]:
        """The pool as the routing engine sees it."""
        accounts = tuple(
            Credential(
                a.name,
                a.name,
                Kind.CODEX,
                "sim://codex",
                weight=a.weight,
                priority=a.priority,
                plan=a.plan,
                policy=a.policy,
                account_id=a.name,
            )
            for a in self.accounts
        )
        keys = tuple(
            Credential(k.name, k.name, Kind.OPENAI, "sim://openai", models=frozenset(k.models))
            for k in self.keys
        )
        return accounts + keys

    @property
    def weekly_credits(self) -> float:
        """What the accounts hold a week: their capacity as routing sees it (plan × weight)."""
        return sum(c.capacity for c in self.credentials() if c.kind is Kind.CODEX)


def team_pool(accounts: int = 20) -> PoolSpec:
    """The built-in pool: a team's ChatGPT accounts, one in five on Pro, the rest on Plus."""
    return PoolSpec(
        tuple(
            AccountSpec(f"acct-{i + 1:02d}", "pro" if i % 5 == 4 else "plus")
            for i in range(accounts)
        )
    )


class _Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=10_000)
    plan: str = "plus"
    weight: float = Field(default=1.0, gt=0)
    priority: int = 0
    policy: Policy = Policy.NORMAL
    weekly_used: float | None = Field(default=None, ge=0, le=100)
    weekly_started_hours_ago: float | None = Field(default=None, ge=0)

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, plan: str) -> str:
        if plan not in PLAN_CAPACITY:
            raise ValueError(f"unknown plan {plan!r}; one of {', '.join(PLAN_CAPACITY)}")
        return plan


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    requests_per_minute: int = Field(default=60, ge=1)
    models: list[str] = []


class _Outage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str
    start_hour: float = Field(ge=0)
    hours: float = Field(gt=0)


class _PoolFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    five_hour_share: float = Field(default=FIVE_HOUR_SHARE, gt=0, le=1)
    fallback: list[str] = []
    accounts: list[_Account] = []
    keys: list[_Key] = []
    outages: list[_Outage] = []


def load_pool(path: Path) -> PoolSpec:
    """A pool file (`ValueError` saying what is wrong with it):

    ```toml
    five_hour_share = 0.2            # optional
    fallback = ["claude-sonnet-4-5"] # optional: what `+fallback` rows send when none can serve
    [[accounts]]
    name = "work"                    # `count = 5` makes work-1 … work-5
    plan = "pro"
    weekly_used = 40                 # optional: percent used when the run starts
    weekly_started_hours_ago = 100   # optional
    [[keys]]
    name = "openai"
    requests_per_minute = 60
    models = ["claude-sonnet-4-5"]   # optional: the models it serves (default: any)
    [[outages]]
    account = "work-1"
    start_hour = 30
    hours = 2
    ```"""
    try:
        parsed = _PoolFile.model_validate(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(part) for part in e["loc"]) + ": " + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None
    accounts: list[AccountSpec] = []
    for entry in parsed.accounts:
        fields = entry.model_dump(exclude={"name", "count"})
        names = (
            [entry.name]
            if entry.count == 1
            else [f"{entry.name}-{n + 1}" for n in range(entry.count)]
        )
        accounts += [AccountSpec(each, **fields) for each in names]
    keys = tuple(KeySpec(k.name, k.requests_per_minute, tuple(k.models)) for k in parsed.keys)
    if not accounts and not keys:
        raise ValueError(f"{path}: no [[accounts]] or [[keys]]")
    names = [a.name for a in accounts] + [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two accounts or keys have the same name")
    outages = tuple(Outage(o.account, o.start_hour, o.hours) for o in parsed.outages)
    if unknown := {o.account for o in outages} - {a.name for a in accounts}:
        raise ValueError(f"{path}: an outage names no account of the pool: {sorted(unknown)[0]}")
    fallback = tuple(parsed.fallback)
    return PoolSpec(tuple(accounts), keys, outages, parsed.five_hour_share, fallback)


@dataclass(slots=True)
class Window:
    """One quota window of an account: it starts with the first request after it is not
    running, and resets `length` seconds later. Accounts for the credits that expired."""

    length: float
    capacity: float
    start: float | None = None
    used: float = 0.0
    idle_since: float = 0.0
    """When it last stopped running (or the run began): idle time is capacity expiring too."""
    expired: float = 0.0
    """Credits whose time ran out unused: left in windows that reset, and the idle time's."""
    offered: float = 0.0
    """Credits whose time ran out: windows that reset, and the idle time's share."""
    spent: float = 0.0

    @property
    def end(self) -> float | None:
        return None if self.start is None else self.start + self.length

    def roll(self, now: float) -> None:
        """Reset it if its time is up."""
        if self.start is not None and now >= self.start + self.length:
            end = self.start + self.length
            self.offered += self.capacity
            self.expired += max(0.0, self.capacity - self.used)
            self.start, self.used, self.idle_since = None, 0.0, end

    def open(self, now: float) -> None:
        if self.start is None:
            self._idle_until(now)
            self.start = now

    def _idle_until(self, now: float) -> None:
        idle = self.capacity * max(0.0, now - self.idle_since) / self.length
        self.offered += idle
        self.expired += idle
        self.idle_since = now

    def close_run(self, now: float) -> None:
        """At the end of the run: the idle time so far counts; a running window does not (its
        time has not run out)."""
        self.roll(now)
        if self.start is None:
            self._idle_until(now)

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.capacity

    def percent_at(self, now: float) -> float:
        if self.start is None or now >= self.start + self.length:
            return 0.0
        return self.percent

    def full(self) -> bool:
        return self.start is not None and self.used >= self.capacity


@dataclass(slots=True)
class Account:
    spec: AccountSpec
    five_hour: Window
    weekly: Window
    down: list[tuple[float, float]] = field(default_factory=list)
    requests: int = 0


@dataclass(slots=True)
class Key:
    spec: KeySpec
    minute: int = -1
    count: int = 0
    requests: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """What the upstream said to one attempt: a status, its headers and, for an error, its
    body (as the real upstream sends them)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


OK = 200


class Upstream:
    """The simulated upstreams of the whole pool, on the virtual clock."""

    def __init__(self, spec: PoolSpec, start: float, rng: random.Random) -> None:
        self.accounts: dict[str, Account] = {}
        capacity = {c.name: c.capacity for c in spec.credentials()}
        for a in spec.accounts:
            weekly_credits = capacity[a.name]
            weekly = Window(WEEK, weekly_credits, idle_since=start)
            ago = a.weekly_started_hours_ago
            ago_seconds = rng.uniform(0, WEEK) if ago is None else ago * 3600.0
            used = rng.uniform(0, 50) if a.weekly_used is None else a.weekly_used
            if ago_seconds < WEEK:  # a window that was running when the run began
                weekly.start, weekly.used = start - ago_seconds, weekly_credits * used / 100
            five = Window(FIVE_HOURS, weekly_credits * spec.five_hour_share, idle_since=start)
            self.accounts[a.name] = Account(a, five, weekly)
        for outage in spec.outages:
            begins = start + outage.start_hour * 3600.0
            self.accounts[outage.account].down.append((begins, begins + outage.hours * 3600.0))
        self.keys = {k.name: Key(k) for k in spec.keys}

    def attempt(self, name: str, now: float) -> Answer:
        """A request reaches the credential `name` at `now`: 200 (it will be charged when it
        ends, `finish`), a 429 with its reset, or a 502 during an outage."""
        if (key := self.keys.get(name)) is not None:
            return self._key_attempt(key, now)
        account = self.accounts[name]
        if any(begins <= now < ends for begins, ends in account.down):
            return Answer(502, {}, b'{"error":{"type":"server_error","message":"Bad gateway"}}')
        five, weekly = account.five_hour, account.weekly
        five.roll(now)
        weekly.roll(now)
        out = [w for w in (weekly, five) if w.full()]
        if out:
            refused = usage_limit(max(w.end or now for w in out), account.spec.plan, now)
            return Answer(429, self._headers(account), orjson.dumps(refused.body))
        five.open(now)
        weekly.open(now)
        account.requests += 1
        return Answer(OK, {})

    def finish(self, name: str, now: float, credits: float) -> dict[str, str]:
        """A request served by `name` ends at `now` having cost `credits`: the headers of its
        response (an API key's: none that matter here)."""
        account = self.accounts.get(name)
        if account is None:
            return {}
        for window in (account.five_hour, account.weekly):
            window.roll(now)
            window.open(now)  # a window that reset while the request ran starts again
            window.used += credits
            window.spent += credits
        return self._headers(account)

    def close(self, now: float) -> None:
        for account in self.accounts.values():
            account.five_hour.close_run(now)
            account.weekly.close_run(now)

    @staticmethod
    def _headers(account: Account) -> dict[str, str]:
        headers: dict[str, str] = {}
        for which, window, minutes in (
            ("primary", account.five_hour, "300"),
            ("secondary", account.weekly, "10080"),
        ):
            if window.start is None:
                continue
            headers[f"x-codex-{which}-used-percent"] = f"{min(100.0, window.percent):.1f}"
            headers[f"x-codex-{which}-window-minutes"] = minutes
            headers[f"x-codex-{which}-reset-at"] = str(int(window.start + window.length))
        return headers

    def _key_attempt(self, key: Key, now: float) -> Answer:
        minute = int(now // 60)
        if minute != key.minute:
            key.minute, key.count = minute, 0
        limit = key.spec.requests_per_minute
        if key.count >= limit:
            wait = str(max(1, int((minute + 1) * 60 - now)))
            body = b'{"error":{"type":"rate_limit_exceeded","code":"rate_limit_exceeded"}}'
            return Answer(429, {"retry-after": wait}, body)
        key.count += 1
        key.requests += 1
        reset = f"{max(1, int((minute + 1) * 60 - now))}s"
        headers = {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(limit - key.count),
            "x-ratelimit-reset-requests": reset,
        }
        return Answer(OK, headers)

    def usage(self, now: float) -> dict[str, tuple[float, float, float | None]]:
        """Per account: used percent of its 5-hour and weekly windows at `now` (for the chart;
        a window whose time is up shows 0, as its reset will make it), and when the weekly
        window resets (None: not running)."""
        return {
            name: (a.five_hour.percent_at(now), a.weekly.percent_at(now), _running_end(a, now))
            for name, a in self.accounts.items()
        }


def _running_end(account: Account, now: float) -> float | None:
    end = account.weekly.end
    return end if end is not None and end > now else None
