"""Quota windows as the upstreams announce them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_NONE: Mapping[str, AdditionalQuota] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """One usage window (e.g. Codex primary = 5 h, secondary = weekly)."""

    used_percent: float
    resets_at: float | None = None
    """Epoch seconds when the window resets, when announced."""
    window_minutes: int | None = None

    def used_at(self, now: float) -> float:
        """Used percent, trusting no reading past the reset it announced."""
        if self.resets_at is not None and now >= self.resets_at:
            return 0.0
        return self.used_percent


def limit_key(name: str) -> str:
    """How an additional limit is looked up, whichever way it is written: its id
    ("codex_bengalfox", "codex-bengalfox") or its name ("GPT-5.3-Codex-Spark")."""
    return "_".join(_WORDS.findall(name.lower()))


_WORDS = re.compile(r"[a-z0-9.]+")


@dataclass(frozen=True, slots=True)
class AdditionalQuota:
    """An additional (gated) limit of an account: its own windows, independent of the
    standard ones (e.g. "GPT-5.3-Codex-Spark", metered as "codex_bengalfox")."""

    name: str
    """As the upstream names it (`limit_name`)."""
    primary: QuotaWindow | None = None
    """Its short (5-hour) window."""
    secondary: QuotaWindow | None = None
    """Its weekly window."""

    def merged(self, newer: AdditionalQuota) -> AdditionalQuota:
        """`newer`'s windows where it has them (one signal may carry only one window)."""
        return AdditionalQuota(
            newer.name or self.name,
            newer.primary or self.primary,
            newer.secondary or self.secondary,
        )


@dataclass(frozen=True, slots=True)
class Credits:
    """Codex credits beyond the plan's windows (`x-codex-credits-*`)."""

    has_credits: bool
    unlimited: bool = False
    balance: float | None = None


@dataclass(frozen=True, slots=True)
class QuotaReading:
    """What one upstream response told us about a credential's headroom."""

    primary: QuotaWindow | None = None
    secondary: QuotaWindow | None = None
    additional: Mapping[str, AdditionalQuota] = field(default_factory=lambda: _NONE)
    """Additional (gated) limits by the `limit_key` of their id and of their name."""
    credits: Credits | None = None
