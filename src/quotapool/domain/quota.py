"""Quota windows as the upstreams announce them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_NONE: Mapping[str, QuotaWindow] = MappingProxyType({})


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
    additional: Mapping[str, QuotaWindow] = field(default_factory=lambda: _NONE)
    """Additional (gated) limits by name."""
    credits: Credits | None = None
