"""Client API keys as the data plane sees them: who may use the pool, for what, how much. Pure.

A key's limits count requests, tokens or cost (USD) per calendar window in UTC: a day from
midnight, a week from Monday, a month from the 1st. `requests=1000/day` is parsed by
`parse_limit`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

KEY_PREFIX = "qp-"


class Measure(StrEnum):
    REQUESTS = "requests"
    TOKENS = "tokens"
    COST = "cost"
    """USD, from the final usage and the pricing table."""


class Period(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    def window(self, now: float) -> tuple[float, float]:
        """The window of this period that holds `now`: (start, end) in epoch seconds, UTC."""
        at = datetime.fromtimestamp(now, UTC)
        match self:
            case Period.HOUR:
                start = at.replace(minute=0, second=0, microsecond=0)
                end = start + timedelta(hours=1)
            case Period.DAY:
                start = at.replace(hour=0, minute=0, second=0, microsecond=0)
                end = start + timedelta(days=1)
            case Period.WEEK:
                day = at.replace(hour=0, minute=0, second=0, microsecond=0)
                start = day - timedelta(days=day.weekday())
                end = start + timedelta(days=7)
            case Period.MONTH:
                start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
                end = (start + timedelta(days=32)).replace(day=1)
        return start.timestamp(), end.timestamp()


PERIOD_WORDS = {Period.HOUR: "hourly", Period.DAY: "daily", Period.WEEK: "weekly"}


@dataclass(frozen=True, slots=True)
class Limit:
    measure: Measure
    amount: float
    period: Period

    def __str__(self) -> str:
        return f"{self.measure.value}={number(self.amount)}/{self.period.value}"

    def window(self, now: float) -> tuple[float, float]:
        """The current window of this limit: (start, end) in epoch seconds."""
        return self.period.window(now)

    def describe(self) -> str:
        """ "this key's daily token limit (2000000)"."""
        period = PERIOD_WORDS.get(self.period, f"{self.period.value}ly")
        noun = {Measure.REQUESTS: "request", Measure.TOKENS: "token", Measure.COST: "cost"}
        amount = number(self.amount)
        amount = f"${amount}" if self.measure is Measure.COST else amount
        return f"this key's {period} {noun[self.measure]} limit ({amount})"


def number(amount: float) -> str:
    """`2000000`, `2.5`: as written, never in exponent form (`2e+06` would not parse back).

    >>> number(2_000_000.0), number(0.25)
    ('2000000', '0.25')
    """
    return str(int(amount)) if amount.is_integer() else repr(amount)


_LIMIT = re.compile(r"^\s*(requests|tokens|cost)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(\w+)\s*$")


def parse_limit(text: str) -> Limit:
    """`requests=1000/day`, `tokens=2000000/week`, `cost=20/month` (also `/hour`)."""
    found = _LIMIT.match(text)
    periods = ", ".join(p.value for p in Period)
    if found is None or found[3] not in {p.value for p in Period}:
        raise ValueError(
            f"limit {text!r}: write MEASURE=AMOUNT/PERIOD, e.g. requests=1000/day; measures: "
            f"requests, tokens, cost; periods: {periods}"
        )
    amount = float(found[2])
    if amount <= 0:
        raise ValueError(f"limit {text!r}: the amount must be above 0")
    return Limit(Measure(found[1]), amount, Period(found[3]))


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `10s`, `2w` as seconds."""
    found = re.fullmatch(r"\s*([0-9]+)\s*([smhdw])\s*", text)
    if found is None:
        raise ValueError(f"duration {text!r}: write a number and s, m, h, d or w (e.g. 30d)")
    return int(found[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found[2]]


def key_hash(key: str) -> str:
    """What is stored of a key: its SHA-256 (keys are 32 random bytes: no salt or stretching
    is needed to make them unguessable, and a lookup stays one dict access)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ClientKey:
    id: str
    name: str
    hash: str
    prefix: str
    """The key's first characters, shown in lists so a person can tell keys apart."""
    models: frozenset[str] = frozenset()
    """Models it may ask for; empty: any."""
    profile: str | None = None
    """The routing profile its requests use (over any header or path)."""
    limits: tuple[Limit, ...] = ()
    expires_at: float | None = None
    revoked_at: float | None = None
    created_at: float = 0.0

    def usable_at(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict[str, Any]:
        """What may be shown of the key: everything but its hash (the secret is never kept)."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "models": sorted(self.models),
            "profile": self.profile,
            "limits": [str(limit) for limit in self.limits],
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
        }

    def audited(self) -> dict[str, Any]:
        """What the audit log keeps of the key: what it may do (no secret, no usage)."""
        public = self.public()
        return {k: public[k] for k in ("models", "profile", "limits", "expires_at", "revoked_at")}
