"""The mutable side of a credential, as immutable values the reducer replaces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from quotapool.domain.quota import AdditionalQuota, Credits, QuotaWindow


class Status(StrEnum):
    ACTIVE = "active"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    PAUSED = "paused"
    REAUTH_REQUIRED = "reauth_required"
    DEACTIVATED = "deactivated"


LIMITED = frozenset({Status.RATE_LIMITED, Status.QUOTA_EXCEEDED})
"""Statuses that end by themselves at `until`."""
OUT_OF_SERVICE = frozenset({Status.PAUSED, Status.REAUTH_REQUIRED, Status.DEACTIVATED})
"""Statuses only an operator (or a new login) ends."""

EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Latency:
    """Exponentially weighted time to first byte of one (credential, model)."""

    ewma_ms: float
    samples: int


def _empty() -> Mapping[str, object]:
    return EMPTY


@dataclass(frozen=True)
class CredentialState:
    """Frozen, but without slots: the reducer copies one twice per request, and copying an
    instance dict is a third of the cost of filling sixteen slots (see `reducer._evolve`)."""

    status: Status = Status.ACTIVE
    until: float | None = None
    """When a limited status ends (epoch seconds); the credential is eligible again after it."""
    reason: str = ""
    """Why the status was set, as the upstream said it."""
    consecutive_failures: int = 0
    backoff_until: float = 0.0
    """Error backoff: not eligible before this time."""
    last_failure_at: float = 0.0
    in_flight: int = 0
    """Requests this replica has in flight on the credential."""
    busy_elsewhere: int = 0
    """Requests other replicas have in flight on it (`BusyElsewhere`)."""
    last_selected: int = 0
    """Pool sequence number of its last selection (0 = never)."""
    served: int = 0
    primary: QuotaWindow | None = None
    """The 5-hour window of a Codex account; for API keys the most used rate-limit window."""
    secondary: QuotaWindow | None = None
    """The weekly window of a Codex account."""
    credits: Credits | None = None
    additional: Mapping[str, AdditionalQuota] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Additional (gated) quotas by `limit_key` of id and name, independent of the standard
    windows."""
    model_cooldowns: Mapping[str, float] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Model → time until which this credential must not serve that model."""
    rotations: Mapping[str, float] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Rotation key → selections counted (round_robin's counters)."""
    latency: Mapping[str, Latency] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Model → measured time to first byte."""

    @property
    def busy(self) -> int:
        """Requests in flight on the credential, on every replica."""
        return self.in_flight + self.busy_elsewhere

    def limited_at(self, now: float) -> bool:
        """Rate limited or out of quota at `now` (ends by itself at `until`)."""
        return self.status in LIMITED and (self.until is None or now < self.until)
