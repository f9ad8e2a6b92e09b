"""The mutable side of a credential, as immutable values the reducer replaces."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from quotapool.domain.quota import QuotaWindow


class Status(StrEnum):
    ACTIVE = "active"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    PAUSED = "paused"
    REAUTH_REQUIRED = "reauth_required"
    DEACTIVATED = "deactivated"


LIMITED = frozenset({Status.RATE_LIMITED, Status.QUOTA_EXCEEDED})
"""Statuses that end by themselves at `until`."""


@dataclass(frozen=True, slots=True)
class CredentialState:
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
    last_selected: int = 0
    """Pool sequence number of its last selection (0 = never)."""
    served: int = 0
    primary: QuotaWindow | None = None
    secondary: QuotaWindow | None = None

    def limited_at(self, now: float) -> bool:
        """Rate limited or out of quota at `now` (ends by itself at `until`)."""
        return self.status in LIMITED and (self.until is None or now < self.until)
